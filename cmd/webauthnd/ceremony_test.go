package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/golang-jwt/jwt/v5"
)

// localRP is the default community of a server started with the default --public-url.
var localRP = virtualwebauthn.RelyingParty{ID: "localhost", Name: "default", Origin: "http://localhost:8080"}

// passkey is a software authenticator holding one credential of one user.
type passkey struct {
	rp       virtualwebauthn.RelyingParty
	auth     virtualwebauthn.Authenticator
	cred     virtualwebauthn.Credential
	username string
}

func newPasskey(rp virtualwebauthn.RelyingParty, username string) *passkey {
	return &passkey{rp: rp, auth: virtualwebauthn.NewAuthenticator(), cred: newES256Credential(), username: username}
}

// newES256Credential makes a P-256 credential whose coordinates are both 32 bytes long:
// virtualwebauthn writes big.Int.Bytes() into the COSE key, which drops leading zero bytes, and
// webauthnd rightly refuses such a key (about 1 key in 128).
func newES256Credential() virtualwebauthn.Credential {
	for {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		if len(key.X.Bytes()) != 32 || len(key.Y.Bytes()) != 32 {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			panic(err)
		}
		return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
	}
}

// ceremonyBody is a ceremony request as BlockID SDKs send it: the relying party's JSON merged
// with dns, communityId and tenantId.
func ceremonyBody(t *testing.T, credentialJSON string, rpID, community string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(credentialJSON), &m); err != nil {
		t.Fatal(err)
	}
	m["dns"] = rpID
	m["communityId"] = community
	return m
}

func lic(key string) map[string]string { return map[string]string{"licensekey": key} }

// registrationOptions asks for creation options and returns them with the ceremony's sessionInfo.
func (s *testServer) registrationOptions(t *testing.T, key, community string, p *passkey) (*virtualwebauthn.AttestationOptions, string) {
	t.Helper()
	status, body, hdr := s.call(t, "POST", "/webauthn/u1/attestation/options", lic(key),
		map[string]any{"dns": p.rp.ID, "username": p.username, "displayName": "Test " + p.username, "communityId": community, "tenantId": ""})
	if status != 200 {
		t.Fatalf("attestation/options: %d %v", status, body)
	}
	if hdr.Get("sessionInfo") == "" || hdr.Get("sessionInfo") != body["sessionInfo"] {
		t.Fatalf("sessionInfo header %q and body %v differ", hdr.Get("sessionInfo"), body["sessionInfo"])
	}
	raw, _ := json.Marshal(body["data"])
	opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	if err != nil {
		t.Fatalf("parse creation options %s: %v", raw, err)
	}
	return opts, hdr.Get("sessionInfo")
}

// register runs a whole registration and fails the test unless it succeeds.
func (s *testServer) register(t *testing.T, key, community string, p *passkey) map[string]any {
	t.Helper()
	opts, _ := s.registrationOptions(t, key, community, p)
	status, body, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", lic(key),
		ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), p.rp.ID, community))
	if status != 200 {
		t.Fatalf("attestation/result: %d %v", status, body)
	}
	p.auth.Options.UserHandle = []byte(opts.UserID)
	p.auth.AddCredential(p.cred)
	return body
}

// signInOptions asks for request options (by username when given).
func (s *testServer) signInOptions(t *testing.T, key, community, rpID, username string) (*virtualwebauthn.AssertionOptions, map[string]any) {
	t.Helper()
	req := map[string]any{"dns": rpID, "communityId": community}
	if username != "" {
		req["username"] = username
	}
	status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/options", lic(key), req)
	if status != 200 {
		t.Fatalf("assertion/options: %d %v", status, body)
	}
	raw, _ := json.Marshal(body)
	opts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
	if err != nil {
		t.Fatalf("parse request options %s: %v", raw, err)
	}
	return opts, body
}

