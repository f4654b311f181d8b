package actors

// The engine over a store that nodes share: two engines, nodes A and B, in this process over one
// PostgreSQL database, each with a store of its own (pool, caches, listener) and the challenge
// key, decoy secret and signing key the nodes of a cluster share. The database follows
// pgtest's conventions: WEBAUTHND_TEST_POSTGRES names the server; without one the tests skip,
// or fail under WEBAUTHND_REQUIRE_POSTGRES=1.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/postgres"
	"github.com/webauthnd/webauthnd/persistence/postgres/pgtest"
)

// node is one webauthnd node of a test cluster.
type node struct {
	name  string
	e     *Engine
	store *postgres.Store
	// puts and takes count the engine's PutCeremony and TakeCeremony calls.
	puts, takes *atomic.Int64
}

// countingCeremonies counts the calls that reach a real store's ceremony table.
type countingCeremonies struct {
	persistence.Ceremonies
	puts, takes *atomic.Int64
}

func (c countingCeremonies) PutCeremony(ctx context.Context, cer persistence.Ceremony) error {
	c.puts.Add(1)
	return c.Ceremonies.PutCeremony(ctx, cer)
}

func (c countingCeremonies) TakeCeremony(ctx context.Context, id string) (persistence.Ceremony, error) {
	c.takes.Add(1)
	return c.Ceremonies.TakeCeremony(ctx, id)
}

// newCluster starts nodes A and B over a new database with communities c1 and c2 (RP ID
// localhost). The stores neither sweep nor re-read their configuration during a test, so that
// their round trips are the engine's alone.
func newCluster(t *testing.T, cfg Config, opts ...postgres.Option) (a, b *node) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg.SigningKey, cfg.Issuer, cfg.DecoySecret = key, "http://localhost:8080/webauthn", []byte("decoy")
	cfg.ChallengeKey = make([]byte, 32)
	_, _ = rand.Read(cfg.ChallengeKey)
	if cfg.CeremonyTimeout == 0 {
		cfg.CeremonyTimeout = time.Minute
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Minute
	}
	if cfg.MaxCeremonies == 0 {
		cfg.MaxCeremonies = 1000
	}
	start := func(name string) *node {
		openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		s, err := postgres.Open(openCtx, dbURL, append([]postgres.Option{postgres.WithMaxConns(4),
			postgres.WithSweepEvery(time.Hour), postgres.WithRefreshEvery(time.Hour)}, opts...)...)
		if err != nil {
			t.Fatalf("node %s: %v", name, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		n := &node{name: name, store: s, puts: &atomic.Int64{}, takes: &atomic.Int64{}}
		c := cfg
		c.Ceremonies = countingCeremonies{s, n.puts, n.takes}
		if n.e, err = NewEngine(c, s, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.e.Stop)
		return n
	}
	a = start("A")
	for _, id := range []string{"c1", "c2"} {
		if _, err := persistence.ApplyOne(ctx, a.store, persistence.PutCommunity{Create: true, Community: persistence.Community{
			ID: id, TenantID: "t1", Name: id, RPIDs: []string{"localhost"}, Origins: []string{"http://localhost:8080"},
			UserVerification: persistence.VerificationPreferred}}); err != nil {
			t.Fatal(err)
		}
	}
	return a, start("B")
}

// clusterPasskey is a user's passkey in a software authenticator.
type clusterPasskey struct {
	username string
	auth     virtualwebauthn.Authenticator
	cred     virtualwebauthn.Credential
}

// register registers a new user's passkey: options from one node, the result to another.
func register(t *testing.T, options, result *node, sc messages.Scope, username string) *clusterPasskey {
	t.Helper()
	p := &clusterPasskey{username: username, auth: virtualwebauthn.NewAuthenticator(), cred: benchCredential()}
	fr := p.registration(t, options, sc)
	if _, err := result.e.FinishRegistration(ctx, fr); err != nil {
		t.Fatalf("registration, options from %s, result to %s: %v", options.name, result.name, err)
	}
	p.auth.AddCredential(p.cred)
	return p
}

// registration asks one node for registration options and answers them.
func (p *clusterPasskey) registration(t *testing.T, options *node, sc messages.Scope) messages.FinishRegistration {
	t.Helper()
	opts, err := options.e.BeginRegistration(ctx, messages.BeginRegistration{Scope: sc, Username: p.username})
	if err != nil {
		t.Fatalf("registration options from %s: %v", options.name, err)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts.Options))
	if err != nil {
		t.Fatal(err)
	}
	p.auth.Options.UserHandle = []byte(ao.UserID)
	return messages.FinishRegistration{Scope: sc, SessionInfo: opts.SessionInfo,
		Credential: credentialOf(t, []byte(virtualwebauthn.CreateAttestationResponse(benchRP, p.auth, p.cred, *ao)))}
}

