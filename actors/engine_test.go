package actors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// newTestEngine starts an engine on a real store with one community, "c1" (RP ID localhost).
func newTestEngine(t testing.TB, cfg Config, wrap func(Store) Store) *Engine {
	t.Helper()
	store, err := persistence.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, err = store.ApplyOne(persistence.PutCommunity{Create: true, Community: persistence.Community{
		ID: "c1", TenantID: "t1", Name: "c1", RPIDs: []string{"localhost"}, Origins: []string{"http://localhost:8080"},
		UserVerification: persistence.VerificationPreferred}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg.SigningKey, cfg.Issuer, cfg.DecoySecret = key, "http://localhost:8080/webauthn", []byte("decoy")
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Minute
	}
	if cfg.MaxCeremonies == 0 {
		cfg.MaxCeremonies = 100_000
	}
	var s Store = store
	if wrap != nil {
		s = wrap(store)
	}
	e, err := NewEngine(cfg, s, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

var scope = messages.Scope{TenantID: "t1", CommunityID: "c1", RPID: "localhost"}

// resultFor is an assertion that names the ceremony of options; it is not signed, so a live
// ceremony refuses it on verification, but it reaches that ceremony.
// credentialOf decodes a PublicKeyCredential's JSON (base64url binary fields) as the wire does
// before it reaches the engine.
func credentialOf(tb testing.TB, raw []byte) messages.Credential {
	tb.Helper()
	c, err := decodeCredential(raw)
	if err != nil {
		tb.Fatalf("credential JSON: %v", err)
	}
	return c
}

func decodeCredential(raw []byte) (messages.Credential, error) {
	var body struct {
		ID                      protocol.URLEncodedBase64 `json:"id"`
		RawID                   protocol.URLEncodedBase64 `json:"rawId"`
		Type                    string                    `json:"type"`
		AuthenticatorAttachment string                    `json:"authenticatorAttachment"`
		ClientExtensionResults  json.RawMessage           `json:"clientExtensionResults"`
		Response                struct {
			ClientDataJSON    protocol.URLEncodedBase64 `json:"clientDataJSON"`
			AttestationObject protocol.URLEncodedBase64 `json:"attestationObject"`
			Transports        []string                  `json:"transports"`
			AuthenticatorData protocol.URLEncodedBase64 `json:"authenticatorData"`
			Signature         protocol.URLEncodedBase64 `json:"signature"`
			UserHandle        protocol.URLEncodedBase64 `json:"userHandle"`
		} `json:"response"`
	}
	err := json.Unmarshal(raw, &body)
	return messages.Credential{ID: body.ID, RawID: body.RawID, Type: body.Type, AuthenticatorAttachment: body.AuthenticatorAttachment,
		ClientExtensionResults: body.ClientExtensionResults, ClientDataJSON: body.Response.ClientDataJSON,
		AttestationObject: body.Response.AttestationObject, Transports: body.Response.Transports,
		AuthenticatorData: body.Response.AuthenticatorData, Signature: body.Response.Signature,
		UserHandle: body.Response.UserHandle}, err
}

func resultFor(t *testing.T, options []byte) messages.Credential {
	t.Helper()
	var o struct{ Challenge string }
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatal(err)
	}
	cd, _ := json.Marshal(map[string]string{"type": "webauthn.get", "challenge": o.Challenge, "origin": "http://localhost:8080"})
	body, _ := json.Marshal(map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": map[string]string{
		"clientDataJSON": base64.RawURLEncoding.EncodeToString(cd), "authenticatorData": "AAAA", "signature": "AAAA"}})
	return credentialOf(t, body)
}

func code(err error) messages.Code { return messages.ErrorCode(err) }

// waitLive waits until the community has want live ceremonies.
func waitLive(t *testing.T, e *Engine, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := e.Live("c1")
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d live ceremonies after %s, want %d", n, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTimedOutCeremonyIsAnsweredBySupervisor(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: 200 * time.Millisecond, RequestTimeout: 10 * time.Second}, nil)
	opts, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, e, 0, 2*time.Second)
	start := time.Now()
	_, err = e.FinishSignIn(messages.FinishSignIn{Scope: scope, Credential: resultFor(t, opts.Options)})
	if code(err) != messages.CodeCeremonyNotFound {
		t.Fatalf("late result: %v, want %s", err, messages.CodeCeremonyNotFound)
	}
	// The request timeout is 10 s: an answer within 1 s came from the supervisor, not a future.
	if d := time.Since(start); d > time.Second {
		t.Fatalf("late result answered after %s", d)
	}
}

func TestResultReachesItsCeremonyOnce(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil)
	opts, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	result := messages.FinishSignIn{Scope: scope, Credential: resultFor(t, opts.Options)}
	if _, err := e.FinishSignIn(result); code(err) == messages.CodeCeremonyNotFound || err == nil {
		t.Fatalf("first result: %v, want a verification failure from the ceremony", err)
	}
	if _, err := e.FinishSignIn(result); code(err) != messages.CodeCeremonyNotFound {
		t.Fatalf("second result: %v, want %s", err, messages.CodeCeremonyNotFound)
	}
	waitLive(t, e, 0, 2*time.Second)
}

func TestBurstLeavesNoCeremonyBehind(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Second}, nil)
	const n = 10_000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("options call failed: %v", err)
	}
	if live, _ := e.Live("c1"); live == 0 {
		t.Fatal("no live ceremonies right after the burst")
	}
	waitLive(t, e, 0, 10*time.Second)
}

func TestCapOnLiveCeremonies(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute, MaxCeremonies: 5}, nil)
	for i := range 5 {
		if _, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope}); err != nil {
			t.Fatalf("ceremony %d: %v", i, err)
		}
	}
	_, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope})
	var me *messages.Error
	if !errors.As(err, &me) || me.Code != messages.CodeBusy || me.RetryAfter <= 0 {
		t.Fatalf("ceremony beyond the cap: %v, want %s with RetryAfter", err, messages.CodeBusy)
	}
}

// panickyStore panics when asked for the user "panic", as a faulty store might.
type panickyStore struct{ Store }

func (p panickyStore) User(communityID, username string) (persistence.User, error) {
	if username == "panic" {
		panic("store fault")
	}
	return p.Store.User(communityID, username)
}

func TestPanickingCeremonyDoesNotTakeItsCommunityDown(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute, RequestTimeout: 10 * time.Second}, func(s Store) Store { return panickyStore{s} })
	start := time.Now()
	_, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope, Username: "panic"})
	if code(err) != messages.CodeInternal {
		t.Fatalf("panicking ceremony: %v, want %s", err, messages.CodeInternal)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the caller of a panicking ceremony waited %s", d)
	}
	if _, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope, Username: "someone"}); err != nil {
		t.Fatalf("the community is down after a panic: %v", err)
	}
	waitLive(t, e, 1, 2*time.Second)
}

func TestOptionsCarryTheCeremonysChallenge(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil)
	seen := map[string]bool{}
	for range 100 {
		opts, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		var o struct {
			Challenge string
			Timeout   int
			RPID      string `json:"rpId"`
		}
		_ = json.Unmarshal(opts.Options, &o)
		raw, err := base64.RawURLEncoding.DecodeString(o.Challenge)
		if err != nil || len(raw) != challengeSize || seen[o.Challenge] {
			t.Fatalf("challenge %q: not %d fresh random bytes", o.Challenge, challengeSize)
		}
		seen[o.Challenge] = true
		if o.Timeout != 60_000 || o.RPID != "localhost" {
			t.Fatalf("options %s", opts.Options)
		}
	}
}