// signIn runs a whole sign-in and returns the result body; status must be 200.
func (s *testServer) signIn(t *testing.T, key, community string, p *passkey, byUsername bool) map[string]any {
	t.Helper()
	username := ""
	if byUsername {
		username = p.username
	}
	opts, _ := s.signInOptions(t, key, community, p.rp.ID, username)
	p.cred.Counter++
	status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(key),
		ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts), p.rp.ID, community))
	if status != 200 {
		t.Fatalf("assertion/result: %d %v", status, body)
	}
	return body
}

// assertion builds an assertion response by hand, so that a test can change what a real
// authenticator never would: the client data, the flags, the counter.
func assertion(p *passkey, opts *virtualwebauthn.AssertionOptions, clientData map[string]any, flags byte, counter uint32) string {
	cd := map[string]any{"type": "webauthn.get", "challenge": base64.RawURLEncoding.EncodeToString(opts.Challenge), "origin": p.rp.Origin}
	for k, v := range clientData {
		cd[k] = v
	}
	cdJSON, _ := json.Marshal(cd)
	rpHash := sha256.Sum256([]byte(p.rp.ID))
	authData := append(rpHash[:], flags)
	authData = binary.BigEndian.AppendUint32(authData, counter)
	cdHash := sha256.Sum256(cdJSON)
	digest := sha256.Sum256(append(append([]byte{}, authData...), cdHash[:]...))
	sig, err := p.cred.Key.Sign(digest[:])
	if err != nil {
		panic(err)
	}
	id := base64.RawURLEncoding.EncodeToString(p.cred.ID)
	out, _ := json.Marshal(map[string]any{
		"id": id, "rawId": id, "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    base64.RawURLEncoding.EncodeToString(cdJSON),
			"authenticatorData": base64.RawURLEncoding.EncodeToString(authData),
			"signature":         base64.RawURLEncoding.EncodeToString(sig),
			"userHandle":        base64.RawURLEncoding.EncodeToString(p.auth.Options.UserHandle),
		},
	})
	return string(out)
}

const (
	flagUP = 0x01
	flagUV = 0x04
)

// admin runs a management command against the server's data dir (through its socket).
func (s *testServer) admin(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--data-dir", s.DataDir)
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("webauthnd %v: %v\n%s", args, err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

// verifyToken checks a signature_token as a relying party of the default tenant should (the
// signature by the kid of /publickeys, iss, exp) and returns its claims.
func (s *testServer) verifyToken(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	_, keys, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	raw, _ := json.Marshal(keys["keys"])
	var jwks []struct{ Kid, X, Y string }
	if err := json.Unmarshal(raw, &jwks); err != nil || len(jwks) == 0 {
		t.Fatalf("publickeys has no JWK: %v", keys)
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		for _, k := range jwks {
			if k.Kid == tok.Header["kid"] {
				return jwkToECDSA(k.X, k.Y)
			}
		}
		return nil, fmt.Errorf("no key %v", tok.Header["kid"])
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer("http://localhost:8080/webauthn/tenants/default"), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("signature_token does not verify: %v", err)
	}
	openAPI.once.Do(loadOpenAPI)
	if openAPI.err != nil {
		t.Fatal(openAPI.err)
	}
	if err := openAPI.spec.Components.Schemas["SignatureTokenClaims"].Value.VisitJSON(map[string]any(claims)); err != nil {
		t.Fatalf("the token's claims %v do not match SignatureTokenClaims: %v", claims, err)
	}
	return claims
}

func TestRegistrationAndSignIn(t *testing.T) {
	s := startServer(t, "")
	alice := newPasskey(localRP, "alice")
	reg := s.register(t, s.License, "default", alice)

	sum := sha256.Sum256(alice.cred.ID)
	wantHash := fmt.Sprintf("%x", sum)
	for field, want := range map[string]any{
		"status": "success", "errorMessage": "", "fidoKeyHash": wantHash, "attestationFormat": "packed",
		"credentialId": base64.RawURLEncoding.EncodeToString(alice.cred.ID), "attestationTrusted": false,
	} {
		if reg[field] != want {
			t.Errorf("attestation/result %s = %v, want %v", field, reg[field], want)
		}
	}
	if reg["data"].(map[string]any)["sub"] != "alice" || reg["publicKey"] == "" {
		t.Errorf("attestation/result = %v", reg)
	}

	for _, tc := range []struct {
		name       string
		byUsername bool
	}{{"by username", true}, {"discoverable", false}} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.signIn(t, s.License, "default", alice, tc.byUsername)
			if res["data"].(map[string]any)["sub"] != "alice" || res["status"] != "success" {
				t.Fatalf("assertion/result = %v", res)
			}
			claims := s.verifyToken(t, res["signature_token"].(string))
			for k, want := range map[string]any{"sub": "alice", "aud": "default", "tid": "default", "fidoKeyHash": wantHash, "rpId": "localhost", "uv": true} {
				if claims[k] != want {
					t.Errorf("token claim %s = %v, want %v", k, claims[k], want)
				}
			}
			if _, ok := claims["cloneWarning"]; ok {
				t.Errorf("token carries a clone warning: %v", claims)
			}
		})
	}

	t.Run("a second passkey for the same user is added, the first excluded", func(t *testing.T) {
		second := newPasskey(localRP, "alice")
		opts, _ := s.registrationOptions(t, s.License, "default", second)
		if len(opts.ExcludeCredentials) != 1 || opts.ExcludeCredentials[0] != base64.RawURLEncoding.EncodeToString(alice.cred.ID) {
			t.Fatalf("excludeCredentials = %v", opts.ExcludeCredentials)
		}
		if string(second.auth.Options.UserHandle) != "" || opts.UserID != string(alice.auth.Options.UserHandle) {
			t.Fatalf("the user handle changed between registrations")
		}
	})

}

