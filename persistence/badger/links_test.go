package badger_test

import (
	"errors"
	"strings"
	"testing"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// seedPasskeys gives alice two passkeys and bob one, in community shop, and carol one in blog.
func seedPasskeys(t *testing.T, s *badger.Store) {
	t.Helper()
	seedCommunity(t, s, "shop")
	seedCommunity(t, s, "blog")
	alice := seedUser(t, s, "shop", "alice", []byte("h-alice"))
	bob := seedUser(t, s, "shop", "bob", []byte("h-bob"))
	carol := seedUser(t, s, "blog", "carol", []byte("h-carol"))
	for _, c := range []persistence.Credential{credential("a1", alice), credential("a2", alice), credential("b1", bob), credential("c1", carol)} {
		mustApply(t, s, persistence.AddCredential{Credential: c})
	}
}

func hashOf(id string) []byte { return persistence.FidoKeyHash([]byte(id)) }

// TestLinkCredential is the spec of linking a passkey to a DID and unlinking it.
func TestLinkCredential(t *testing.T) {
	link := func(user, id, did string) persistence.LinkCredential {
		return persistence.LinkCredential{CommunityID: "shop", Username: user, FidoKeyHash: hashOf(id), DID: did}
	}
	unlink := func(user, id, did string) persistence.UnlinkCredential {
		return persistence.UnlinkCredential{CommunityID: "shop", Username: user, FidoKeyHash: hashOf(id), DID: did}
	}
	for _, tc := range []struct {
		name  string
		setup []persistence.Op
		op    persistence.Op
		code  messages.Code // "" for success
		did   string        // a1's DID afterwards
	}{
		{"links a passkey", nil, link("alice", "a1", "did:example:alice"), "", "did:example:alice"},
		{"linking again to the same DID changes nothing", []persistence.Op{link("alice", "a1", "did:example:alice")},
			link("alice", "a1", "did:example:alice"), "", "did:example:alice"},
		{"a passkey linked to another DID is a conflict", []persistence.Op{link("alice", "a1", "did:example:alice")},
			link("alice", "a1", "did:example:mallory"), messages.CodeConflict, "did:example:alice"},
		{"another user's passkey is not found", nil, link("bob", "a1", "did:example:bob"), messages.CodeNotFound, ""},
		{"a passkey of another community is not found", nil,
			persistence.LinkCredential{CommunityID: "shop", Username: "carol", FidoKeyHash: hashOf("c1"), DID: "did:example:c"}, messages.CodeNotFound, ""},
		{"an unknown fidoKeyHash is not found", nil, link("alice", "zz", "did:example:alice"), messages.CodeNotFound, ""},
		{"a DID without did: is refused", nil, link("alice", "a1", "example:alice"), messages.CodeInvalidRequest, ""},
		{"a DID with a control character is refused", nil, link("alice", "a1", "did:ex\u0085ample"), messages.CodeInvalidRequest, ""},
		{"a DID over 512 bytes is refused", nil, link("alice", "a1", "did:"+strings.Repeat("x", 509)), messages.CodeInvalidRequest, ""},
		{"unlinks a linked passkey", []persistence.Op{link("alice", "a1", "did:example:alice")},
			unlink("alice", "a1", "did:example:alice"), "", ""},
		{"unlinking from another DID is not found", []persistence.Op{link("alice", "a1", "did:example:alice")},
			unlink("alice", "a1", "did:example:other"), messages.CodeNotFound, "did:example:alice"},
		{"unlinking a passkey never linked is not found", nil, unlink("alice", "a1", "did:example:alice"), messages.CodeNotFound, ""},
		{"unlinking another user's passkey is not found", []persistence.Op{link("alice", "a1", "did:example:alice")},
			unlink("bob", "a1", "did:example:alice"), messages.CodeNotFound, "did:example:alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t)
			seedPasskeys(t, s)
			for _, op := range tc.setup {
				mustApply(t, s, op)
			}
			err := applyErr(t, s, tc.op)
			if tc.code == "" && err != nil {
				t.Fatalf("refused: %v", err)
			} else if tc.code != "" {
				wantCode(t, err, tc.code)
			}
			c, err := s.Credential(ctx, []byte("a1"))
			if err != nil || c.DID != tc.did {
				t.Fatalf("a1 is linked to %q (%v), want %q", c.DID, err, tc.did)
			}
		})
	}
}

