package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/postgres"
)

// signInBudget is the budget of database round trips for a whole sign-in.
const signInBudget = 4

// signInCalls are the store calls of a sign-in, as the engine makes them, each with the round
// trips it costs. With a username the options read the user and its passkeys; a discoverable
// sign-in reads the credential the result names instead.
type signInCall struct {
	name string
	call func(s *postgres.Store, i int) error
}

func signInCalls(c persistence.Credential, discoverable bool) []signInCall {
	ceremony := func(i int) string { return fmt.Sprintf("ceremony-%d", i) }
	calls := []signInCall{}
	if !discoverable {
		calls = append(calls, signInCall{"options: read the user and its passkeys", func(s *postgres.Store, _ int) error {
			_, creds, err := persistence.ReadUserAndCredentials(bg(), s, c.CommunityID, c.Username)
			if err == nil && len(creds) != 1 {
				err = fmt.Errorf("%d passkeys", len(creds))
			}
			return err
		}})
	}
	calls = append(calls,
		signInCall{"options: PutCeremony", func(s *postgres.Store, i int) error {
			return s.PutCeremony(bg(), persistence.Ceremony{ID: ceremony(i), CommunityID: c.CommunityID,
				State: make([]byte, 600), Expires: time.Now().Add(time.Minute)})
		}},
		signInCall{"result: TakeCeremony", func(s *postgres.Store, i int) error {
			_, err := s.TakeCeremony(bg(), ceremony(i))
			return err
		}},
	)
	if discoverable {
		calls = append(calls, signInCall{"result: read the credential", func(s *postgres.Store, _ int) error {
			_, err := s.Credential(bg(), c.ID)
			return err
		}})
	}
	return append(calls, signInCall{"result: RecordSignIn", func(s *postgres.Store, i int) error {
		return s.Apply(bg(), []persistence.Op{persistence.RecordSignIn{ID: c.ID, Counter: uint32(i + 1), At: time.Now()}})[0].Err
	}})
}

// signInStore is a store with one user and one passkey, on a pool of one connection, so that a
// first pass prepares every statement the sign-in uses.
func signInStore(t testing.TB) (*postgres.Store, persistence.Credential) {
	t.Helper()
	s := freshStore(t, postgres.WithMaxConns(1), postgres.WithSweepEvery(time.Hour), postgres.WithRefreshEvery(time.Hour))
	seedCommunity(t, s, "shop")
	c := credential("c1", user("shop", "alice", "ha"))
	mustApply(t, s, persistence.AddCredential{Credential: c})
	return s, c
}

// A sign-in costs at most four round trips, once its connection has prepared its statements
// (the first use of a statement on a connection costs one more).
func TestSignInRoundTrips(t *testing.T) {
	for _, discoverable := range []bool{false, true} {
		name := map[bool]string{false: "by username", true: "discoverable"}[discoverable]
		t.Run(name, func(t *testing.T) {
			s, c := signInStore(t)
			calls := signInCalls(c, discoverable)
			total := 0
			for pass := range 3 {
				total = 0
				for _, call := range calls {
					before := s.RoundTrips()
					if err := call.call(s, pass); err != nil {
						t.Fatalf("%s: %v", call.name, err)
					}
					n := int(s.RoundTrips() - before)
					total += n
					if pass > 0 {
						t.Logf("%-42s %d round trip(s)", call.name, n)
						if n != 1 {
							t.Errorf("%s: %d round trips, want 1", call.name, n)
						}
					}
				}
				if pass == 0 {
					t.Logf("first sign-in on a new connection: %d round trips (statements prepared)", total)
				}
			}
			if total > signInBudget {
				t.Fatalf("a sign-in costs %d round trips, over the budget of %d", total, signInBudget)
			}
		})
	}
}

// The round trips of the other writes, for the record: a registration, a batch of sign-ins.
func TestWriteRoundTrips(t *testing.T) {
	s, c := signInStore(t)
	measure := func(name string, ops func(i int) []persistence.Op) {
		var n uint64
		for pass := range 2 {
			before := s.RoundTrips()
			for i, r := range s.Apply(bg(), ops(pass)) {
				if r.Err != nil {
					t.Fatalf("%s: op %d: %v", name, i, r.Err)
				}
			}
			n = s.RoundTrips() - before
		}
		t.Logf("%-50s %d round trip(s)", name, n)
	}
	measure("AddCredential of a new user", func(i int) []persistence.Op {
		return []persistence.Op{persistence.AddCredential{Credential: credential(fmt.Sprintf("new-%d", i), user("shop", fmt.Sprintf("u%d", i), fmt.Sprintf("h%d", i)))}}
	})
	measure("AddCredential of an existing user", func(i int) []persistence.Op {
		return []persistence.Op{persistence.AddCredential{Credential: credential(fmt.Sprintf("more-%d", i), user("shop", "alice", "ha"))}}
	})
	measure("a batch of 100 RecordSignIn and RememberRequest", func(i int) []persistence.Op {
		var ops []persistence.Op
		for k := range 50 {
			ops = append(ops, persistence.RecordSignIn{ID: c.ID, Counter: uint32(1000*(i+1) + k), At: t1},
				persistence.RememberRequest{Caller: []byte("k"), UUID: fmt.Sprintf("%d-%d", i, k), Until: time.Now().Add(time.Minute)})
		}
		return ops
	})
	measure("RecordSignIn with a PutSecretIfAbsent", func(i int) []persistence.Op {
		return []persistence.Op{persistence.RecordSignIn{ID: c.ID, Counter: uint32(100000 + i), At: t1},
			persistence.PutSecretIfAbsent{Name: "x", Value: []byte("y")}}
	})
}

// BenchmarkSignInStoreCalls runs the store calls of sign-ins by username and reports their
// round trips per sign-in (roundtrips/op) beside the time.
func BenchmarkSignInStoreCalls(b *testing.B) {
	s, c := signInStore(b)
	calls := signInCalls(c, false)
	for _, call := range calls { // prepare every statement
		if err := call.call(s, -1); err != nil {
			b.Fatal(err)
		}
	}
	before := s.RoundTrips()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for _, call := range calls {
			if err := call.call(s, i); err != nil {
				b.Fatalf("%s: %v", call.name, err)
			}
		}
	}
	b.ReportMetric(float64(s.RoundTrips()-before)/float64(b.N), "roundtrips/op")
}