// TestConcurrentFirstRegistrations: options for a new username write nothing and each gets a
// fresh handle; of two first registrations of one username, the first result creates the user
// and the second gets 409 conflict (start again), leaving the winner's passkey alone.
func TestConcurrentFirstRegistrations(t *testing.T) {
	s := startServer(t, "")
	var wg sync.WaitGroup
	passkeys := make([]*passkey, 8)
	opts := make([]*virtualwebauthn.AttestationOptions, len(passkeys))
	for i := range passkeys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			passkeys[i] = newPasskey(localRP, "carol")
			opts[i], _ = s.registrationOptions(t, s.License, "default", passkeys[i])
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, o := range opts {
		if len(o.UserID) != 32 || seen[o.UserID] || o.UserID == "carol" || len(o.ExcludeCredentials) != 0 {
			t.Fatalf("first registrations' options: handle %q (want fresh 32 random bytes each), exclude %v", o.UserID, o.ExcludeCredentials)
		}
		seen[o.UserID] = true
	}
	finish := func(i int) (int, map[string]any) {
		status, body, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", lic(s.License),
			ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(localRP, passkeys[i].auth, passkeys[i].cred, *opts[i]), "localhost", "default"))
		return status, body
	}
	if status, body := finish(3); status != 200 {
		t.Fatalf("the first result: %d %v", status, body)
	}
	status, body := finish(5)
	if status != 409 || body["code"] != "conflict" || !strings.Contains(fmt.Sprint(body["message"]), "start the registration again") {
		t.Fatalf("the overtaken registration: %d %v, want 409 conflict saying to start again", status, body)
	}
	// The winner signs in; its options list its passkey alone.
	winner := passkeys[3]
	winner.auth.Options.UserHandle = []byte(opts[3].UserID)
	winner.auth.AddCredential(winner.cred)
	_, sign := s.signInOptions(t, s.License, "default", "localhost", "carol")
	if allowed, _ := sign["allowCredentials"].([]any); len(allowed) != 1 {
		t.Fatalf("carol's allowCredentials = %v, want the winner's passkey alone", sign["allowCredentials"])
	}
	s.signIn(t, s.License, "default", winner, true)
	// A later registration of carol is an existing user's: her handle, her passkey excluded.
	again, _ := s.registrationOptions(t, s.License, "default", newPasskey(localRP, "carol"))
	if again.UserID != opts[3].UserID || len(again.ExcludeCredentials) != 1 {
		t.Fatalf("carol's next registration: handle %q, exclude %v; want the winner's handle and passkey", again.UserID, again.ExcludeCredentials)
	}
}

func TestSignInAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	p := newPasskey(localRP, "dave")
	s.register(t, s.License, "default", p)
	s.signIn(t, s.License, "default", p, true)
	s.stop(t)

	s2 := startServer(t, dir)
	if s2.License != s.License {
		t.Fatal("the default license changed across a restart")
	}
	res := s2.signIn(t, s2.License, "default", p, false)
	if res["data"].(map[string]any)["sub"] != "dave" {
		t.Fatalf("after restart: %v", res)
	}
}

func TestCounterRegressionSetsCloneWarning(t *testing.T) {
	s := startServer(t, "")
	p := newPasskey(localRP, "erin")
	p.cred.Counter = 10
	s.register(t, s.License, "default", p)
	s.signIn(t, s.License, "default", p, true) // counter 11

	opts, _ := s.signInOptions(t, s.License, "default", "localhost", "erin")
	status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License),
		ceremonyBody(t, assertion(p, opts, nil, flagUP|flagUV, 5), "localhost", "default"))
	if status != 400 || body["code"] != "counter_regression" {
		t.Fatalf("regressed counter: %d %v", status, body)
	}
	res := s.signIn(t, s.License, "default", p, true) // counter 12
	claims := s.verifyToken(t, res["signature_token"].(string))
	if claims["cloneWarning"] != true {
		t.Fatalf("token after a regression has no cloneWarning: %v", claims)
	}
}

func TestExpiredCeremony(t *testing.T) {
	s := startServer(t, "", "--ceremony-timeout", "1s")
	p := newPasskey(localRP, "frank")
	opts, _ := s.registrationOptions(t, s.License, "default", p)
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	status, body, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", lic(s.License),
		ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default"))
	if status != 400 || body["code"] != "ceremony_not_found" {
		t.Fatalf("expired ceremony: %d %v", status, body)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("an expired ceremony took %s to refuse", d)
	}
}

func TestReplayedResultIsAcceptedOnce(t *testing.T) {
	s := startServer(t, "")
	p := newPasskey(localRP, "gina")
	s.register(t, s.License, "default", p)
	opts, _ := s.signInOptions(t, s.License, "default", "localhost", "gina")
	p.cred.Counter++
	body := ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
	const copies = 16
	statuses := make([]int, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _, _ = s.call(t, "POST", "/webauthn/u1/assertion/result", lic(s.License), body)
		}()
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		switch {
		case st == 200:
			ok++
		case st < 400 || st >= 500:
			t.Errorf("a replay answered %d", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent copies succeeded, want exactly 1 (%v)", ok, copies, statuses)
	}
}

func TestAdminCommandsWhileServing(t *testing.T) {
	s := startServer(t, "")
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--name", "Shop",
		"--rp-id", "shop.localhost", "--origin", "https://shop.localhost")
	key := s.admin(t, "license", "create", "--level", "community", "--community", "shop")
	shopRP := virtualwebauthn.RelyingParty{ID: "shop.localhost", Name: "Shop", Origin: "https://shop.localhost"}
	p := newPasskey(shopRP, "hank")
	s.register(t, key, "shop", p)
	res := s.signIn(t, key, "shop", p, true)
	// The token names the community's tenant: it does not pass as the default tenant's.
	token := res["signature_token"].(string)
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims["iss"] != "http://localhost:8080/webauthn/tenants/acme" || claims["tid"] != "acme" {
		t.Fatalf("shop's token claims %s (%v), want iss .../webauthn/tenants/acme and tid acme", payload, err)
	}
	s.admin(t, "community", "update", "--id", "shop", "--user-verification", "required")
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"community", "create", "--id", "x", "--tenant", "acme", "--rp-id", "10.0.0.1",
		"--origin", "https://10.0.0.1", "--data-dir", s.DataDir}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "IP address") {
		t.Fatalf("an IP RP ID was not refused clearly: %v", err)
	}
}