// signIn asks one node for sign-in options (by username, or discoverable) and answers them with
// the next counter.
func (p *clusterPasskey) signIn(t *testing.T, options *node, sc messages.Scope, byUsername bool) messages.FinishSignIn {
	t.Helper()
	m := messages.BeginSignIn{Scope: sc}
	if byUsername {
		m.Username = p.username
	}
	opts, err := options.e.BeginSignIn(ctx, m)
	if err != nil {
		t.Fatalf("sign-in options from %s: %v", options.name, err)
	}
	so, err := virtualwebauthn.ParseAssertionOptions(string(opts.Options))
	if err != nil {
		t.Fatal(err)
	}
	p.cred.Counter++
	return messages.FinishSignIn{Scope: sc, SessionInfo: opts.SessionInfo,
		Credential: credentialOf(t, []byte(virtualwebauthn.CreateAssertionResponse(benchRP, p.auth, p.cred, *so)))}
}

// TestClusterFinishesOnAnyNode: a ceremony whose options one node issued finishes on either
// node, registrations and sign-ins (by username and discoverable) alike, and its token says
// who signed in.
func TestClusterFinishesOnAnyNode(t *testing.T) {
	a, b := newCluster(t, Config{})
	for _, tc := range []struct {
		name             string
		options, result  func() *node
		discoverableSign bool
	}{
		{"options on A, results on B", func() *node { return a }, func() *node { return b }, false},
		{"options on B, results on A", func() *node { return b }, func() *node { return a }, false},
		{"options on A, results on A", func() *node { return a }, func() *node { return a }, false},
		{"options on A, results on B, discoverable", func() *node { return a }, func() *node { return b }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			options, result := tc.options(), tc.result()
			p := register(t, options, result, scope, rand.Text())
			stored, err := b.store.CredentialsOf(ctx, "c1", p.username)
			if err != nil || len(stored) != 1 {
				t.Fatalf("the registered passkey: %v, %v", stored, err)
			}
			for i := range 2 {
				res, err := result.e.FinishSignIn(ctx, p.signIn(t, options, scope, !tc.discoverableSign))
				if err != nil {
					t.Fatalf("sign-in %d: %v", i, err)
				}
				if res.Username != p.username || res.Token == "" {
					t.Fatalf("sign-in %d: %+v", i, res)
				}
			}
			c, err := a.store.Credential(ctx, stored[0].ID)
			if err != nil || c.SignCount != p.cred.Counter {
				t.Fatalf("stored counter %d (%v), want %d", c.SignCount, err, p.cred.Counter)
			}
		})
	}
}

