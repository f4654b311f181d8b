package actors

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"go.uber.org/zap"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// ctx is the context of the tests' calls, which never end it.
var ctx = context.Background()

// newTestEngine starts an engine on a real store with one community, "c1" (RP ID localhost).
func newTestEngine(t testing.TB, cfg Config, wrap func(Store) Store) *Engine {
	t.Helper()
	store, err := badger.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	_, err = persistence.ApplyOne(ctx, store, persistence.PutCommunity{Create: true, Community: persistence.Community{
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
		n, err := e.Live(ctx, "c1")
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
	opts, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, e, 0, 2*time.Second)
	start := time.Now()
	_, err = e.FinishSignIn(ctx, messages.FinishSignIn{Scope: scope, Credential: resultFor(t, opts.Options)})
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
	opts, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	result := messages.FinishSignIn{Scope: scope, Credential: resultFor(t, opts.Options)}
	if _, err := e.FinishSignIn(ctx, result); code(err) == messages.CodeCeremonyNotFound || err == nil {
		t.Fatalf("first result: %v, want a verification failure from the ceremony", err)
	}
	if _, err := e.FinishSignIn(ctx, result); code(err) != messages.CodeCeremonyNotFound {
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
			if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("options call failed: %v", err)
	}
	if live, _ := e.Live(ctx, "c1"); live == 0 {
		t.Fatal("no live ceremonies right after the burst")
	}
	waitLive(t, e, 0, 10*time.Second)
}

// TestCapOnLiveCeremonies: a community holds at most MaxCeremonies live ceremonies, and one
// license at most MaxCeremoniesPerLicense of them; beyond either, 429 busy with Retry-After.
func TestCapOnLiveCeremonies(t *testing.T) {
	busy := func(t *testing.T, err error, what string) {
		t.Helper()
		var me *messages.Error
		if !errors.As(err, &me) || me.Code != messages.CodeBusy || me.RetryAfter <= 0 {
			t.Fatalf("%s: %v, want %s with RetryAfter", what, err, messages.CodeBusy)
		}
	}
	t.Run("per community", func(t *testing.T) {
		e := newTestEngine(t, Config{CeremonyTimeout: time.Minute, MaxCeremonies: 5, MaxCeremoniesPerLicense: 5}, nil)
		for i := range 5 {
			if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope}); err != nil {
				t.Fatalf("ceremony %d: %v", i, err)
			}
		}
		_, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
		busy(t, err, "ceremony beyond the community's cap")
	})
	t.Run("per license, a quarter of the community's by default", func(t *testing.T) {
		e := newTestEngine(t, Config{CeremonyTimeout: time.Minute, MaxCeremonies: 8}, nil)
		as := func(license string) error {
			s := scope
			s.LicenseID = license
			_, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: s})
			return err
		}
		for i := range 2 {
			if err := as("greedy"); err != nil {
				t.Fatalf("greedy's ceremony %d: %v", i, err)
			}
		}
		busy(t, as("greedy"), "greedy's third ceremony")
		for i := range 2 {
			if err := as("modest"); err != nil {
				t.Fatalf("another license's ceremony %d while greedy is at its cap: %v", i, err)
			}
		}
	})
	t.Run("a license's ended ceremony frees its place", func(t *testing.T) {
		e := newTestEngine(t, Config{CeremonyTimeout: 200 * time.Millisecond, MaxCeremonies: 100, MaxCeremoniesPerLicense: 1}, nil)
		if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope}); err != nil {
			t.Fatal(err)
		}
		_, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
		busy(t, err, "a second ceremony of a license capped at one")
		waitLive(t, e, 0, 2*time.Second)
		if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope}); err != nil {
			t.Fatalf("after the first expired: %v", err)
		}
	})
}

// panickyStore panics when a sign-in asks for the user "panic", as a faulty store might.
type panickyStore struct{ Store }

func (p panickyStore) SignInSubject(ctx context.Context, communityID, username string) (persistence.SignInSubject, error) {
	if username == "panic" {
		panic("store fault")
	}
	return p.Store.SignInSubject(ctx, communityID, username)
}

