package actors

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// The engine's hot paths, one benchmark each (the store's are in persistence/badger, the
// envelope's in httpapi). docs/bench-baseline.txt holds their figures; compare with benchstat
// after changing one of them (docs/performance.md says how).

// BenchmarkBeginSignIn measures a discoverable options call: supervisor, ceremony actor,
// go-webauthn options, one round trip. Ceremonies expire after 100 ms, so the number alive
// stays bounded (a few thousand) however long the benchmark runs.
func BenchmarkBeginSignIn(b *testing.B) {
	e := newTestEngine(b, Config{CeremonyTimeout: 100 * time.Millisecond}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkActorRoundTrip measures one request and answer through a community supervisor (the
// path every ceremony call takes twice: engine → supervisor → answer).
func BenchmarkActorRoundTrip(b *testing.B) {
	e := newTestEngine(b, Config{CeremonyTimeout: time.Minute}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Live(ctx, "c1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGroupCommit measures a sign-in's counter write through the writer actor with 16
// writers per CPU: the writer groups the writes that arrive while a batch commits into the
// next synced Badger transaction. Reported per write, with the mean batch size.
func BenchmarkGroupCommit(b *testing.B) {
	var batches atomic.Int64
	e := newTestEngine(b, Config{CeremonyTimeout: time.Minute}, func(s Store) Store { return countingStore{s, &batches} })
	u := newBenchUser(b, e)
	stored, err := e.deps.store.CredentialsOf(ctx, "c1", u.username)
	if err != nil || len(stored) != 1 {
		b.Fatal(stored, err)
	}
	id := stored[0].ID
	start := batches.Load()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Counter 0 is never a regression: passkeys that keep no counter send 0.
			if _, err := e.Write(ctx, persistence.RecordSignIn{ID: id, At: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(batches.Load()-start), "writes/batch")
}

// countingStore counts the batches applied.
type countingStore struct {
	Store
	batches *atomic.Int64
}

func (c countingStore) Apply(ctx context.Context, ops []persistence.Op) []persistence.Result {
	c.batches.Add(1)
	return c.Store.Apply(ctx, ops)
}

// BenchmarkVerifyAssertion measures what a ceremony actor runs on an assertion before its write,
// without actors or store: go-webauthn's parse of the decoded credential, the ceremony's name,
// and the whole verification (challenge, origin, RP ID hash, flags, ECDSA P-256 signature).
func BenchmarkVerifyAssertion(b *testing.B) {
	r := newFuzzRP(b)
	raw := r.assertions[0]
	b.ReportAllocs()
	for b.Loop() {
		if err := r.verifyAssertion(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFinishSignIn measures the result call of a sign-in: parse, routing, verification in
// the ceremony actor, the synced counter write (grouped with the others in flight) and the
// token; 16 callers per CPU. The options and the authenticator's signatures are made before the
// timer starts; the passkeys keep no counter (0), so results may complete in any order.
func BenchmarkFinishSignIn(b *testing.B) {
	e := newTestEngine(b, Config{CeremonyTimeout: 10 * time.Minute, MaxCeremonies: 1 << 30}, nil)
	const users = 32
	signers := make([]*benchUser, users)
	for i := range signers {
		signers[i] = newBenchUser(b, e)
	}
	results := make([]messages.FinishSignIn, b.N)
	for i := range results {
		results[i] = signers[i%users].signedResult(b, e, false)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := e.FinishSignIn(ctx, results[next.Add(1)-1])
			if err != nil || res.Token == "" {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSignInCeremony measures a whole sign-in (options, verification in the ceremony
// actor, the synced counter write, the token) for one registered ES256 passkey per goroutine,
// 16 goroutines per CPU, so that the writer can group commits as under load. The client's
// signing (virtualwebauthn) runs in the same process and is part of the figure.
func BenchmarkSignInCeremony(b *testing.B) {
	e := newTestEngine(b, Config{CeremonyTimeout: time.Minute}, nil)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		u := newBenchUser(b, e)
		for pb.Next() {
			res, err := e.FinishSignIn(ctx, u.signedResult(b, e, true))
			if err != nil || res.Token == "" {
				b.Fatal(err)
			}
		}
	})
}

// benchUser is a registered user with one ES256 passkey in a software authenticator.
type benchUser struct {
	mu       sync.Mutex
	username string
	auth     virtualwebauthn.Authenticator
	cred     virtualwebauthn.Credential
}

var benchRP = virtualwebauthn.RelyingParty{ID: "localhost", Name: "c1", Origin: "http://localhost:8080"}

func newBenchUser(b testing.TB, e *Engine) *benchUser {
	u := &benchUser{username: rand.Text(), auth: virtualwebauthn.NewAuthenticator(), cred: benchCredential()}
	opts, err := e.BeginRegistration(ctx, messages.BeginRegistration{Scope: scope, Username: u.username})
	if err != nil {
		b.Fatal(err)
	}
	ao, _ := virtualwebauthn.ParseAttestationOptions(string(opts.Options))
	if _, err := e.FinishRegistration(ctx, messages.FinishRegistration{Scope: scope,
		Credential: credentialOf(b, []byte(virtualwebauthn.CreateAttestationResponse(benchRP, u.auth, u.cred, *ao)))}); err != nil {
		b.Fatal(err)
	}
	u.auth.Options.UserHandle = []byte(ao.UserID)
	u.auth.AddCredential(u.cred)
	return u
}

// signedResult asks for sign-in options by username and answers them with the next counter,
// or with counter 0 (as passkeys that keep no counter do) when results may arrive out of order.
func (u *benchUser) signedResult(b testing.TB, e *Engine, counted bool) messages.FinishSignIn {
	opts, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope, Username: u.username})
	if err != nil {
		b.Fatal(err)
	}
	so, _ := virtualwebauthn.ParseAssertionOptions(string(opts.Options))
	u.mu.Lock()
	if counted {
		u.cred.Counter++
	}
	cred := u.cred
	u.mu.Unlock()
	return messages.FinishSignIn{Scope: scope,
		Credential: credentialOf(b, []byte(virtualwebauthn.CreateAssertionResponse(benchRP, u.auth, cred, *so)))}
}

func benchCredential() virtualwebauthn.Credential {
	for {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if len(key.X.Bytes()) == 32 && len(key.Y.Bytes()) == 32 {
			der, _ := x509.MarshalPKCS8PrivateKey(key)
			return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
		}
	}
}
