package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
)

// seedPasskeys gives alice two passkeys (a1, a2) and bob one (b1) in community shop, and carol
// one (c1) in blog.
func seedPasskeys(t *testing.T, s persistence.Store) {
	t.Helper()
	seedCommunity(t, s, "shop")
	seedCommunity(t, s, "blog")
	for _, c := range passkeys() {
		addCredential(t, s, c)
	}
}

// passkeys are the passkeys of seedPasskeys.
func passkeys() []persistence.Credential {
	alice, bob, carol := user("shop", "alice", "h-alice"), user("shop", "bob", "h-bob"), user("blog", "carol", "h-carol")
	return []persistence.Credential{credential("a1", alice), credential("a2", alice), credential("b1", bob), credential("c1", carol)}
}

// passkey is the passkey id of seedPasskeys.
func passkey(id string) persistence.Credential {
	for _, c := range passkeys() {
		if string(c.ID) == id {
			return c
		}
	}
	panic("storetest: no passkey " + id)
}

func hashOf(id string) []byte { return persistence.FidoKeyHash([]byte(id)) }

// linked is passkey id linked to did.
func linked(id, did string) persistence.Credential {
	c := asRead(passkey(id))
	c.DID = did
	return c
}

func testLinkCredential(t *testing.T, open Opener) {
	link := func(user, id, did string) persistence.LinkCredential {
		return persistence.LinkCredential{CommunityID: "shop", Username: user, FidoKeyHash: hashOf(id), DID: did}
	}
	unlink := func(user, id, did string) persistence.UnlinkCredential {
		return persistence.UnlinkCredential{CommunityID: "shop", Username: user, FidoKeyHash: hashOf(id), DID: did}
	}
	// a1Is checks the result (nil when refused) and a1 as stored; the other passkeys stay
	// unlinked.
	a1Is := func(did string, result bool) func(t *testing.T, s persistence.Store, v any) {
		return func(t *testing.T, s persistence.Store, v any) {
			if result {
				wantSame(t, "result", v, linked("a1", did))
			}
			wantCredential(t, s, linked("a1", did))
			for _, id := range []string{"a2", "b1", "c1"} {
				wantCredential(t, s, passkey(id))
			}
		}
	}
	const did = "did:example:alice"
	runOps(t, open, seedPasskeys, []opCase{
		{name: "Link links a passkey, named by its fidoKeyHash, to a DID", op: link("alice", "a1", did), after: a1Is(did, true)},
		{name: "Link again to the same DID changes nothing", setup: []persistence.Op{link("alice", "a1", did)}, op: link("alice", "a1", did), after: a1Is(did, true)},
		{name: "Link of a passkey linked to another DID is refused", setup: []persistence.Op{link("alice", "a1", did)},
			op: link("alice", "a1", "did:example:mallory"), want: persistence.ErrLinkedElsewhere, after: a1Is(did, false)},
		{name: "Link of another user's passkey is not found", op: link("bob", "a1", "did:example:bob"), want: persistence.ErrPasskeyNotFound, after: a1Is("", false)},
		{name: "Link of a passkey of another community is not found",
			op:   persistence.LinkCredential{CommunityID: "shop", Username: "carol", FidoKeyHash: hashOf("c1"), DID: "did:example:c"},
			want: persistence.ErrPasskeyNotFound, after: a1Is("", false)},
		{name: "Link of an unknown fidoKeyHash is not found", op: link("alice", "zz", did), want: persistence.ErrPasskeyNotFound, after: a1Is("", false)},
		{name: "Link by the credential id instead of its fidoKeyHash is not found",
			op:   persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: []byte("a1"), DID: did},
			want: persistence.ErrPasskeyNotFound, after: a1Is("", false)},
		{name: "Link to a DID without did: is refused as Check refuses it", op: link("alice", "a1", "example:alice"), want: byCheck, after: a1Is("", false)},
		{name: "Link to a DID with a control character is refused as Check refuses it", op: link("alice", "a1", "did:ex\u0085ample"), want: byCheck, after: a1Is("", false)},
		{name: "Link to a DID over 512 bytes is refused as Check refuses it", op: link("alice", "a1", "did:"+strings.Repeat("x", 509)), want: byCheck, after: a1Is("", false)},
		{name: "Link to a DID of 512 bytes", op: link("alice", "a1", "did:"+strings.Repeat("x", 508)), after: a1Is("did:"+strings.Repeat("x", 508), true)},
		{name: "Unlink removes the link of a linked passkey", setup: []persistence.Op{link("alice", "a1", did)}, op: unlink("alice", "a1", did), after: a1Is("", true)},
		{name: "Unlink from another DID is not found", setup: []persistence.Op{link("alice", "a1", did)}, op: unlink("alice", "a1", "did:example:other"),
			want: persistence.ErrLinkNotFound, after: a1Is(did, false)},
		{name: "Unlink of a passkey never linked is not found", op: unlink("alice", "a1", did), want: persistence.ErrLinkNotFound, after: a1Is("", false)},
		{name: "Unlink of another user's passkey is not found", setup: []persistence.Op{link("alice", "a1", did)}, op: unlink("bob", "a1", did),
			want: persistence.ErrLinkNotFound, after: a1Is(did, false)},
		{name: "Unlink of an unknown fidoKeyHash is not found", op: unlink("alice", "zz", did), want: persistence.ErrLinkNotFound, after: a1Is("", false)},
		{name: "a passkey unlinked can be linked to another DID", setup: []persistence.Op{link("alice", "a1", did), unlink("alice", "a1", did)},
			op: link("alice", "a1", "did:example:new"), after: a1Is("did:example:new", true)},
	})
}

