package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// race runs f(0) to f(n-1) at once, each on its own goroutine, and returns their results.
func race(n int, f func(i int) persistence.Result) []persistence.Result {
	out := make([]persistence.Result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// applyOn runs op alone in a batch of its own.
func applyOn(t *testing.T, s persistence.Writer, op persistence.Op) persistence.Result {
	res := s.Apply(t.Context(), []persistence.Op{op})
	if len(res) != 1 {
		return persistence.Result{Err: fmt.Errorf("Apply of 1 op returned %d results", len(res))}
	}
	return res[0]
}

// oneWins is a race in which exactly one of n ops, each in a batch of its own, is accepted
// and every other is refused with loser; check sees the store and the winner's index.
type oneWins struct {
	name  string
	n     int
	seed  func(t *testing.T, s persistence.Store)
	op    func(i int) persistence.Op
	loser error
	check func(t *testing.T, s persistence.Store, winner int, v any)
}

// runOneWins runs the race on two store values: one twice (stores is the same value twice),
// or two over one database.
func runOneWins(t *testing.T, tc oneWins, stores func(t *testing.T) (persistence.Store, persistence.Store)) {
	a, b := stores(t)
	if tc.seed != nil {
		tc.seed(t, a)
	}
	res := race(tc.n, func(i int) persistence.Result {
		s := a
		if i%2 == 1 {
			s = b
		}
		return applyOn(t, s, tc.op(i))
	})
	winner := -1
	for i, r := range res {
		if r.Err == nil {
			if winner >= 0 {
				t.Fatalf("ops %d and %d were both accepted, want exactly one", winner, i)
			}
			winner = i
			continue
		}
		wantRefusal(t, fmt.Sprintf("op %d", i), r.Err, tc.loser)
	}
	if winner < 0 {
		t.Fatalf("none of %d ops was accepted, want exactly one", tc.n)
	}
	if tc.check != nil {
		tc.check(t, a, winner, res[winner].Value)
		if b != a {
			tc.check(t, b, winner, res[winner].Value)
		}
	}
}

// oneWinsRaces are the races that exactly one op wins.
func oneWinsRaces(t *testing.T) []oneWins {
	const n = 20
	licenses := make([]persistence.License, n)
	keys := make([]string, n)
	for i := range licenses {
		licenses[i], keys[i] = newLicense(t, persistence.LevelSystem, "", "", 0)
		licenses[i].ID = "lic_race"
	}
	return []oneWins{
		{
			name: "first registrations of one username: exactly one creates the user", n: 50, seed: seedShop,
			op: func(i int) persistence.Op {
				return persistence.AddCredential{Credential: credential(fmt.Sprintf("c-%02d", i), user("shop", "alice", fmt.Sprintf("handle-%02d", i)))}
			},
			loser: persistence.ErrStartAgain,
			check: func(t *testing.T, s persistence.Store, w int, _ any) {
				u := readUser(t, s, "shop", "alice")
				if want := fmt.Sprintf("handle-%02d", w); string(u.Handle) != want {
					t.Fatalf("alice's handle is %q, the winner's is %q", u.Handle, want)
				}
				wantCredentialsOf(t, s, "shop", "alice", credential(fmt.Sprintf("c-%02d", w), user("shop", "alice", fmt.Sprintf("handle-%02d", w))))
				for i := range 50 {
					if i == w {
						continue
					}
					_, err := s.UserByHandle(t.Context(), "shop", fmt.Appendf(nil, "handle-%02d", i))
					wantNotFound(t, fmt.Sprintf("UserByHandle(handle-%02d) of a loser", i), err)
					wantNoCredential(t, s, fmt.Sprintf("c-%02d", i))
				}
			},
		},
		{
			name: "registrations of one credential id by different users: exactly one stores it", n: n, seed: seedShop,
			op: func(i int) persistence.Op {
				return persistence.AddCredential{Credential: credential("same-id", user("shop", fmt.Sprintf("user-%02d", i), fmt.Sprintf("h-%02d", i)))}
			},
			loser: persistence.ErrCredentialExists,
			check: func(t *testing.T, s persistence.Store, w int, _ any) {
				wantCredential(t, s, credential("same-id", user("shop", fmt.Sprintf("user-%02d", w), fmt.Sprintf("h-%02d", w))))
				for i := range n {
					if i != w {
						wantNoUser(t, s, "shop", fmt.Sprintf("user-%02d", i), fmt.Appendf(nil, "h-%02d", i))
					}
				}
			},
		},
		{
			name: "creations of one community: exactly one", n: n,
			op: func(i int) persistence.Op {
				c := community("shop")
				c.Name = fmt.Sprintf("writer %d", i)
				return persistence.PutCommunity{Community: c, Create: true}
			},
			loser: persistence.CommunityExists("shop"),
			check: func(t *testing.T, s persistence.Store, w int, v any) { wantCommunity(t, s, v.(persistence.Community)) },
		},
		{
			name: "tenants claiming one host: exactly one gets it", n: n,
			op:    func(i int) persistence.Op { return putTenant(fmt.Sprintf("t-%02d", i), "T", t0, "contested.example") },
			loser: persistence.HostTaken("contested.example"),
			check: func(t *testing.T, s persistence.Store, w int, _ any) {
				wantTenantOfHost(t, s, "contested.example", fmt.Sprintf("t-%02d", w))
				for i := range n {
					if i != w {
						wantNoTenant(t, s, fmt.Sprintf("t-%02d", i))
					}
				}
			},
		},
		{
			name: "licenses of one id: exactly one", n: n,
			op:    func(i int) persistence.Op { return persistence.PutLicense{License: licenses[i]} },
			loser: persistence.ErrLicenseIDExists,
			check: func(t *testing.T, s persistence.Store, w int, _ any) {
				wantAllLicenses(t, s, licenses[w])
				wantLicense(t, s, keys[w], licenses[w])
			},
		},
		{
			name: "vendor records of one AAGUID: exactly one", n: n, seed: seedShop,
			op: func(i int) persistence.Op {
				r := vendorRecord("shop", yubikey)
				r.Name = fmt.Sprintf("writer %d", i)
				return persistence.PutVendorMetadata{Record: r}
			},
			loser: persistence.VendorRecordExists(yubikey),
			check: func(t *testing.T, s persistence.Store, w int, v any) {
				wantVendorRecords(t, s, v.(persistence.VendorRecord))
			},
		},
		{
			name: "one request remembered at once: exactly one is accepted", n: n,
			op: func(int) persistence.Op {
				return persistence.RememberRequest{Caller: []byte("caller"), UUID: "u1", Until: time.Now().Add(time.Hour)}
			},
			loser: persistence.ErrRequestReplayed,
		},
		{
			name: "links of one passkey to different DIDs: exactly one", n: n, seed: seedPasskeys,
			op: func(i int) persistence.Op {
				return persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a1"), DID: fmt.Sprintf("did:example:%02d", i)}
			},
			loser: persistence.ErrLinkedElsewhere,
			check: func(t *testing.T, s persistence.Store, w int, _ any) {
				wantCredential(t, s, linked("a1", fmt.Sprintf("did:example:%02d", w)))
				for i := range n {
					if i != w {
						wantRefusal(t, "removing by a loser's DID", applyErr(t, s,
							persistence.RemoveCredentials{CommunityID: "shop", DID: fmt.Sprintf("did:example:%02d", i)}), persistence.ErrNothingToRemove)
					}
				}
			},
		},
		{
			name: "removals of one passkey: exactly one removes it", n: n, seed: seedPasskeys,
			op: func(int) persistence.Op {
				return persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("a1")}
			},
			loser: persistence.ErrNothingToRemove,
			check: func(t *testing.T, s persistence.Store, _ int, _ any) {
				wantNoCredential(t, s, "a1")
				wantCredentialsOf(t, s, "shop", "alice", passkey("a2"))
			},
		},
	}
}

// allAgree is a race of n ops that all succeed with the same value: the one stored.
type allAgree struct {
	name  string
	op    func(i int) persistence.Op
	check func(t *testing.T, s persistence.Store, v any)
}

func allAgreeRaces() []allAgree {
	return []allAgree{
		{
			name: "first starts storing a secret: all end with the same one",
			op: func(i int) persistence.Op {
				return persistence.PutSecretIfAbsent{Name: "decoy-secret", Value: fmt.Appendf(nil, "value-%02d", i)}
			},
			check: func(t *testing.T, s persistence.Store, v any) { wantSecret(t, s, "decoy-secret", string(v.([]byte))) },
		},
		{
			name: "first starts creating a keyring: all end with the same key",
			op: func(i int) persistence.Op {
				return persistence.RotateKey{Name: "token", New: key(fmt.Sprintf("key-%02d", i), t0), OnlyIfAbsent: true}
			},
			check: func(t *testing.T, s persistence.Store, v any) { wantKeyring(t, s, "token", v.(persistence.Keyring)) },
		},
	}
}

// runAllAgree runs the race on a and b (the same value twice, or two over one database).
func runAllAgree(t *testing.T, tc allAgree, a, b persistence.Store) {
	const n = 20
	res := race(n, func(i int) persistence.Result {
		s := a
		if i%2 == 1 {
			s = b
		}
		return applyOn(t, s, tc.op(i))
	})
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("op %d: %s", i, describe(r.Err))
		}
		if !same(r.Value, res[0].Value) {
			t.Fatalf("op %d returned %+v, op 0 %+v: want the same", i, r.Value, res[0].Value)
		}
	}
	tc.check(t, a, res[0].Value)
	tc.check(t, b, res[0].Value)
}

