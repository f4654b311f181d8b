package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
)

// yielded is one user that PasskeysOf yielded, with its passkeys.
type yielded struct {
	User  persistence.User
	Creds []persistence.Credential
}

// passkeysOf collects what PasskeysOf yields.
func passkeysOf(t *testing.T, s persistence.Store, communityID string) []yielded {
	t.Helper()
	var out []yielded
	if err := s.PasskeysOf(t.Context(), communityID, func(u persistence.User, creds []persistence.Credential) error {
		out = append(out, yielded{u, creds})
		return nil
	}); err != nil {
		t.Fatalf("PasskeysOf(%s): %s", communityID, describe(err))
	}
	return out
}

func testPasskeysOf(t *testing.T, open opener) {
	t.Run("yields the community's users in username order, each with its passkeys, and no other community's", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		seedCommunity(t, s, "bank")
		bob, alice, carol := importUser("bob", "hb"), importUser("alice", "ha"), importUser("carol", "hc")
		a2, a1, b1 := credential("a-2", alice), credential("a-1", alice), credential("b-1", bob)
		a2.SignCount, a2.LastUsed, a2.DID = 9, t1, "did:example:alice"
		if err := s.Import(t.Context(), []persistence.User{bob, alice, carol}, []persistence.Credential{a2, b1, a1}); err != nil {
			t.Fatal(describe(err))
		}
		other := user("bank", "alice", "ha")
		addCredential(t, s, credential("bank-1", other))
		got := passkeysOf(t, s, "shop")
		want := []yielded{
			{alice, []persistence.Credential{asRead(a1), asRead(a2)}},
			{bob, []persistence.Credential{asRead(b1)}},
			{carol, nil},
		}
		wantSame(t, "PasskeysOf(shop)", got, want)
	})

	t.Run("an unknown community yields nothing", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		if got := passkeysOf(t, s, "nowhere"); len(got) != 0 {
			t.Fatalf("PasskeysOf(nowhere) yielded %d users", len(got))
		}
	})

	t.Run("more users than one page of a read are all yielded, once each, in order", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		var users []persistence.User
		var creds []persistence.Credential
		for i := range 2500 {
			u := importUser(fmt.Sprintf("user-%05d", i), fmt.Sprintf("h%05d", i))
			users = append(users, u)
			creds = append(creds, credential(fmt.Sprintf("c-%05d", i), u))
		}
		if err := s.Import(t.Context(), users, creds); err != nil {
			t.Fatal(describe(err))
		}
		got := passkeysOf(t, s, "shop")
		if len(got) != len(users) {
			t.Fatalf("PasskeysOf yielded %d users; want %d", len(got), len(users))
		}
		for i, y := range got {
			if y.User.Username != users[i].Username || len(y.Creds) != 1 || string(y.Creds[0].ID) != string(creds[i].ID) {
				t.Fatalf("yield %d is %s with %d passkeys; want %s with %s", i, y.User.Username, len(y.Creds), users[i].Username, creds[i].ID)
			}
		}
	})

	t.Run("an error of yield ends the read and is returned as is", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		if err := s.Import(t.Context(), []persistence.User{importUser("alice", "ha"), importUser("bob", "hb")}, nil); err != nil {
			t.Fatal(describe(err))
		}
		stop := errors.New("stop")
		calls := 0
		err := s.PasskeysOf(t.Context(), "shop", func(persistence.User, []persistence.Credential) error {
			calls++
			return stop
		})
		if err != stop || calls != 1 {
			t.Fatalf("PasskeysOf = %v after %d calls; want the yield's error after 1", err, calls)
		}
	})

	t.Run("an ended context is the read's error", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := s.PasskeysOf(ctx, "shop", func(persistence.User, []persistence.Credential) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("PasskeysOf with an ended context = %v; want context.Canceled", err)
		}
	})
}

func testPasskeyLookups(t *testing.T, open opener) {
	t.Run("many ids, usernames and handles are read at once; the unknown ones are left out", func(t *testing.T) {
		s := open(t)
		lookups, ok := s.(persistence.PasskeyLookups)
		if !ok {
			t.Skip("the backend reads one record at a time")
		}
		seedShop(t, s)
		seedCommunity(t, s, "bank")
		alice, bob := importUser("alice", "ha"), importUser("bob", "hb")
		a1, b1 := credential("a-1", alice), credential("b-1", bob)
		if err := s.Import(t.Context(), []persistence.User{alice, bob}, []persistence.Credential{a1, b1}); err != nil {
			t.Fatal(describe(err))
		}
		addCredential(t, s, credential("bank-1", user("bank", "carol", "hc")))
		creds, err := lookups.CredentialsByID(t.Context(), [][]byte{[]byte("b-1"), []byte("nope"), []byte("bank-1"), []byte("a-1")})
		if err != nil {
			t.Fatal(describe(err))
		}
		got := map[string]persistence.Credential{}
		for _, c := range creds {
			got[string(c.ID)] = c
		}
		wantSame(t, "CredentialsByID", got, map[string]persistence.Credential{
			"a-1": asRead(a1), "b-1": asRead(b1), "bank-1": asRead(credential("bank-1", user("bank", "carol", "hc"))),
		})
		// alice by name, bob by handle, carol is another community's, dave nobody's.
		users, err := lookups.UsersByNameOrHandle(t.Context(), "shop", []string{"alice", "carol", "dave"}, [][]byte{[]byte("hb"), []byte("hc"), []byte("ha")})
		if err != nil {
			t.Fatal(describe(err))
		}
		byName := map[string]persistence.User{}
		for _, u := range users {
			if _, twice := byName[u.Username]; twice {
				t.Fatalf("UsersByNameOrHandle returned %s twice", u.Username)
			}
			byName[u.Username] = u
		}
		wantSame(t, "UsersByNameOrHandle", byName, map[string]persistence.User{"alice": alice, "bob": bob})
	})
}
