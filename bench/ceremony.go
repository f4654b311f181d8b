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
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/descope/virtualwebauthn"
)

// The calls of a ceremony, as they are named in the report whichever the route family: the u1
// route is /webauthn/u1/<call>, the sealed one /webauthn/<call>.
const (
	callRegOptions    = "attestation/options"
	callRegResult     = "attestation/result"
	callSignInOptions = "assertion/options"
	callSignInResult  = "assertion/result"
)

// client speaks the u1 or the sealed routes of one server, or of the nodes of a cluster, for
// one community, and records every call. The transport is chosen per call by the user's
// envelope: none for u1. Ceremony n sends its options to node n and its result to node n+1
// (modulo the number of nodes): round robin, and with two nodes or more every result reaches a
// node that did not issue its options, as behind a load balancer without stickiness.
type client struct {
	http    *http.Client
	cfg     config
	rp      virtualwebauthn.RelyingParty
	stats   *stats
	runID   string      // makes this run's usernames unique in a store that outlives it
	service *serviceKey // the service's envelope key (sealed routes only)
}

func newClient(cfg config) *client {
	transport := &http.Transport{
		MaxIdleConns:        cfg.users + 16,
		MaxIdleConnsPerHost: cfg.users + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &client{
		http:  &http.Client{Transport: transport, Timeout: 60 * time.Second},
		cfg:   cfg,
		rp:    virtualwebauthn.RelyingParty{ID: cfg.rpID, Name: cfg.community, Origin: cfg.origin},
		stats: newStats(),
		runID: rand.Text()[:8],
	}
}

// user is a virtual user: a username and a software authenticator with (after registration)
// one ES256 passkey. A user runs one ceremony at a time, so its counter only moves forward.
type user struct {
	name string
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
	key  *ecdsa.PrivateKey // cred's key, to sign assertions without re-parsing it
	// env is the user's session with the sealed routes; nil on the u1 routes.
	env *envelope
	// seeded is set for a worker that signs in as users of a seeded store instead of as itself.
	seeded *seededRange
}

func (c *client) newUser(kind string, n int) *user {
	cred, key := newES256Credential()
	return &user{name: fmt.Sprintf("bench-%s-%s%d", c.runID, kind, n), auth: virtualwebauthn.NewAuthenticator(), cred: cred, key: key}
}

// newES256Credential makes a P-256 credential whose coordinates are both 32 bytes long:
// virtualwebauthn writes big.Int.Bytes() into the COSE key, which drops leading zero bytes, and
// webauthnd rightly refuses such a key (about 1 key in 128).
func newES256Credential() (virtualwebauthn.Credential, *ecdsa.PrivateKey) {
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
		return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der), key
	}
}

// callError is a call that did not answer 200: its status (0 when no answer came) and the
// error body's code.
type callError struct {
	call       string
	status     int
	code       string
	retryAfter string
	err        error
}

func (e *callError) Error() string {
	if e.status == 0 {
		return fmt.Sprintf("%s: %v", e.call, e.err)
	}
	return fmt.Sprintf("%s: %d %s", e.call, e.status, e.code)
}

// node is the base URL of node n (round robin over --url).
func (c *client) node(n int64) string { return c.cfg.urls[n%int64(len(c.cfg.urls))] }

// post sends body to a route of node n and returns the response body of a 200: to the u1
// route when env is nil, else sealed with env to the sealed route, whose answer it opens. Every call, answered
// or not, is recorded in c.stats with its latency, sealing and opening included (an SDK pays
// them too).
func (c *client) post(ctx context.Context, n int64, env *envelope, call string, sessionInfo string, body []byte) ([]byte, error) {
	start := time.Now()
	path := "/webauthn/u1/" + call
	if env != nil {
		path, body = "/webauthn/"+call, env.body(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.node(n)+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if env != nil {
		env.headers(req.Header, c.cfg.license, start)
	} else {
		req.Header.Set("licensekey", c.cfg.license)
	}
	if sessionInfo != "" {
		req.Header.Set("sessionInfo", sessionInfo)
	}
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // the run was stopped: not the server's error
		}
		c.stats.record(call, time.Since(start), 0, "transport")
		return nil, &callError{call: call, err: err}
	}
	out, err := io.ReadAll(res.Body)
	res.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		c.stats.record(call, elapsed, 0, "transport")
		return nil, &callError{call: call, err: err}
	}
	if res.StatusCode == http.StatusOK {
		if env != nil {
			if out, err = env.unwrap(out); err != nil {
				c.stats.record(call, elapsed, 0, "envelope")
				return nil, &callError{call: call, err: err}
			}
			elapsed = time.Since(start)
		}
		c.stats.record(call, elapsed, http.StatusOK, "")
		return out, nil
	}
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(out, &e)
	if e.Code == "" {
		e.Code = "unknown"
	}
	retryAfter := res.Header.Get("Retry-After")
	if res.StatusCode == http.StatusTooManyRequests && retryAfter == "" {
		e.Code += " (no Retry-After)"
	}
	c.stats.record(call, elapsed, res.StatusCode, e.Code)
	return nil, &callError{call: call, status: res.StatusCode, code: e.Code, retryAfter: retryAfter}
}