// signInRace sends RecordSignIn with counters 1..n for credential id, each in a batch of its
// own, alternately through a and b, all at once. Every sign-in whose counter is not above the
// counter stored when it commits is refused: so the stored counter is the highest, n (which no
// other is above), every other refusal is a counter regression, and the clone warning is set
// exactly when one was refused.
func signInRace(t *testing.T, a, b persistence.Store, id []byte, n int) {
	t.Helper()
	res := race(n, func(i int) persistence.Result {
		s := a
		if i%2 == 1 {
			s = b
		}
		return applyOn(t, s, persistence.RecordSignIn{ID: id, Counter: uint32(i + 1), At: t1})
	})
	refused := 0
	for i, r := range res {
		switch {
		case r.Err == nil:
			if c, ok := r.Value.(persistence.Credential); !ok || c.SignCount != uint32(i+1) {
				t.Fatalf("counter %d accepted with the value %+v", i+1, r.Value)
			}
		case errors.Is(r.Err, persistence.ErrCounterRegression):
			refused++
		default:
			t.Fatalf("counter %d: %s, want acceptance or a counter regression", i+1, describe(r.Err))
		}
	}
	if res[n-1].Err != nil {
		t.Fatalf("the highest counter %d was refused: %s", n, describe(res[n-1].Err))
	}
	for _, s := range []persistence.Store{a, b} {
		c, err := s.Credential(t.Context(), id)
		if err != nil {
			t.Fatal(describe(err))
		}
		if c.SignCount != uint32(n) || c.CloneWarning != (refused > 0) {
			t.Fatalf("stored SignCount %d, CloneWarning %v; want %d, %v (%d of %d refused)", c.SignCount, c.CloneWarning, n, refused > 0, refused, n)
		}
	}
}