// TestClusterResultFinishesOnce: the same result sent to two nodes at once (or twice to one)
// succeeds exactly once; the other copy is ceremony_not_found.
func TestClusterResultFinishesOnce(t *testing.T) {
	a, b := newCluster(t, Config{})
	p := register(t, a, b, scope, "alice")
	type result func(n *node) error
	for _, pair := range [][2]*node{{a, b}, {b, a}, {b, b}, {a, a}} {
		for _, kind := range []string{"sign-in", "registration"} {
			t.Run(fmt.Sprintf("%s, options on A, results to %s and %s", kind, pair[0].name, pair[1].name), func(t *testing.T) {
				for round := range 5 {
					var send result
					if kind == "sign-in" {
						m := p.signIn(t, a, scope, true)
						send = func(n *node) error { _, err := n.e.FinishSignIn(ctx, m); return err }
					} else {
						q := &clusterPasskey{username: rand.Text(), auth: virtualwebauthn.NewAuthenticator(), cred: benchCredential()}
						m := q.registration(t, a, scope)
						send = func(n *node) error { _, err := n.e.FinishRegistration(ctx, m); return err }
					}
					errs := make([]error, 2)
					var wg sync.WaitGroup
					for i, n := range pair {
						wg.Go(func() { errs[i] = send(n) })
					}
					wg.Wait()
					ok, notFound := 0, 0
					for _, err := range errs {
						switch {
						case err == nil:
							ok++
						case code(err) == messages.CodeCeremonyNotFound:
							notFound++
						default:
							t.Fatalf("round %d: %v", round, err)
						}
					}
					if ok != 1 || notFound != 1 {
						t.Fatalf("round %d: %d successes and %d ceremony_not_found (%v), want one of each", round, ok, notFound, errs)
					}
				}
			})
		}
	}
}

// withChallenge is a result credential whose clientDataJSON carries challenge instead of its own.
func withChallenge(t *testing.T, c messages.Credential, challenge []byte) messages.Credential {
	t.Helper()
	var cd map[string]any
	if err := json.Unmarshal(c.ClientDataJSON, &cd); err != nil {
		t.Fatal(err)
	}
	cd["challenge"] = base64.RawURLEncoding.EncodeToString(challenge)
	c.ClientDataJSON, _ = json.Marshal(cd)
	return c
}

// challengeOf is the challenge a result credential answers.
func challengeOf(t *testing.T, c messages.Credential) []byte {
	t.Helper()
	raw, err := clientDataChallenge(c.ClientDataJSON)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestClusterRefusesBeforeTheStore: a result whose challenge was not issued for it (made up,
// changed, of another community, kind or license, or issued under another key) is
// ceremony_not_found, and one with another sessionInfo session_mismatch, on a node without the
// ceremony, before that node touches the database: no round trip, no take. The ceremony
// survives every one of them, and its own result then signs in on that node.
func TestClusterRefusesBeforeTheStore(t *testing.T) {
	a, b := newCluster(t, Config{})
	licensed := scope
	licensed.LicenseID = "l1"
	p := register(t, a, a, licensed, "alice")
	stranger := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil) // another key
	strangeOpts, err := stranger.BeginSignIn(ctx, messages.BeginSignIn{Scope: licensed})
	if err != nil {
		t.Fatal(err)
	}
	strange := challengeOf(t, resultFor(t, strangeOpts.Options))

	for _, tc := range []struct {
		name  string
		tweak func(m messages.FinishSignIn) (messages.FinishSignIn, bool) // bool: send as a registration
		want  messages.Code
	}{
		{"a made-up challenge", func(m messages.FinishSignIn) (messages.FinishSignIn, bool) {
			c := make([]byte, challengeSize)
			_, _ = rand.Read(c)
			m.Credential = withChallenge(t, m.Credential, c)
			return m, false
		}, messages.CodeCeremonyNotFound},
		{"a challenge with one bit changed", func(m messages.FinishSignIn) (messages.FinishSignIn, bool) {
			c := challengeOf(t, m.Credential)
			c[challengeRandom+1] ^= 1
			m.Credential = withChallenge(t, m.Credential, c)
			return m, false
		}, messages.CodeCeremonyNotFound},
		{"a challenge of a node with another key", func(m messages.FinishSignIn) (messages.FinishSignIn, bool) {
			m.Credential = withChallenge(t, m.Credential, strange)
			return m, false
		}, messages.CodeCeremonyNotFound},
		{"under another license", func(m messages.FinishSignIn) (messages.FinishSignIn, bool) {
			m.LicenseID = "l2"
			return m, false
		}, messages.CodeCeremonyNotFound},
		{"in another community", func(m messages.FinishSignIn) (messages.FinishSignIn, bool) {
			m.CommunityID = "c2"
			return m, false
		}, messages.CodeCeremonyNotFound},
		{"as a registration", func(m messages.FinishSignIn) (messages.FinishSignIn, bool) {
			return m, true
		}, messages.CodeCeremonyNotFound},
		{"with another sessionInfo", func(m messages.FinishSignIn) (messages.FinishSignIn, bool) {
			m.SessionInfo = "not-this-ceremonys"
			return m, false
		}, messages.CodeSessionMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			genuine := p.signIn(t, a, licensed, true)
			bad, asRegistration := tc.tweak(genuine)
			trips, takes := b.store.RoundTrips(), b.takes.Load()
			if asRegistration {
				_, err = b.e.FinishRegistration(ctx, messages.FinishRegistration{Scope: bad.Scope,
					SessionInfo: bad.SessionInfo, Credential: bad.Credential})
			} else {
				_, err = b.e.FinishSignIn(ctx, bad)
			}
			if code(err) != tc.want {
				t.Fatalf("refused with %v, want %s", err, tc.want)
			}
			if n := b.store.RoundTrips() - trips; n != 0 {
				t.Fatalf("the refusal cost %d database round trips, want none", n)
			}
			if n := b.takes.Load() - takes; n != 0 {
				t.Fatalf("the refusal took %d ceremonies, want none", n)
			}
			if _, err := b.e.FinishSignIn(ctx, genuine); err != nil {
				t.Fatalf("the ceremony's own result after the refusal: %v", err)
			}
		})
	}
}

