package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/descope/virtualwebauthn"
)

// sealedClient is a BlockID-style caller of the sealed routes, written from the wire format:
// its own key pair on the service's curve, the AES-256-GCM key shared by ECDH (the
// x-coordinate, no KDF), 16-byte IVs, tokens in standard base64 of IV ‖ ciphertext ‖ tag.
type sealedClient struct {
	public string // standard base64 of X‖Y
	shared []byte
}

// newSealedClient makes a caller key on the curve /environment names and shares a key with
// the service key of /publickeys.
func newSealedClient(t *testing.T, s *testServer) *sealedClient {
	t.Helper()
	_, env, _ := s.call(t, "GET", "/webauthn/environment", nil, nil)
	_, keys, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	server, err := base64.StdEncoding.DecodeString(keys["publicKey"].(string))
	if err != nil || len(server) != 64 {
		t.Fatalf("publicKey %v", keys["publicKey"])
	}
	return sealedClientFor(t, env["ec_curve_name"].(string), server)
}

func sealedClientFor(t *testing.T, curve string, server []byte) *sealedClient {
	t.Helper()
	c := &sealedClient{}
	switch curve {
	case "secp256k1":
		priv, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := secp256k1.ParsePubKey(append([]byte{4}, server...))
		if err != nil {
			t.Fatal(err)
		}
		c.shared = secp256k1.GenerateSharedSecret(priv, pub)
		c.public = base64.StdEncoding.EncodeToString(priv.PubKey().SerializeUncompressed()[1:])
	case "prime256v1":
		priv, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ecdh.P256().NewPublicKey(append([]byte{4}, server...))
		if err != nil {
			t.Fatal(err)
		}
		if c.shared, err = priv.ECDH(pub); err != nil {
			t.Fatal(err)
		}
		c.public = base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes()[1:])
	default:
		t.Fatalf("unknown curve %q", curve)
	}
	return c
}

func (c *sealedClient) seal(t *testing.T, plaintext []byte) string {
	t.Helper()
	block, _ := aes.NewCipher(c.shared)
	aead, _ := cipher.NewGCMWithNonceSize(block, 16)
	iv := make([]byte, 16)
	_, _ = rand.Read(iv)
	return base64.StdEncoding.EncodeToString(aead.Seal(iv, iv, plaintext, nil))
}

func (c *sealedClient) open(t *testing.T, token string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		t.Fatalf("response data is not standard base64: %v", err)
	}
	block, _ := aes.NewCipher(c.shared)
	aead, _ := cipher.NewGCMWithNonceSize(block, 16)
	plain, err := aead.Open(nil, raw[:16], raw[16:], nil)
	if err != nil {
		t.Fatalf("response data does not decrypt: %v", err)
	}
	return plain
}

// requestID is encrypt({"ts","appid","uuid"}).
func (c *sealedClient) requestID(t *testing.T, ts time.Time, uuid string) string {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"ts": ts.Unix(), "appid": "com.example.app", "uuid": uuid})
	return c.seal(t, raw)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// headers are a fresh, valid set for license.
func (c *sealedClient) headers(t *testing.T, license string) map[string]string {
	t.Helper()
	return map[string]string{"publickey": c.public, "licensekey": c.seal(t, []byte(license)), "requestid": c.requestID(t, time.Now(), newUUID())}
}

// body is {"data": encrypt(JSON of v)}.
func (c *sealedClient) body(t *testing.T, v any) map[string]string {
	t.Helper()
	raw, _ := json.Marshal(v)
	return map[string]string{"data": c.seal(t, raw)}
}

// do calls a sealed route and returns the status and the decrypted (or, for errors, plain) body.
func (c *sealedClient) do(t *testing.T, s *testServer, path, license string, v any) (int, map[string]any) {
	t.Helper()
	status, body, _ := s.call(t, "POST", path, c.headers(t, license), c.body(t, v))
	if status != 200 {
		return status, body
	}
	if len(body) != 1 || body["data"] == nil {
		t.Fatalf("a sealed success must be {data} alone: %v", body)
	}
	var out map[string]any
	if err := json.Unmarshal(c.open(t, body["data"].(string)), &out); err != nil {
		t.Fatal(err)
	}
	return status, out
}