func testConcurrency(t *testing.T, open Opener) {
	twice := func(t *testing.T) (persistence.Store, persistence.Store) { s := open(t); return s, s }
	for _, tc := range oneWinsRaces(t) {
		t.Run(tc.name, func(t *testing.T) { runOneWins(t, tc, twice) })
	}
	for _, tc := range allAgreeRaces() {
		t.Run(tc.name, func(t *testing.T) { s := open(t); runAllAgree(t, tc, s, s) })
	}
	t.Run("sign-ins of one passkey with distinct counters: the stored counter is the highest", func(t *testing.T) {
		s := open(t)
		c := seedCredential(t, s, 0)
		signInRace(t, s, s, c.ID, 50)
	})
	t.Run("sign-ins racing the passkey's removal never bring it back", func(t *testing.T) {
		s := open(t)
		seedPasskeys(t, s)
		const n = 20
		res := race(n+1, func(i int) persistence.Result {
			if i == n/2 {
				return applyOn(t, s, persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("a1")})
			}
			return applyOn(t, s, persistence.RecordSignIn{ID: []byte("a1"), Counter: uint32(i + 1), At: t1})
		})
		for i, r := range res {
			if i == n/2 {
				wantRefusal(t, "the removal", r.Err, nil)
				continue
			}
			if r.Err != nil && !errors.Is(r.Err, persistence.ErrCounterRegression) && !errors.Is(r.Err, persistence.ErrCredentialUnknown) {
				t.Fatalf("sign-in %d: %s", i, describe(r.Err))
			}
		}
		wantNoCredential(t, s, "a1")
		wantCredentialsOf(t, s, "shop", "alice", passkey("a2"))
		if att, err := s.AttestationObjectOf(t.Context(), []byte("a1")); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("AttestationObjectOf(a1) = %x, %s; want ErrNotFound", att, describe(err))
		}
	})
}
