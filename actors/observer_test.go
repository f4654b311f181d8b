package actors

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/webauthnd/webauthnd/messages"
)

// recorder is an Observer that keeps what it is told, as lines.
type recorder struct {
	mu      sync.Mutex
	events  []string
	commits int
}

func (r *recorder) add(e string) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) CeremonyEnded(kind messages.CeremonyKind, community string, outcome messages.Code, took time.Duration) {
	r.add(fmt.Sprintf("ended %s %s %s timed=%t", kind, community, outcome, took > 0))
}

func (r *recorder) Committed(batch int, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if batch > 0 && took > 0 {
		r.commits++
	}
}

func (r *recorder) CloneWarning(community string) { r.add("clone warning " + community) }
func (r *recorder) TokenIssued(community string)  { r.add("token " + community) }

// waitFor waits until the recorder holds every one of want (a ceremony is reported as it
// stops, which may be just after its caller got the answer).
func (r *recorder) waitFor(t *testing.T, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		r.mu.Lock()
		got := slices.Clone(r.events)
		r.mu.Unlock()
		missing := false
		for _, w := range want {
			if !slices.Contains(got, w) {
				missing = true
			}
		}
		if !missing {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the observer was told\n%q\nwant among it\n%q", got, want)
		}
	}
}

// TestObserverIsToldOfCeremonies drives real ceremonies and checks what the engine reports:
// each ceremony once, by kind, community and outcome, with a duration only when a result came;
// tokens, clone warnings and commits.
func TestObserverIsToldOfCeremonies(t *testing.T) {
	cases := []struct {
		name  string
		run   func(t *testing.T, e *Engine)
		want  []string
		ended int // ceremonies run: each is reported once
	}{
		{name: "a registration and a sign-in by username", run: func(t *testing.T, e *Engine) {
			u := newBenchUser(t, e)
			if _, err := e.FinishSignIn(ctx, u.signedResult(t, e, true)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"ended registration c1 ok timed=true", "ended signin c1 ok timed=true", "token c1"}, ended: 2},
		{name: "a discoverable sign-in", run: func(t *testing.T, e *Engine) {
			u := newBenchUser(t, e)
			opts, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
			if err != nil {
				t.Fatal(err)
			}
			so, _ := virtualwebauthn.ParseAssertionOptions(string(opts.Options))
			u.cred.Counter++
			if _, err := e.FinishSignIn(ctx, messages.FinishSignIn{Scope: scope,
				Credential: credentialOf(t, []byte(virtualwebauthn.CreateAssertionResponse(benchRP, u.auth, u.cred, *so)))}); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"ended discoverable c1 ok timed=true", "token c1"}, ended: 2},
		{name: "another user's passkey", run: func(t *testing.T, e *Engine) {
			alice, bob := newBenchUser(t, e), newBenchUser(t, e)
			opts, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: alice.username})
			if err != nil {
				t.Fatal(err)
			}
			so, _ := virtualwebauthn.ParseAssertionOptions(string(opts.Options))
			if _, err := e.FinishSignIn(ctx, messages.FinishSignIn{Scope: scope,
				Credential: credentialOf(t, []byte(virtualwebauthn.CreateAssertionResponse(benchRP, bob.auth, bob.cred, *so)))}); err == nil {
				t.Fatal("bob's passkey signed alice in")
			}
		}, want: []string{"ended signin c1 credential_unknown timed=true"}, ended: 3},
		{name: "options refused", run: func(t *testing.T, e *Engine) {
			if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: messages.Scope{TenantID: "t1", CommunityID: "c1", RPID: "evil.example"}}); err == nil {
				t.Fatal("options for an RP ID of no community")
			}
		}, want: []string{"ended discoverable c1 rp_id_not_allowed timed=false"}, ended: 1},
		{name: "a counter that went backwards", run: func(t *testing.T, e *Engine) {
			u := newBenchUser(t, e)
			u.cred.Counter = 10
			if _, err := e.FinishSignIn(ctx, u.signedResult(t, e, false)); err != nil {
				t.Fatal(err)
			}
			u.cred.Counter = 3
			if _, err := e.FinishSignIn(ctx, u.signedResult(t, e, false)); messages.ErrorCode(err) != messages.CodeCounterRegression {
				t.Fatalf("regressed counter: %v", err)
			}
			u.cred.Counter = 20
			if res, err := e.FinishSignIn(ctx, u.signedResult(t, e, false)); err != nil || !res.CloneWarning {
				t.Fatalf("after a regression: %+v, %v", res, err)
			}
		}, want: []string{"ended signin c1 counter_regression timed=true", "clone warning c1"}, ended: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obs := &recorder{}
			e := newTestEngine(t, Config{CeremonyTimeout: time.Minute, Observer: obs}, nil)
			tc.run(t, e)
			obs.waitFor(t, tc.want...)
			waitLive(t, e, 0, 5*time.Second) // every ceremony has stopped, so has reported
			obs.mu.Lock()
			defer obs.mu.Unlock()
			ended := 0
			for _, ev := range obs.events {
				if strings.HasPrefix(ev, "ended ") {
					ended++
				}
			}
			if ended != tc.ended {
				t.Errorf("%d ceremonies reported, want %d: %q", ended, tc.ended, obs.events)
			}
			if obs.commits == 0 && tc.ended > 1 { // each case but the refused options writes
				t.Error("no commit was reported")
			}
		})
	}
}

// TestObserverIsToldOfExpiredCeremonies checks that a ceremony whose result never comes is
// reported once, as expired, without a duration.
func TestObserverIsToldOfExpiredCeremonies(t *testing.T) {
	obs := &recorder{}
	e := newTestEngine(t, Config{CeremonyTimeout: 50 * time.Millisecond, Observer: obs}, nil)
	if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: "nobody"}); err != nil {
		t.Fatal(err)
	}
	obs.waitFor(t, "ended signin c1 ceremony_expired timed=false")
	waitLive(t, e, 0, 5*time.Second)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.events) != 1 {
		t.Errorf("told %q, want one expiry", obs.events)
	}
}

// TestFinishSignInSaysDiscoverableOnFailure: a sign-in whose options named no user is
// discoverable whether it succeeds or fails, so that the audit trail files its failures under
// the same event as its successes (and the metrics, which the ceremony itself tells).
func TestFinishSignInSaysDiscoverableOnFailure(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil)
	u := newBenchUser(t, e)
	u.cred.Counter = 10
	if _, err := e.FinishSignIn(ctx, u.signedResult(t, e, false)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		username string
	}{{"discoverable", ""}, {"by username", u.username}} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: tc.username})
			if err != nil {
				t.Fatal(err)
			}
			so, _ := virtualwebauthn.ParseAssertionOptions(string(opts.Options))
			u.cred.Counter = 3 // backwards: refused after the passkey was found
			res, err := e.FinishSignIn(ctx, messages.FinishSignIn{Scope: scope,
				Credential: credentialOf(t, []byte(virtualwebauthn.CreateAssertionResponse(benchRP, u.auth, u.cred, *so)))})
			if messages.ErrorCode(err) != messages.CodeCounterRegression {
				t.Fatalf("a counter that went backwards: %v", err)
			}
			if want := tc.username == ""; res.Discoverable != want {
				t.Errorf("failed sign-in's Discoverable = %t, want %t", res.Discoverable, want)
			}
		})
	}
}