func TestSealedRegistrationAndSignIn(t *testing.T) {
	for _, curve := range []string{"secp256k1", "P-256"} {
		t.Run(curve, func(t *testing.T) {
			s := startServer(t, "", "--ec-curve", curve)
			c := newSealedClient(t, s)
			p := newPasskey(localRP, "sealed-user")

			status, res := c.do(t, s, "/webauthn/attestation/options", s.License,
				map[string]any{"dns": "localhost", "username": p.username, "displayName": "Sealed", "communityId": "default", "tenantId": "default"})
			if status != 200 || res["publickey"] == nil {
				t.Fatalf("attestation/options: %d %v", status, res)
			}
			raw, _ := json.Marshal(res["data"])
			aopts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			status, res = c.do(t, s, "/webauthn/attestation/result", s.License,
				ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *aopts), "localhost", "default"))
			if status != 200 || res["data"].(map[string]any)["sub"] != p.username {
				t.Fatalf("attestation/result: %d %v", status, res)
			}
			p.auth.Options.UserHandle = []byte(aopts.UserID)
			p.auth.AddCredential(p.cred)

			for _, username := range []string{p.username, ""} {
				status, res = c.do(t, s, "/webauthn/assertion/options", s.License, map[string]any{"dns": "localhost", "username": username, "communityId": "default"})
				if status != 200 {
					t.Fatalf("assertion/options: %d %v", status, res)
				}
				raw, _ = json.Marshal(res)
				sopts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
				if err != nil {
					t.Fatal(err)
				}
				p.cred.Counter++
				status, res = c.do(t, s, "/webauthn/assertion/result", s.License,
					ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *sopts), "localhost", "default"))
				if status != 200 || res["data"].(map[string]any)["sub"] != p.username {
					t.Fatalf("assertion/result: %d %v", status, res)
				}
				s.verifyToken(t, res["signature_token"].(string))
			}
		})
	}
}