func jwkToECDSA(x, y string) (any, error) {
	xb, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil {
		return nil, err
	}
	yb, err := base64.RawURLEncoding.DecodeString(y)
	if err != nil {
		return nil, err
	}
	return ecdsaP256(append(append([]byte{4}, xb...), yb...))
}

// toStdBase64 rewrites every binary field of a credential as padded standard base64, as some
// clients send them.
func toStdBase64(t *testing.T, body map[string]any) {
	t.Helper()
	conv := func(v any) any {
		b, err := base64.RawURLEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	body["rawId"] = conv(body["rawId"])
	resp := body["response"].(map[string]any)
	for k, v := range resp {
		if s, ok := v.(string); ok && s != "" {
			resp[k] = conv(v)
		}
	}
}

func TestStandardBase64IsToleratedInCredentials(t *testing.T) {
	s := startServer(t, "")
	p := newPasskey(localRP, "olga")
	opts, _ := s.registrationOptions(t, s.License, "default", p)
	body := ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
	toStdBase64(t, body)
	body["response"].(map[string]any)["getTransports"] = map[string]any{} // the reference's placeholders
	body["getClientExtensionResults"] = map[string]any{}
	if status, res, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", lic(s.License), body); status != 200 {
		t.Fatalf("registration with standard base64: %d %v", status, res)
	}
	p.auth.Options.UserHandle = []byte(opts.UserID)
	p.auth.AddCredential(p.cred)

	aopts, _ := s.signInOptions(t, s.License, "default", "localhost", "olga")
	p.cred.Counter++
	body = ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *aopts), "localhost", "default")
	toStdBase64(t, body)
	if status, res, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", map[string]string{"licensekey": s.License,
		"requestid": "0b5f8f0e-4c1d-4a4e-9d8f-6b1c2a3d4e5f"}, body); status != 200 {
		t.Fatalf("sign-in with standard base64: %d %v", status, res)
	}
	if !strings.Contains(s.stderr.String(), `"requestId":"0b5f8f0e-4c1d-4a4e-9d8f-6b1c2a3d4e5f"`) {
		t.Fatal("the caller's requestid is not the request's id in the log")
	}
}

// TestAdminStatsCountLiveCeremonies: the admin socket's /admin/stats counts the ceremony
// actors alive in every community (an options call starts one, its expiry ends it) and reports
// the Go heap, so that the benchmark harness can check a burst's aftermath.
func TestAdminStatsCountLiveCeremonies(t *testing.T) {
	s := startServer(t, "", "--ceremony-timeout", "1s")
	defer s.stop(t)
	stats := func() map[string]any {
		t.Helper()
		v, err := viaSocket(context.Background(), socketPath(s.DataDir), "GET", "/admin/stats?gc=1", nil)
		if err != nil {
			t.Fatalf("admin stats: %v", err)
		}
		return v.(map[string]any)
	}
	if live := stats()["liveCeremonies"]; live != 0.0 {
		t.Fatalf("live ceremonies before any call = %v, want 0", live)
	}
	s.signInOptions(t, s.License, "default", "localhost", "")
	s.signInOptions(t, s.License, "default", "localhost", "nobody")
	got := stats()
	if got["liveCeremonies"] != 2.0 || got["heapBytes"].(float64) <= 0 || got["goroutines"].(float64) <= 0 {
		t.Fatalf("stats with two open ceremonies = %v, want liveCeremonies 2 and a heap and goroutines", got)
	}
	if rt, ok := got["storeRoundTrips"]; ok {
		t.Errorf("stats of a server over Badger carry storeRoundTrips %v: an embedded store makes no round trips", rt)
	}
	deadline := time.Now().Add(3 * time.Second)
	for stats()["liveCeremonies"] != 0.0 {
		if time.Now().After(deadline) {
			t.Fatalf("ceremonies still live 2 s after their 1 s timeout: %v", stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