func TestPanickingCeremonyDoesNotTakeItsCommunityDown(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute, RequestTimeout: 10 * time.Second}, func(s Store) Store { return panickyStore{s} })
	start := time.Now()
	_, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: "panic"})
	if err == nil || code(err) != messages.CodeInternal {
		t.Fatalf("panicking ceremony: %v, want %s", err, messages.CodeInternal)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the caller of a panicking ceremony waited %s", d)
	}
	if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: "someone"}); err != nil {
		t.Fatalf("the community is down after a panic: %v", err)
	}
	waitLive(t, e, 1, 2*time.Second)
}

func TestOptionsCarryTheCeremonysChallenge(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil)
	seen := map[string]bool{}
	for range 100 {
		opts, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
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

// TestRegistrationWritesOnlyItsResult: registration options only read (a new username's user
// exists only once a result stores it with its first passkey), and when two first
// registrations of one username race, the second result to arrive gets 409 and writes nothing.
func TestRegistrationWritesOnlyItsResult(t *testing.T) {
	var store *badger.Store
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, func(s Store) Store { store = s.(*badger.Store); return s })
	digest := func() []byte {
		t.Helper()
		d, err := store.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	before := digest()
	if _, err := e.BeginRegistration(ctx, messages.BeginRegistration{Scope: scope, Username: "ghost-never-finished"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, digest()) {
		t.Fatal("registration options changed the store")
	}
	if _, err := store.User(ctx, "c1", "ghost-never-finished"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("User(ghost-never-finished) after options: %v, want ErrNotFound", err)
	}

	type started struct {
		opts *virtualwebauthn.AttestationOptions
		auth virtualwebauthn.Authenticator
	}
	var runs [2]started
	for i := range runs {
		o, err := e.BeginRegistration(ctx, messages.BeginRegistration{Scope: scope, Username: "carol"})
		if err != nil {
			t.Fatal(err)
		}
		runs[i].opts, _ = virtualwebauthn.ParseAttestationOptions(string(o.Options))
		runs[i].auth = virtualwebauthn.NewAuthenticator()
	}
	if runs[0].opts.UserID == runs[1].opts.UserID || len(runs[0].opts.UserID) != 32 {
		t.Fatalf("two first registrations got user handles %q and %q, want two fresh 32-byte handles", runs[0].opts.UserID, runs[1].opts.UserID)
	}
	finish := func(r started) error {
		_, err := e.FinishRegistration(ctx, messages.FinishRegistration{Scope: scope, Credential: credentialOf(t,
			[]byte(virtualwebauthn.CreateAttestationResponse(benchRP, r.auth, benchCredential(), *r.opts)))})
		return err
	}
	if err := finish(runs[1]); err != nil {
		t.Fatalf("the first result: %v", err)
	}
	before = digest()
	err := finish(runs[0])
	var me *messages.Error
	if !errors.As(err, &me) || me.Code != messages.CodeConflict || !strings.Contains(me.Message, "start the registration again") {
		t.Fatalf("the overtaken registration: %v, want %s saying to start again", err, messages.CodeConflict)
	}
	if !bytes.Equal(before, digest()) {
		t.Fatal("the refused registration changed the store")
	}
	if u, err := store.User(ctx, "c1", "carol"); err != nil || string(u.Handle) != runs[1].opts.UserID {
		t.Fatalf("User(carol) = %+v, %v; want the first result's handle", u, err)
	}
}

// requestLabel is the context key under which TestCeremonyReadsUnderItsRequestsContext names
// each request.
type requestLabel struct{}

// labelStore records the request label of the context of every read the engine makes.
type labelStore struct {
	Store
	mu     *sync.Mutex
	labels *[]any
}

func (s labelStore) saw(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.labels = append(*s.labels, ctx.Value(requestLabel{}))
}

func (s labelStore) Community(ctx context.Context, id string) (persistence.Community, error) {
	s.saw(ctx)
	return s.Store.Community(ctx, id)
}

func (s labelStore) User(ctx context.Context, communityID, username string) (persistence.User, error) {
	s.saw(ctx)
	return s.Store.User(ctx, communityID, username)
}

func (s labelStore) CredentialsOf(ctx context.Context, communityID, username string) ([]persistence.Credential, error) {
	s.saw(ctx)
	return s.Store.CredentialsOf(ctx, communityID, username)
}

func (s labelStore) Credential(ctx context.Context, id []byte) (persistence.Credential, error) {
	s.saw(ctx)
	return s.Store.Credential(ctx, id)
}

func (s labelStore) SignInSubject(ctx context.Context, communityID, username string) (persistence.SignInSubject, error) {
	s.saw(ctx)
	return s.Store.SignInSubject(ctx, communityID, username)
}

func (s labelStore) VendorRecord(ctx context.Context, communityID, aaguid string) (persistence.VendorRecord, error) {
	s.saw(ctx)
	return s.Store.VendorRecord(ctx, communityID, aaguid)
}

func (s labelStore) MDSEntryByAAGUID(ctx context.Context, aaguid string) (persistence.MDSEntry, error) {
	s.saw(ctx)
	return s.Store.MDSEntryByAAGUID(ctx, aaguid)
}

// TestCeremonyReadsUnderItsRequestsContext: the store reads a ceremony makes while it answers a
// request run under that request's context (so its deadline and cancellation reach the store),
// never under another request's; and a request whose context ended is refused without a
// ceremony being left waiting for it.
func TestCeremonyReadsUnderItsRequestsContext(t *testing.T) {
	var (
		mu     sync.Mutex
		labels []any
	)
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, func(s Store) Store { return labelStore{s, &mu, &labels} })
	step := func(label string, call func(ctx context.Context) error) {
		t.Helper()
		mu.Lock()
		labels = nil
		mu.Unlock()
		if err := call(context.WithValue(ctx, requestLabel{}, label)); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(labels) == 0 {
			t.Fatalf("%s read nothing", label)
		}
		for _, l := range labels {
			if l != label {
				t.Fatalf("%s read under the context of %v (all reads: %v)", label, l, labels)
			}
		}
	}
	auth, cred := virtualwebauthn.NewAuthenticator(), benchCredential()
	var regOpts messages.RegistrationOptions
	step("begin registration", func(ctx context.Context) (err error) {
		regOpts, err = e.BeginRegistration(ctx, messages.BeginRegistration{Scope: scope, Username: "alice"})
		return err
	})
	ao, err := virtualwebauthn.ParseAttestationOptions(string(regOpts.Options))
	if err != nil {
		t.Fatal(err)
	}
	step("finish registration", func(ctx context.Context) error {
		_, err := e.FinishRegistration(ctx, messages.FinishRegistration{Scope: scope,
			Credential: credentialOf(t, []byte(virtualwebauthn.CreateAttestationResponse(benchRP, auth, cred, *ao)))})
		return err
	})
	auth.Options.UserHandle = []byte(ao.UserID)
	auth.AddCredential(cred)
	var signOpts messages.SignInOptions
	// A discoverable sign-in: its result reads the credential it names.
	step("begin sign-in", func(ctx context.Context) (err error) {
		signOpts, err = e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
		return err
	})
	so, err := virtualwebauthn.ParseAssertionOptions(string(signOpts.Options))
	if err != nil {
		t.Fatal(err)
	}
	cred.Counter++
	step("finish sign-in", func(ctx context.Context) error {
		_, err := e.FinishSignIn(ctx, messages.FinishSignIn{Scope: scope,
			Credential: credentialOf(t, []byte(virtualwebauthn.CreateAssertionResponse(benchRP, auth, cred, *so)))})
		return err
	})
	step("decoy sign-in", func(ctx context.Context) error {
		_, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: "nobody"})
		return err
	})

	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.BeginSignIn(ended, messages.BeginSignIn{Scope: scope, Username: "alice"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("BeginSignIn with an ended context: err = %v, want one caused by context.Canceled", err)
	}
	waitLive(t, e, 1, 5*time.Second) // the decoy sign-in's ceremony, waiting for its result
}