// TestSealedBadInput is the spec of what each bad sealed request gets; none is a 5xx.
func TestSealedBadInput(t *testing.T) {
	s := startServer(t, "", "--allowed-time-span", "60s")
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--rp-id", "shop.localhost", "--origin", "https://shop.localhost")
	shopKey := s.admin(t, "license", "create", "--level", "community", "--community", "shop")
	acmeKey := s.admin(t, "license", "create", "--level", "service", "--tenant", "acme")
	systemKey := s.admin(t, "license", "create", "--level", "system")
	c := newSealedClient(t, s)
	other := newSealedClient(t, s)
	options := map[string]any{"dns": "localhost", "communityId": "default"}
	const path = "/webauthn/assertion/options"
	replayed := c.headers(t, s.License)
	if st, body, _ := s.call(t, "POST", path, replayed, c.body(t, options)); st != 200 {
		t.Fatalf("first use of a requestid: %d %v", st, body)
	}
	flip := func(token string, at int) string {
		raw, _ := base64.StdEncoding.DecodeString(token)
		raw[at] ^= 1
		return base64.StdEncoding.EncodeToString(raw)
	}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for a, b := range h {
			out[a] = b
		}
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	serverKey := func() []byte {
		_, keys, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
		raw, _ := base64.StdEncoding.DecodeString(keys["publicKey"].(string))
		return raw
	}()

	// respell gives the replayed request's publickey (64 bytes X‖Y) in another spelling of the
	// same point: prefix 4 (uncompressed), 6/7 (hybrid), or 2/3 (compressed, X only).
	respell := func(prefix byte) string {
		raw, _ := base64.StdEncoding.DecodeString(replayed["publickey"])
		if len(raw) != 64 {
			t.Fatalf("the test client's publickey is %d bytes, want 64", len(raw))
		}
		odd := raw[63] & 1
		switch prefix {
		case 2:
			return base64.StdEncoding.EncodeToString(append([]byte{2 + odd}, raw[:32]...))
		case 6:
			return base64.StdEncoding.EncodeToString(append([]byte{6 + odd}, raw...))
		}
		return base64.StdEncoding.EncodeToString(append([]byte{prefix}, raw...))
	}
	s.admin(t, "community", "create", "--id", "elsewhere", "--tenant", "globex", "--rp-id", "elsewhere.localhost", "--origin", "https://elsewhere.localhost")
	nowhere := map[string]any{"dns": "localhost", "communityId": "nowhere"}

	cases := []struct {
		name    string
		headers map[string]string
		body    any
		status  int
		code    string
	}{
		{"a valid request", c.headers(t, s.License), c.body(t, options), 200, ""},
		{"headers sealed for another caller key", with(other.headers(t, s.License), "publickey", c.public), c.body(t, options), 401, "license_invalid"},
		{"licensekey sealed under another key", with(c.headers(t, s.License), "licensekey", other.seal(t, []byte(s.License))), c.body(t, options), 401, "license_invalid"},
		{"licensekey in plain text", with(c.headers(t, s.License), "licensekey", s.License), c.body(t, options), 401, "license_invalid"},
		{"licensekey missing", with(c.headers(t, s.License), "licensekey", ""), c.body(t, options), 401, "license_invalid"},
		{"a license key that is not a license", c.headers(t, "not-a-license"), c.body(t, options), 401, "license_invalid"},
		{"tampered body ciphertext", c.headers(t, s.License), map[string]string{"data": flip(c.body(t, options)["data"], 20)}, 400, "envelope_invalid"},
		{"tampered body IV", c.headers(t, s.License), map[string]string{"data": flip(c.body(t, options)["data"], 3)}, 400, "envelope_invalid"},
		{"tampered body tag", c.headers(t, s.License), map[string]string{"data": func() string {
			tok := c.body(t, options)["data"]
			raw, _ := base64.StdEncoding.DecodeString(tok)
			return flip(tok, len(raw)-1)
		}()}, 400, "envelope_invalid"},
		{"body data in url-safe base64", c.headers(t, s.License), map[string]string{"data": strings.NewReplacer("+", "-", "/", "_").Replace(
			c.seal(t, []byte(strings.Repeat(`{"dns":"localhost"}`, 40))))}, 400, "envelope_invalid"},
		{"body not sealed", c.headers(t, s.License), options, 400, "envelope_invalid"},
		{"tampered licensekey", with(c.headers(t, s.License), "licensekey", flip(c.seal(t, []byte(s.License)), 25)), c.body(t, options), 401, "license_invalid"},
		{"stale ts", with(c.headers(t, s.License), "requestid", c.requestID(t, time.Now().Add(-2*time.Minute), newUUID())), c.body(t, options), 401, "request_stale"},
		{"future ts", with(c.headers(t, s.License), "requestid", c.requestID(t, time.Now().Add(2*time.Minute), newUUID())), c.body(t, options), 401, "request_stale"},
		{"replayed uuid", replayed, c.body(t, options), 401, "request_replayed"},
		{"replayed uuid, publickey respelled with the 0x04 prefix", with(replayed, "publickey", respell(4)), c.body(t, options), 401, "request_replayed"},
		{"replayed uuid, publickey respelled as a hybrid point (0x06/0x07)", with(replayed, "publickey", respell(6)), c.body(t, options), 400, "envelope_invalid"},
		{"replayed uuid, publickey respelled as a compressed point", with(replayed, "publickey", respell(2)), c.body(t, options), 400, "envelope_invalid"},
		{"requestid missing", with(c.headers(t, s.License), "requestid", ""), c.body(t, options), 401, "request_invalid"},
		{"requestid a bare UUID", with(c.headers(t, s.License), "requestid", newUUID()), c.body(t, options), 401, "request_invalid"},
		{"requestid not JSON", with(c.headers(t, s.License), "requestid", c.seal(t, []byte("ts=1"))), c.body(t, options), 401, "request_invalid"},
		{"requestid without ts", with(c.headers(t, s.License), "requestid", c.seal(t, []byte(`{"uuid":"x"}`))), c.body(t, options), 401, "request_invalid"},
		{"publickey missing", with(c.headers(t, s.License), "publickey", ""), c.body(t, options), 400, "envelope_invalid"},
		{"publickey off the curve", with(c.headers(t, s.License), "publickey", base64.StdEncoding.EncodeToString(append(serverKey[:63:63], serverKey[63]^1))), c.body(t, options), 400, "envelope_invalid"},
		{"publickey of the wrong length", with(c.headers(t, s.License), "publickey", base64.StdEncoding.EncodeToString(serverKey[:33])), c.body(t, options), 400, "envelope_invalid"},
		{"publickey in url-safe base64", with(c.headers(t, s.License), "publickey", strings.NewReplacer("+", "-", "/", "_").Replace(c.public)+"-_"), c.body(t, options), 400, "envelope_invalid"},
		{"publickey without padding", with(c.headers(t, s.License), "publickey", strings.TrimRight(c.public, "=")+"A"), c.body(t, options), 400, "envelope_invalid"},
		{"privateKey header", with(c.headers(t, s.License), "privateKey", "c2VjcmV0"), c.body(t, options), 400, "private_key_refused"},
		{"community license outside its community", c.headers(t, shopKey), c.body(t, options), 403, "license_scope"},
		{"community license inside its community", c.headers(t, shopKey), c.body(t, map[string]any{"dns": "shop.localhost", "communityId": "shop"}), 200, ""},
		{"service license outside its tenant", c.headers(t, acmeKey), c.body(t, options), 403, "license_scope"},
		{"service license inside its tenant", c.headers(t, acmeKey), c.body(t, map[string]any{"dns": "shop.localhost", "communityId": "shop"}), 200, ""},
		{"system license anywhere", c.headers(t, systemKey), c.body(t, options), 200, ""},
		{"system license naming no community", c.headers(t, systemKey), c.body(t, map[string]any{"dns": "localhost"}), 400, "invalid_request"},
		{"service license naming another tenant's community", c.headers(t, acmeKey), c.body(t, map[string]any{"dns": "elsewhere.localhost", "communityId": "elsewhere"}), 403, "license_scope"},
		{"service license naming a community that does not exist", c.headers(t, acmeKey), c.body(t, nowhere), 403, "license_scope"},
		{"community license naming a community that does not exist", c.headers(t, shopKey), c.body(t, nowhere), 403, "license_scope"},
		{"system license naming a community that does not exist", c.headers(t, systemKey), c.body(t, nowhere), 404, "community_unknown"},
		{"scope before fields: another tenant's community and no dns", c.headers(t, acmeKey), c.body(t, map[string]any{"communityId": "default"}), 403, "license_scope"},
		{"a field named twice in the sealed body", c.headers(t, s.License), map[string]string{"data": c.seal(t, []byte(`{"dns":"localhost","communityId":"shop","communityId":"default"}`))}, 400, "invalid_request"},
		{"requestid naming uuid in another case", with(c.headers(t, s.License), "requestid", c.seal(t, []byte(fmt.Sprintf(`{"ts":%d,"uuid":"a","UUID":"b"}`, time.Now().Unix())))), c.body(t, options), 401, "request_invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := s.call(t, "POST", path, tc.headers, tc.body)
			if status != tc.status || (tc.code != "" && body["code"] != tc.code) {
				t.Fatalf("got %d %v, want %d %s", status, body, tc.status, tc.code)
			}
			if v := hdr.Get("sessionInfo"); v != "" {
				t.Fatalf("a sealed answer carries sessionInfo %q in plain text", v)
			}
			if status == 200 {
				var opts map[string]any
				if err := json.Unmarshal(c.open(t, body["data"].(string)), &opts); err != nil || opts["challenge"] == nil {
					t.Fatalf("sealed options: %v %v", err, opts)
				}
			}
			for _, secret := range []string{s.License, shopKey, acmeKey, systemKey, "c2VjcmV0"} {
				if strings.Contains(s.stderr.String(), secret) {
					t.Fatal("a secret reached the log")
				}
			}
		})
	}
}

func TestReplayRecordsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	c := newSealedClient(t, s)
	headers := c.headers(t, s.License)
	body := c.body(t, map[string]any{"dns": "localhost"})
	if st, res, _ := s.call(t, "POST", "/webauthn/assertion/options", headers, body); st != 200 {
		t.Fatalf("first: %d %v", st, res)
	}
	s.stop(t)
	s2 := startServer(t, dir)
	if st, res, _ := s2.call(t, "POST", "/webauthn/assertion/options", headers, body); st != 401 || res["code"] != "request_replayed" {
		t.Fatalf("replay after a restart: %d %v", st, res)
	}
}

// TestSealedWritesNothingBeforeLicense: a sealed request whose licensekey decrypts but is no
// usable license (unknown, revoked) is refused before its replay record is written, so its uuid
// is still fresh for the caller's next, licensed request; a licensed request's uuid is spent.
func TestSealedWritesNothingBeforeLicense(t *testing.T) {
	s := startServer(t, "")
	revoked := s.admin(t, "license", "create", "--level", "system")
	for _, line := range strings.Split(s.admin(t, "license", "list"), "\n")[1:] {
		if strings.Contains(line, "system") {
			s.admin(t, "license", "revoke", "--id", strings.Fields(line)[0])
		}
	}
	c := newSealedClient(t, s)
	body := c.body(t, map[string]any{"dns": "localhost"})
	const path = "/webauthn/assertion/options"
	uuid := newUUID()
	send := func(license string) (int, map[string]any) {
		h := c.headers(t, license)
		h["requestid"] = c.requestID(t, time.Now(), uuid)
		st, res, _ := s.call(t, "POST", path, h, body)
		return st, res
	}
	if st, res := send("not-a-license"); st != 401 || res["code"] != "license_invalid" {
		t.Fatalf("unknown license: %d %v", st, res)
	}
	if st, res := send(revoked); st != 401 || res["code"] != "license_disabled" {
		t.Fatalf("revoked license: %d %v", st, res)
	}
	if st, res := send(s.License); st != 200 {
		t.Fatalf("the uuid an unlicensed request carried was spent: %d %v", st, res)
	}
	if st, res := send(s.License); st != 401 || res["code"] != "request_replayed" {
		t.Fatalf("a licensed request's uuid was not spent: %d %v", st, res)
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	before := newSealedClient(t, s)
	_, jwks, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	oldKid := jwks["keys"].([]any)[0].(map[string]any)["kid"]

	s.admin(t, "keys", "rotate", "--envelope", "--signing")
	_, jwks, _ = s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	keys := jwks["keys"].([]any)
	if len(keys) != 2 || keys[0].(map[string]any)["kid"] == oldKid || keys[1].(map[string]any)["kid"] != oldKid {
		t.Fatalf("after a signing rotation the JWK set is %v; want the new key then the old one", keys)
	}
	after := newSealedClient(t, s)
	for name, c := range map[string]*sealedClient{"the previous envelope key, within its grace": before, "the new envelope key": after} {
		if st, res := c.do(t, s, "/webauthn/assertion/options", s.License, map[string]any{"dns": "localhost"}); st != 200 {
			t.Fatalf("%s: %d %v", name, st, res)
		}
	}
	p := newPasskey(localRP, "rota")
	s.register(t, s.License, "default", p)
	res := s.signIn(t, s.License, "default", p, true)
	tok := strings.Split(res["signature_token"].(string), ".")[0]
	hdr, _ := base64.RawURLEncoding.DecodeString(tok)
	if !strings.Contains(string(hdr), keys[0].(map[string]any)["kid"].(string)) {
		t.Fatalf("a new token's header %s does not carry the new kid", hdr)
	}
	s.stop(t)

	// The curve cannot change by flag: serve refuses and names the command that can.
	var out, errOut strings.Builder
	err := run(t.Context(), []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--ec-curve", "P-256"},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "keys rotate --envelope") {
		t.Fatalf("serve with another curve: %v", err)
	}
	s.admin(t, "keys", "rotate", "--envelope", "--ec-curve", "P-256")
	s2 := startServer(t, dir, "--ec-curve", "P-256")
	if _, env, _ := s2.call(t, "GET", "/webauthn/environment", nil, nil); env["ec_curve_name"] != "prime256v1" {
		t.Fatalf("ec_curve_name %v", env["ec_curve_name"])
	}
	// A client of the previous key, on the previous curve, still gets in within the grace: its
	// point is not on the new curve, which must not stop the previous key from being tried.
	if st, res := after.do(t, s2, "/webauthn/assertion/options", s.License, map[string]any{"dns": "localhost"}); st != 200 {
		t.Fatalf("a client of the previous curve's key, within its grace: %d %v", st, res)
	}
	if st, res := newSealedClient(t, s2).do(t, s2, "/webauthn/assertion/options", s.License, map[string]any{"dns": "localhost"}); st != 200 {
		t.Fatalf("a client of the new curve's key: %d %v", st, res)
	}
}

func TestLicenseListAndRevoke(t *testing.T) {
	s := startServer(t, "")
	key := s.admin(t, "license", "create", "--level", "system", "--expires", "24h")
	list := s.admin(t, "license", "list")
	// The header, the default community's license, the demo's (on for a localhost public URL)
	// and the new one.
	if strings.Contains(list, key) || !strings.Contains(list, "system") || !strings.Contains(list, "\ndemo ") || strings.Count(list, "\n") != 3 {
		t.Fatalf("license list:\n%s", list)
	}
	opts := map[string]any{"dns": "localhost", "communityId": "default"}
	if st, _, _ := s.call(t, "POST", "/webauthn/u1/assertion/options", lic(key), opts); st != 200 {
		t.Fatalf("a new system license: %d", st)
	}
	var revokeID string
	for _, line := range strings.Split(list, "\n")[1:] {
		if strings.Contains(line, "system") {
			revokeID = strings.Fields(line)[0]
		}
	}
	s.admin(t, "license", "revoke", "--id", revokeID)
	if st, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/options", lic(key), opts); st != 401 || body["code"] != "license_disabled" {
		t.Fatalf("a revoked license: %d %v", st, body)
	}
	if !strings.Contains(s.admin(t, "license", "list"), "revoked") {
		t.Fatal("license list does not show the revocation")
	}
}