// withIDs merges dns, communityId and tenantId into a JSON object, as BlockID SDKs do.
func (c *client) withIDs(object []byte) []byte {
	ids, _ := json.Marshal(map[string]string{"dns": c.cfg.rpID, "communityId": c.cfg.community, "tenantId": c.cfg.tenant})
	out := make([]byte, 0, len(ids)+len(object))
	out = append(out, ids[:len(ids)-1]...)
	out = append(out, ',')
	return append(out, bytes.TrimSpace(object)[1:]...)
}

// register runs a whole registration of u's passkey, as ceremony n.
func (c *client) register(ctx context.Context, u *user, n int64) error {
	req, _ := json.Marshal(map[string]string{"dns": c.cfg.rpID, "username": u.name, "displayName": u.name,
		"communityId": c.cfg.community, "tenantId": c.cfg.tenant})
	raw, err := c.post(ctx, n, u.env, callRegOptions, "", req)
	if err != nil {
		return err
	}
	var res struct {
		Data        json.RawMessage `json:"data"`
		SessionInfo string          `json:"sessionInfo"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("%s: %w", callRegOptions, err)
	}
	opts, err := virtualwebauthn.ParseAttestationOptions(string(res.Data))
	if err != nil {
		return fmt.Errorf("%s: %w", callRegOptions, err)
	}
	att := virtualwebauthn.CreateAttestationResponse(c.rp, u.auth, u.cred, *opts)
	if _, err := c.post(ctx, n+1, u.env, callRegResult, res.SessionInfo, c.withIDs([]byte(att))); err != nil {
		return err
	}
	u.auth.Options.UserHandle = []byte(opts.UserID)
	u.auth.AddCredential(u.cred)
	return nil
}

// signIn runs a whole sign-in with u's passkey, as ceremony n: by username, or discoverable (no
// username; the authenticator answers with its user handle).
func (c *client) signIn(ctx context.Context, u *user, byUsername bool, n int64) error {
	fields := map[string]string{"dns": c.cfg.rpID, "communityId": c.cfg.community, "tenantId": c.cfg.tenant}
	if byUsername {
		fields["username"] = u.name
	}
	req, _ := json.Marshal(fields)
	raw, err := c.post(ctx, n, u.env, callSignInOptions, "", req)
	if err != nil {
		return err
	}
	var opts struct {
		Challenge   string `json:"challenge"`
		SessionInfo string `json:"sessionInfo"`
	}
	if err := json.Unmarshal(raw, &opts); err != nil || opts.Challenge == "" {
		return fmt.Errorf("%s: no challenge in %.200s", callSignInOptions, raw)
	}
	u.cred.Counter++
	body, err := c.assertion(u, opts.Challenge)
	if err != nil {
		return err
	}
	out, err := c.post(ctx, n+1, u.env, callSignInResult, opts.SessionInfo, body)
	if err != nil {
		return err
	}
	var done struct {
		Token string `json:"signature_token"`
	}
	if err := json.Unmarshal(out, &done); err != nil || done.Token == "" {
		return errors.New(callSignInResult + ": answered 200 without a signature_token")
	}
	return nil
}

// assertion is the result body of a sign-in: what u's authenticator answers to challenge (as
// virtualwebauthn would: user present and verified, the credential's counter), plus the ids.
// It signs with u.key directly, because virtualwebauthn re-parses the PKCS #8 key on every
// signature, which took 15% of the harness's CPU, CPU that a shared machine takes from the
// server.
func (c *client) assertion(u *user, challenge string) ([]byte, error) {
	clientData, _ := json.Marshal(struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
		Origin    string `json:"origin"`
	}{"webauthn.get", challenge, c.cfg.origin})
	rpIDHash := sha256.Sum256([]byte(c.cfg.rpID))
	authData := append(rpIDHash[:], flagUserPresent|flagUserVerified)
	authData = binary.BigEndian.AppendUint32(authData, u.cred.Counter)
	clientDataHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(authData, clientDataHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, u.key, digest[:])
	if err != nil {
		return nil, err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	type response struct {
		ClientDataJSON    string `json:"clientDataJSON"`
		AuthenticatorData string `json:"authenticatorData"`
		Signature         string `json:"signature"`
		UserHandle        string `json:"userHandle"`
	}
	return json.Marshal(struct {
		ID          string   `json:"id"`
		RawID       string   `json:"rawId"`
		Type        string   `json:"type"`
		Response    response `json:"response"`
		DNS         string   `json:"dns"`
		CommunityID string   `json:"communityId"`
		TenantID    string   `json:"tenantId"`
	}{
		ID: b64(u.cred.ID), RawID: b64(u.cred.ID), Type: "public-key",
		Response: response{ClientDataJSON: b64(clientData), AuthenticatorData: b64(authData),
			Signature: b64(sig), UserHandle: b64(u.auth.Options.UserHandle)},
		DNS: c.cfg.rpID, CommunityID: c.cfg.community, TenantID: c.cfg.tenant,
	})
}

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUserPresent  = 0x01
	flagUserVerified = 0x04
)