// TestClusterResultUnderAnEndedContext: the request's context bounds the take: a result whose
// request ended is refused without consuming its ceremony, which its next copy finishes.
func TestClusterResultUnderAnEndedContext(t *testing.T) {
	a, b := newCluster(t, Config{})
	p := register(t, a, b, scope, "alice")
	m := p.signIn(t, a, scope, true)
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.e.FinishSignIn(ended, m); !errors.Is(err, context.Canceled) {
		t.Fatalf("a result under an ended context: %v, want one caused by context.Canceled", err)
	}
	if _, err := b.e.FinishSignIn(ctx, m); err != nil {
		t.Fatalf("the result again, under a live context: %v", err)
	}
}

// TestClusterIssuingNodeCountsUntilItsTimeout: a ceremony finished on another node still counts
// against the issuing node's live ceremonies (and caps) until its actor's timeout; the other
// node's actor is gone as soon as it has answered.
func TestClusterIssuingNodeCountsUntilItsTimeout(t *testing.T) {
	a, b := newCluster(t, Config{CeremonyTimeout: time.Second})
	p := register(t, a, a, scope, "alice")
	waitLive(t, a.e, 0, 5*time.Second)
	if _, err := b.e.FinishSignIn(ctx, p.signIn(t, a, scope, true)); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.e.Live(ctx, "c1"); n != 1 {
		t.Fatalf("the issuing node has %d live ceremonies right after the result, want 1", n)
	}
	waitLive(t, b.e, 0, 5*time.Second)
	waitLive(t, a.e, 0, 5*time.Second)
}

// TestClusterSignInRoundTrips: a sign-in whose options and result go to different nodes costs
// at most four database round trips in all (by username: the user with its passkeys and the
// PutCeremony; then the TakeCeremony and the RecordSignIn; discoverable: no user read, the
// credential read by the result instead), once the nodes' connections have prepared their
// statements and their caches hold the community and the authenticator's metadata.
func TestClusterSignInRoundTrips(t *testing.T) {
	a, b := newCluster(t, Config{}, postgres.WithMaxConns(1))
	p := register(t, a, b, scope, "alice")
	for _, byUsername := range []bool{true, false} {
		t.Run(map[bool]string{true: "by username", false: "discoverable"}[byUsername], func(t *testing.T) {
			var options, result uint64
			for range 3 { // the last pass is measured
				before := a.store.RoundTrips()
				m := p.signIn(t, a, scope, byUsername)
				options = a.store.RoundTrips() - before
				before = b.store.RoundTrips()
				if _, err := b.e.FinishSignIn(ctx, m); err != nil {
					t.Fatal(err)
				}
				result = b.store.RoundTrips() - before
			}
			t.Logf("options on A: %d round trips; result on B: %d", options, result)
			if options+result > 4 {
				t.Fatalf("a sign-in costs %d round trips (options %d, result %d), over the budget of 4", options+result, options, result)
			}
		})
	}
}
