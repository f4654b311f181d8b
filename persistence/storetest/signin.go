package storetest

import (
	"cmp"
	"slices"
	"strings"
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
)

// testSignInSubject is the spec of SignInSubject: what User, CredentialsOf and CommonShape
// answer, in one read, for a known and an unknown username alike (an unknown username is not
// an error: its decoy needs the shape).
func testSignInSubject(t *testing.T, open opener) {
	s := open(t)
	seedShop(t, s)
	seedCommunity(t, s, "blog")
	seedCommunity(t, s, "empty")
	inBlog := func(c persistence.Credential) persistence.Credential { c.CommunityID = "blog"; return c }
	alicePhone, aliceKey := phoneOf("alice", 0), keyOf("alice", 1)
	for _, c := range []persistence.Credential{aliceKey, alicePhone, phoneOf("bob", 0), phoneOf("carol", 0), inBlog(keyOf("dave", 0))} {
		addCredential(t, s, c)
	}
	seedUser(t, s, "shop", "nopass", []byte("h-nopass"))
	seedUser(t, s, "empty", "erin", []byte("h-erin"))

	order := func(a, b persistence.CredentialShape) int {
		return cmp.Or(cmp.Compare(a.IDLength, b.IDLength), strings.Compare(strings.Join(a.Transports, ","), strings.Join(b.Transports, ",")))
	}
	shop := []persistence.CredentialShape{phoneShape} // bob's and carol's: alice has two passkeys
	for _, tc := range []struct {
		name                string
		community, username string
		wantFound           bool
		wantCreds           []persistence.Credential // in id order
		wantShape           []persistence.CredentialShape
	}{
		{"a user with passkeys: the user, its passkeys in id order, and the community's shape",
			"shop", "alice", true, []persistence.Credential{alicePhone, aliceKey}, shop},
		{"an unknown username: not found, and the community's shape all the same", "shop", "nobody", false, nil, shop},
		{"a user without passkeys: found, no passkeys, and the community's shape", "shop", "nopass", true, nil, shop},
		{"a prefix of a username is unknown", "shop", "ali", false, nil, shop},
		{"a username of another community is unknown there, with that community's shape",
			"blog", "alice", false, nil, []persistence.CredentialShape{keyShape}},
		{"a user of a community where nobody has a passkey: no shape", "empty", "erin", true, nil, nil},
		{"an unknown username of a community where nobody has a passkey: no shape", "empty", "nobody", false, nil, nil},
		{"an unknown community: nothing", "nowhere", "alice", false, nil, nil},
		{"a username no user can have (a NUL) is unknown, with the community's shape", "shop", "ali\x00ce", false, nil, shop},
		{"a username no user can have (not UTF-8) is unknown, with the community's shape", "shop", "\xff", false, nil, shop},
		{"a community id no community can have is unknown", "sh\x00op", "alice", false, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.SignInSubject(t.Context(), tc.community, tc.username)
			if err != nil {
				t.Fatalf("SignInSubject(%q, %q): %s", tc.community, tc.username, describe(err))
			}
			if got.Found != tc.wantFound {
				t.Fatalf("SignInSubject(%q, %q).Found = %v, want %v", tc.community, tc.username, got.Found, tc.wantFound)
			}
			wantUser := persistence.User{}
			if tc.wantFound {
				wantUser = readUser(t, s, tc.community, tc.username)
			}
			wantSame(t, "User", got.User, wantUser)
			read := make([]persistence.Credential, len(tc.wantCreds))
			for i, c := range tc.wantCreds {
				read[i] = asRead(c)
			}
			wantSame(t, "Credentials", got.Credentials, read)
			shape := slices.SortedFunc(slices.Values(got.CommonShape), order)
			if !same(shape, slices.SortedFunc(slices.Values(tc.wantShape), order)) || (got.CommonShape == nil) != (tc.wantShape == nil) {
				t.Fatalf("CommonShape = %+v, want %+v", got.CommonShape, tc.wantShape)
			}
		})
	}
}