func testRemoveCredentials(t *testing.T, open Opener) {
	const did = "did:example:x"
	linkAll := []persistence.Op{
		persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a1"), DID: did},
		persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a2"), DID: did},
		persistence.LinkCredential{CommunityID: "shop", Username: "bob", FidoKeyHash: hashOf("b1"), DID: did},
		persistence.LinkCredential{CommunityID: "blog", Username: "carol", FidoKeyHash: hashOf("c1"), DID: did},
	}
	// removed checks that exactly the passkeys named went, each with every way to reach it,
	// and that the others stay as they were.
	removed := func(ids ...string) func(t *testing.T, s persistence.Store, v any) {
		return func(t *testing.T, s persistence.Store, v any) {
			if len(ids) > 0 {
				wantSame(t, "result (how many it removed)", v, len(ids))
			}
			for _, c := range passkeys() {
				id := string(c.ID)
				if !slices.Contains(ids, id) {
					wantCredential(t, s, linked(id, did))
					continue
				}
				wantNoCredential(t, s, id)
				if att, err := s.AttestationObjectOf(t.Context(), c.ID); att != nil || !errors.Is(err, persistence.ErrNotFound) {
					t.Fatalf("AttestationObjectOf(%s) = %x, %s: its attestation object is still there", id, att, describe(err))
				}
				// Its fidoKeyHash and DID indexes went too.
				wantRefusal(t, "removing "+id+" again by fidoKeyHash", applyErr(t, s,
					persistence.RemoveCredentials{CommunityID: c.CommunityID, FidoKeyHash: hashOf(id)}), persistence.ErrNothingToRemove)
				wantRefusal(t, "linking "+id+" again", applyErr(t, s,
					persistence.LinkCredential{CommunityID: c.CommunityID, Username: c.Username, FidoKeyHash: hashOf(id), DID: did}), persistence.ErrPasskeyNotFound)
			}
			var left []persistence.Credential
			for _, id := range []string{"a1", "a2"} {
				if !slices.Contains(ids, id) {
					left = append(left, linked(id, did))
				}
			}
			wantCredentialsOf(t, s, "shop", "alice", left...)
			// The users stay, with or without passkeys.
			readUser(t, s, "shop", "alice")
			readUser(t, s, "shop", "bob")
		}
	}
	runOps(t, open, func(t *testing.T, s persistence.Store) {
		seedPasskeys(t, s)
		mustApplyAll(t, s, linkAll...)
	}, []opCase{
		{name: "one passkey by fidoKeyHash", op: persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("a1")}, after: removed("a1")},
		{name: "by fidoKeyHash within its user", op: persistence.RemoveCredentials{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a2")},
			after: removed("a2")},
		{name: "by fidoKeyHash within another user: nothing", op: persistence.RemoveCredentials{CommunityID: "shop", Username: "bob", FidoKeyHash: hashOf("a1")},
			want: persistence.ErrNothingToRemove, after: removed()},
		{name: "by fidoKeyHash of another community: nothing", op: persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("c1")},
			want: persistence.ErrNothingToRemove, after: removed()},
		{name: "an unknown fidoKeyHash: nothing", op: persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("zz")},
			want: persistence.ErrNothingToRemove, after: removed()},
		{name: "every passkey linked to a DID in the community", op: persistence.RemoveCredentials{CommunityID: "shop", DID: did},
			after: removed("a1", "a2", "b1")},
		{name: "a DID within one user", op: persistence.RemoveCredentials{CommunityID: "shop", Username: "bob", DID: did}, after: removed("b1")},
		{name: "a DID within a user without passkeys linked to it: nothing",
			op: persistence.RemoveCredentials{CommunityID: "shop", Username: "carol", DID: did}, want: persistence.ErrNothingToRemove, after: removed()},
		{name: "a DID in another community", op: persistence.RemoveCredentials{CommunityID: "blog", DID: did}, after: removed("c1")},
		{name: "a DID linked to nothing: nothing", op: persistence.RemoveCredentials{CommunityID: "shop", DID: "did:example:none"},
			want: persistence.ErrNothingToRemove, after: removed()},
		{name: "a DID that extends a linked one: nothing", op: persistence.RemoveCredentials{CommunityID: "shop", DID: did + "y"},
			want: persistence.ErrNothingToRemove, after: removed()},
		{name: "neither a fidoKeyHash nor a DID is refused as Check refuses it", op: persistence.RemoveCredentials{CommunityID: "shop", DID: "x"},
			want: byCheck, after: removed()},
		{name: "nothing named is refused as Check refuses it", op: persistence.RemoveCredentials{CommunityID: "shop"}, want: byCheck, after: removed()},
		{name: "both a fidoKeyHash and a DID is refused as Check refuses it",
			op: persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("a1"), DID: did}, want: byCheck, after: removed()},
	})

	t.Run("a removed passkey's id can be registered again", func(t *testing.T) {
		s := open(t)
		seedPasskeys(t, s)
		mustApply(t, s, persistence.RemoveCredentials{CommunityID: "shop", FidoKeyHash: hashOf("b1")})
		again := credential("b1", user("shop", "bob", "h-bob"))
		again.PublicKey = []byte("a new key")
		addCredential(t, s, again)
		wantCredential(t, s, again)
		wantCredentialsOf(t, s, "shop", "bob", again)
	})
}
