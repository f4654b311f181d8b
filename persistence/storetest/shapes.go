package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
)

// shapeCred is passkey n of user name in community "shop", with an id of idLen bytes and
// transports.
func shapeCred(name string, n, idLen int, transports ...string) persistence.Credential {
	id := fmt.Appendf(nil, "%s-%d-", name, n)
	for len(id) < idLen {
		id = append(id, 'x')
	}
	return persistence.Credential{ID: id[:idLen], CommunityID: "shop", Username: name, UserHandle: []byte("h-" + name),
		PublicKey: []byte{1}, Transports: transports}
}

var (
	phoneShape = persistence.CredentialShape{IDLength: 16, Transports: []string{"hybrid", "internal"}}
	keyShape   = persistence.CredentialShape{IDLength: 64, Transports: []string{"usb"}}
)

func phoneOf(name string, n int) persistence.Credential {
	return shapeCred(name, n, 16, "hybrid", "internal")
}
func keyOf(name string, n int) persistence.Credential { return shapeCred(name, n, 64, "usb") }

// wantCommonShape fails the test unless shop's most common shape is want (in any order; none:
// ErrNotFound).
func wantCommonShape(t *testing.T, s persistence.Store, step string, want ...persistence.CredentialShape) {
	t.Helper()
	got, err := s.CommonShape(t.Context(), "shop")
	if len(want) == 0 {
		if err == nil {
			t.Fatalf("%s: CommonShape = %+v, want ErrNotFound", step, got)
		}
		wantNotFound(t, step+": CommonShape", err)
		return
	}
	if err != nil {
		t.Fatalf("%s: CommonShape: %s", step, describe(err))
	}
	order := func(a, b persistence.CredentialShape) int {
		return cmp.Or(cmp.Compare(a.IDLength, b.IDLength), strings.Compare(strings.Join(a.Transports, ","), strings.Join(b.Transports, ",")))
	}
	got, want = slices.SortedFunc(slices.Values(got), order), slices.SortedFunc(slices.Values(want), order)
	if !same(got, want) {
		t.Fatalf("%s: CommonShape = %+v, want %+v", step, got, want)
	}
}

// The cases below check the most common shape only where one shape leads: how a backend
// breaks a tie, or how soon it sees that a shape lost its lead by one user, is its own.
func testCommonShape(t *testing.T, open Opener) {
	t.Run("follows registrations and imports", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		seedCommunity(t, s, "blog")
		add := func(cs ...persistence.Credential) {
			t.Helper()
			for _, c := range cs {
				mustApply(t, s, persistence.AddCredential{Credential: c})
			}
		}
		wantCommonShape(t, s, "no passkey yet")
		add(keyOf("a", 0))
		wantCommonShape(t, s, "one user with a security key", keyShape)
		add(phoneOf("b", 0), phoneOf("c", 0))
		wantCommonShape(t, s, "two users with a phone passkey overtake one with a key", phoneShape)
		add(keyOf("b", 1), keyOf("c", 1), phoneOf("d", 0), keyOf("d", 1))
		wantCommonShape(t, s, "three users with a phone and a key", phoneShape, keyShape)
		add(keyOf("e", 0), keyOf("f", 0), keyOf("g", 0))
		wantCommonShape(t, s, "four users with a key", keyShape)
		var users []persistence.User
		var creds []persistence.Credential
		for _, name := range []string{"h", "i", "j", "k", "l"} {
			users = append(users, persistence.User{CommunityID: "shop", Username: name, Handle: []byte("h-" + name)})
			creds = append(creds, phoneOf(name, 0))
		}
		if err := s.Import(t.Context(), users, creds); err != nil {
			t.Fatal(describe(err))
		}
		wantCommonShape(t, s, "five imported users with a phone passkey", phoneShape)
		if got, err := s.CommonShape(t.Context(), "blog"); err == nil {
			t.Fatalf("CommonShape(blog) = %+v, want ErrNotFound: the tally is per community", got)
		}
	})

	t.Run("follows removals", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		remove := func(cs ...persistence.Credential) {
			t.Helper()
			for _, c := range cs {
				mustApply(t, s, persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: persistence.FidoKeyHash(c.ID)})
			}
		}
		for _, c := range []persistence.Credential{keyOf("a", 0), keyOf("b", 0), keyOf("c", 0), phoneOf("d", 0), phoneOf("e", 0)} {
			mustApply(t, s, persistence.AddCredential{Credential: c})
		}
		wantCommonShape(t, s, "three users with a key, two with a phone", keyShape)
		remove(keyOf("a", 0), keyOf("b", 0))
		wantCommonShape(t, s, "two keys removed: one user with a key, two with a phone", phoneShape)
		// c gets a phone passkey too, then loses its key: the tally moves c from (phone, key)
		// to phone, not some other user's shape.
		mustApply(t, s, persistence.AddCredential{Credential: phoneOf("c", 1)})
		remove(keyOf("c", 0))
		wantCommonShape(t, s, "three users with a phone passkey only", phoneShape)
		remove(phoneOf("c", 1), phoneOf("d", 0), phoneOf("e", 0))
		wantCommonShape(t, s, "nobody has a passkey")
		mustApply(t, s, persistence.AddCredential{Credential: keyOf("f", 0)})
		wantCommonShape(t, s, "a new user with a key", keyShape)
	})

	t.Run("follows removals by DID of several users at once", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		for _, c := range []persistence.Credential{keyOf("a", 0), keyOf("b", 0), keyOf("c", 0), phoneOf("d", 0), phoneOf("e", 0)} {
			mustApply(t, s, persistence.AddCredential{Credential: c})
			if c.Transports[0] == "usb" {
				mustApply(t, s, persistence.LinkCredential{CommunityID: "shop", Username: c.Username, FidoKeyHash: persistence.FidoKeyHash(c.ID), DID: "did:example:keys"})
			}
		}
		wantCommonShape(t, s, "three users with a key, two with a phone", keyShape)
		if n := mustApply(t, s, persistence.RemoveCredentials{CommunityID: "shop", DID: "did:example:keys"}); n != 3 {
			t.Fatalf("removed %v passkeys, want 3", n)
		}
		wantCommonShape(t, s, "the keys removed", phoneShape)
	})

	t.Run("follows the only user of the community", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		mustApply(t, s, persistence.AddCredential{Credential: keyOf("a", 0)})
		wantCommonShape(t, s, "a has a key", keyShape)
		mustApply(t, s, persistence.AddCredential{Credential: phoneOf("a", 1)})
		wantCommonShape(t, s, "a adds a phone passkey", phoneShape, keyShape)
		mustApply(t, s, persistence.AddCredential{Credential: phoneOf("b", 0)})
		mustApply(t, s, persistence.AddCredential{Credential: keyOf("b", 1)})
		wantCommonShape(t, s, "b has a phone passkey and a key too", phoneShape, keyShape)
	})
}