// TestSealedInteropWithNode has Node.js's own crypto (an independent implementation of the
// envelope) build the headers and body; the server accepts them and Node decrypts the answer.
func TestSealedInteropWithNode(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not on PATH (run `make test-deps`)")
	}
	for _, tc := range []struct{ flag, name string }{{"secp256k1", "secp256k1"}, {"P-256", "prime256v1"}} {
		t.Run(tc.flag, func(t *testing.T) {
			s := startServer(t, "", "--ec-curve", tc.flag)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "node", "testdata/envelope/client.mjs", s.URL, s.License).CombinedOutput()
			if err != nil {
				t.Fatalf("node: %v\n%s", err, out)
			}
			var got struct {
				Curve        string
				Registration struct {
					Status int
					Body   struct {
						Data      struct{ Challenge string }
						Publickey string `json:"publickey"`
					}
				}
				SignIn struct {
					Status int
					Body   struct {
						Challenge string
						RPID      string `json:"rpId"`
					}
				}
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("node printed %s", out)
			}
			if got.Curve != tc.name || got.Registration.Status != 200 || got.Registration.Body.Data.Challenge == "" || got.Registration.Body.Publickey == "" ||
				got.SignIn.Status != 200 || got.SignIn.Body.Challenge == "" || got.SignIn.Body.RPID != "localhost" {
				t.Fatalf("node saw %s", out)
			}
		})
	}
}