// TestRemoveCredentials is the spec of de-registration: by fidoKeyHash or by DID, community
// wide or within one user; every key of a removed passkey goes.
func TestRemoveCredentials(t *testing.T) {
	linkAll := []persistence.Op{
		persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a1"), DID: "did:example:x"},
		persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a2"), DID: "did:example:x"},
		persistence.LinkCredential{CommunityID: "shop", Username: "bob", FidoKeyHash: hashOf("b1"), DID: "did:example:x"},
		persistence.LinkCredential{CommunityID: "blog", Username: "carol", FidoKeyHash: hashOf("c1"), DID: "did:example:x"},
	}
	for _, tc := range []struct {
		name    string
		op      persistence.RemoveCredentials
		code    messages.Code
		removed []string
	}{
		{"one passkey by fidoKeyHash", persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("a1")}, "", []string{"a1"}},
		{"by fidoKeyHash within its user", persistence.RemoveCredentials{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a2")}, "", []string{"a2"}},
		{"by fidoKeyHash within another user: nothing", persistence.RemoveCredentials{CommunityID: "shop", Username: "bob", FidoKeyHash: hashOf("a1")}, messages.CodeNotFound, nil},
		{"by fidoKeyHash of another community: nothing", persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("c1")}, messages.CodeNotFound, nil},
		{"an unknown fidoKeyHash: nothing", persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("zz")}, messages.CodeNotFound, nil},
		{"every passkey linked to a DID in the community", persistence.RemoveCredentials{CommunityID: "shop", DID: "did:example:x"}, "", []string{"a1", "a2", "b1"}},
		{"a DID within one user", persistence.RemoveCredentials{CommunityID: "shop", Username: "bob", DID: "did:example:x"}, "", []string{"b1"}},
		{"a DID linked to nothing: nothing", persistence.RemoveCredentials{CommunityID: "shop", DID: "did:example:none"}, messages.CodeNotFound, nil},
		{"neither a fidoKeyHash nor a DID", persistence.RemoveCredentials{CommunityID: "shop", DID: "x"}, messages.CodeInvalidRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t)
			seedPasskeys(t, s)
			for _, op := range linkAll {
				mustApply(t, s, op)
			}
			err := applyErr(t, s, tc.op)
			if tc.code != "" {
				wantCode(t, err, tc.code)
			} else if err != nil {
				t.Fatalf("refused: %v", err)
			}
			for _, id := range []string{"a1", "a2", "b1", "c1"} {
				gone := false
				for _, r := range tc.removed {
					gone = gone || r == id
				}
				_, err := s.Credential(ctx, []byte(id))
				if gone != errors.Is(err, persistence.ErrNotFound) {
					t.Errorf("credential %s: removed %v, read error %v", id, gone, err)
				}
				att, err := s.AttestationObjectOf(ctx, []byte(id))
				if gone && (att != nil || !errors.Is(err, persistence.ErrNotFound)) {
					t.Errorf("credential %s: its attestation object is still there", id)
				}
			}
			if creds, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil {
				t.Fatalf("CredentialsOf(alice) after removal: %v", err)
			} else if want := 2 - count(tc.removed, "a1", "a2"); len(creds) != want {
				t.Fatalf("alice has %d passkeys, want %d", len(creds), want)
			}
			// The indexes went too: the DID names no removed passkey, a removed hash nothing.
			for _, id := range tc.removed {
				wantCode(t, applyErr(t, s, persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf(id)}), messages.CodeNotFound)
			}
		})
	}
}

func count(list []string, of ...string) int {
	n := 0
	for _, x := range list {
		for _, y := range of {
			if x == y {
				n++
			}
		}
	}
	return n
}

// TestFidoKeyHashIndexBackfill: a store written before the fidoKeyHash index existed gets it at
// its next Open, so its passkeys can be removed by fidoKeyHash.
func TestFidoKeyHashIndexBackfill(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := mustOpenAt(t, dir)
	seedPasskeys(t, s)
	closeStore()
	// Take the index and its marker away, as in a store of an earlier version.
	db, err := bdb.Open(bdb.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DropPrefix([]byte("kh/"), []byte("m/")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = mustOpenAt(t, dir)
	if n := mustApply(t, s, persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("b1")}); n != 1 {
		t.Fatalf("removed %v passkeys, want 1", n)
	}
}
