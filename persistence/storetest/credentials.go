package storetest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence"
)

// wantUser fails the test unless user want.Username of want.CommunityID is stored as want,
// found by username and by handle.
func wantUser(t *testing.T, s persistence.Store, want persistence.User) {
	t.Helper()
	got, err := s.User(t.Context(), want.CommunityID, want.Username)
	if err != nil {
		t.Fatalf("User(%s, %s): %s", want.CommunityID, want.Username, describe(err))
	}
	wantSame(t, "User("+want.Username+")", got, want)
	got, err = s.UserByHandle(t.Context(), want.CommunityID, want.Handle)
	if err != nil {
		t.Fatalf("UserByHandle(%s, %q): %s", want.CommunityID, want.Handle, describe(err))
	}
	wantSame(t, "UserByHandle("+string(want.Handle)+")", got, want)
}

// readUser reads a user and fails the test when it cannot.
func readUser(t *testing.T, s persistence.Store, communityID, username string) persistence.User {
	t.Helper()
	u, err := s.User(t.Context(), communityID, username)
	if err != nil {
		t.Fatalf("User(%s, %s): %s", communityID, username, describe(err))
	}
	return u
}

// wantNoUser fails the test unless neither the username nor the handle names a user.
func wantNoUser(t *testing.T, s persistence.Store, communityID, username string, handle []byte) {
	t.Helper()
	_, err := s.User(t.Context(), communityID, username)
	wantNotFound(t, "User("+username+")", err)
	_, err = s.UserByHandle(t.Context(), communityID, handle)
	wantNotFound(t, "UserByHandle("+string(handle)+")", err)
}

// wantCredential fails the test unless the credential want.ID is stored as want (as reads
// return it: without its attestation object).
func wantCredential(t *testing.T, s persistence.Store, want persistence.Credential) {
	t.Helper()
	got, err := s.Credential(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Credential(%s): %s", want.ID, describe(err))
	}
	wantSame(t, "Credential("+string(want.ID)+")", got, asRead(want))
}

// wantNoCredential fails the test unless there is no credential id.
func wantNoCredential(t *testing.T, s persistence.Store, id string) {
	t.Helper()
	_, err := s.Credential(t.Context(), []byte(id))
	wantNotFound(t, "Credential("+id+")", err)
}

// wantCredentialsOf fails the test unless the user's credentials are want, in this order (as
// reads return them).
func wantCredentialsOf(t *testing.T, s persistence.Store, communityID, username string, want ...persistence.Credential) {
	t.Helper()
	got, err := s.CredentialsOf(t.Context(), communityID, username)
	if err != nil {
		t.Fatalf("CredentialsOf(%s, %s): %s", communityID, username, describe(err))
	}
	read := make([]persistence.Credential, len(want))
	for i, c := range want {
		read[i] = asRead(c)
	}
	wantSame(t, "CredentialsOf("+username+")", got, read)
}

func testAddCredential(t *testing.T, open Opener) {
	alice := user("shop", "alice", "h-alice")
	c1 := credential("c1", alice)
	cases := []opCase{
		{
			name: "a new username: the user is created with the credential's handle, and the passkey stored",
			op:   persistence.AddCredential{Credential: c1, DisplayName: "Alice"},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, c1)
				u := readUser(t, s, "shop", "alice")
				wantWriteTime(t, "the user's Created", u.Created)
				wantUser(t, s, persistence.User{CommunityID: "shop", Username: "alice", DisplayName: "Alice", Handle: []byte("h-alice"), Created: u.Created})
				wantCredential(t, s, c1)
				wantCredentialsOf(t, s, "shop", "alice", c1)
			},
		},
		{
			name:  "an existing user with the credential's handle: the passkey is added, the user kept",
			setup: []persistence.Op{persistence.AddCredential{Credential: c1, DisplayName: "Alice"}},
			op:    persistence.AddCredential{Credential: credential("c2", alice), DisplayName: "Ignored"},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantSame(t, "result", v, credential("c2", alice))
				if u := readUser(t, s, "shop", "alice"); u.DisplayName != "Alice" {
					t.Fatalf("User(alice) = %+v, want the first registration's", u)
				}
				wantCredentialsOf(t, s, "shop", "alice", c1, credential("c2", alice))
			},
		},
		{
			name:  "an existing user with another handle: another first registration won, nothing is written",
			setup: []persistence.Op{persistence.AddCredential{Credential: c1, DisplayName: "Alice"}},
			op:    persistence.AddCredential{Credential: credential("c2", user("shop", "alice", "h-lost")), DisplayName: "Lost"},
			want:  persistence.ErrStartAgain,
			after: func(t *testing.T, s persistence.Store, _ any) {
				if u := readUser(t, s, "shop", "alice"); !bytes.Equal(u.Handle, []byte("h-alice")) || u.DisplayName != "Alice" {
					t.Fatalf("User(alice) = %+v, want the winner", u)
				}
				_, err := s.UserByHandle(t.Context(), "shop", []byte("h-lost"))
				wantNotFound(t, "UserByHandle(h-lost)", err)
				wantNoCredential(t, s, "c2")
				wantCredentialsOf(t, s, "shop", "alice", c1)
			},
		},
		{
			name:  "an imported user without passkeys gets its first one",
			setup: nil,
			op:    persistence.AddCredential{Credential: credential("c1", user("shop", "dora", "h-dora")), DisplayName: "Ignored"},
			after: func(t *testing.T, s persistence.Store, v any) {
				wantUser(t, s, persistence.User{CommunityID: "shop", Username: "dora", DisplayName: "Name of dora", Handle: []byte("h-dora"), Created: t0})
				wantCredentialsOf(t, s, "shop", "dora", credential("c1", user("shop", "dora", "h-dora")))
			},
		},
		{
			name: "a handle that another user of the community holds is refused, nothing is written",
			op:   persistence.AddCredential{Credential: credential("c1", user("shop", "bob", "h-dora"))},
			want: persistence.ErrStartAgain,
			after: func(t *testing.T, s persistence.Store, _ any) {
				_, err := s.User(t.Context(), "shop", "bob")
				wantNotFound(t, "User(bob)", err)
				if u, err := s.UserByHandle(t.Context(), "shop", []byte("h-dora")); err != nil || u.Username != "dora" {
					t.Fatalf("UserByHandle(h-dora) = %+v, %s; want dora", u, describe(err))
				}
				wantNoCredential(t, s, "c1")
			},
		},
		{
			name:  "the same username in another community is another user",
			setup: []persistence.Op{persistence.AddCredential{Credential: c1}},
			op:    persistence.AddCredential{Credential: credential("c2", user("blog", "alice", "h-alice")), DisplayName: "Blog Alice"},
			after: func(t *testing.T, s persistence.Store, _ any) {
				if u, err := s.UserByHandle(t.Context(), "blog", []byte("h-alice")); err != nil || u.CommunityID != "blog" || u.DisplayName != "Blog Alice" {
					t.Fatalf("UserByHandle(blog, h-alice) = %+v, %s", u, describe(err))
				}
				wantCredentialsOf(t, s, "shop", "alice", c1)
				wantCredentialsOf(t, s, "blog", "alice", credential("c2", user("blog", "alice", "h-alice")))
			},
		},
	}
	// A credential id exists once in the whole store, whoever registers it again.
	for _, again := range []struct {
		name string
		u    persistence.User
	}{
		{"the same user", alice},
		{"another user of the community", user("shop", "bob", "h-bob")},
		{"a new user of the community", user("shop", "erin", "h-erin")},
		{"a user of another community", user("blog", "carol", "h-carol")},
	} {
		dup := credential("c1", again.u)
		dup.PublicKey, dup.SignCount = []byte("another key"), 99
		cases = append(cases, opCase{
			name: "an id that is stored is refused whoever registers it: " + again.name,
			setup: []persistence.Op{persistence.AddCredential{Credential: c1},
				persistence.AddCredential{Credential: credential("b1", user("shop", "bob", "h-bob"))},
				persistence.AddCredential{Credential: credential("k1", user("blog", "carol", "h-carol"))}},
			op:   persistence.AddCredential{Credential: dup},
			want: persistence.ErrCredentialExists,
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantCredential(t, s, c1)
				wantCredentialsOf(t, s, "shop", "alice", c1)
				if again.u.Username == "bob" || again.u.Username == "carol" {
					got, err := s.CredentialsOf(t.Context(), again.u.CommunityID, again.u.Username)
					if err != nil || len(got) != 1 || bytes.Equal(got[0].ID, c1.ID) {
						t.Fatalf("CredentialsOf(%s) = %+v, %s; want its own one", again.u.Username, got, describe(err))
					}
				}
				if again.u.Username == "erin" {
					wantNoUser(t, s, "shop", "erin", []byte("h-erin"))
				}
			},
		})
	}
	// What Check refuses, every backend refuses the same way, and nothing is written.
	for _, bad := range []struct {
		name string
		edit func(c *persistence.Credential)
	}{
		{"no user handle", func(c *persistence.Credential) { c.UserHandle = nil }},
		{"a user handle of 65 bytes", func(c *persistence.Credential) { c.UserHandle = bytes.Repeat([]byte("h"), 65) }},
		{"no username", func(c *persistence.Credential) { c.Username = "" }},
		{"a username of 257 bytes", func(c *persistence.Credential) { c.Username = strings.Repeat("u", 257) }},
		{"a username with NUL, which would extend another user's", func(c *persistence.Credential) { c.Username = "alice\x00x" }},
		{"a community id that is no id", func(c *persistence.Credential) { c.CommunityID = "sh/op" }},
		{"no credential id", func(c *persistence.Credential) { c.ID = nil }},
		{"a credential id of 1024 bytes", func(c *persistence.Credential) { c.ID = bytes.Repeat([]byte("i"), 1024) }},
	} {
		c := credential("c9", user("shop", "zoe", "h-zoe"))
		bad.edit(&c)
		cases = append(cases, opCase{
			name:  "refused as Check refuses it: " + bad.name,
			setup: []persistence.Op{persistence.AddCredential{Credential: c1}},
			op:    persistence.AddCredential{Credential: c},
			want:  byCheck,
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantCredentialsOf(t, s, "shop", "alice", c1)
				wantNoCredential(t, s, string(c.ID))
				_, err := s.User(t.Context(), c.CommunityID, c.Username)
				wantNotFound(t, "User", err)
				// The id is still free for a valid registration.
				addCredential(t, s, credential("c9", user("shop", "zoe", "h-zoe")))
			},
		})
	}
	runOps(t, open, func(t *testing.T, s persistence.Store) {
		seedCommunity(t, s, "shop")
		seedCommunity(t, s, "blog")
		seedUser(t, s, "shop", "dora", []byte("h-dora"))
	}, cases)
}

func testCredentialReads(t *testing.T, open Opener) {
	alice, alice2, bob := user("shop", "alice", "ha"), user("shop", "alice2", "ha2"), user("shop", "bob", "hb")
	// Ids out of order, and of several lengths: CredentialsOf returns them in byte order.
	a1, a2, a3 := credential("b-second", alice), credential("a-first", alice), credential("b", alice)
	a3.AttestationObject = nil
	a3.LastUsed, a3.SignCount, a3.DID, a3.Transports = t1, 7, "did:example:alice", nil
	high := credential("\xff\x00high", alice)
	b1 := credential("bob-1", bob)
	// alice2 extends alice's username: her passkeys must not show up as alice's.
	x1 := credential("alice2-1", alice2)
	seed := func(t *testing.T, s persistence.Store) {
		seedCommunity(t, s, "shop")
		seedCommunity(t, s, "blog")
		for _, c := range []persistence.Credential{a1, a2, b1, x1, high} {
			addCredential(t, s, c)
		}
		// a3 gets its counter, last use and DID from a sign-in and a link.
		addCredential(t, s, func() persistence.Credential { c := a3; c.DID, c.LastUsed, c.SignCount = "", time.Time{}, 0; return c }())
		mustApplyAll(t, s,
			persistence.RecordSignIn{ID: a3.ID, Counter: 7, At: t1},
			persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: persistence.FidoKeyHash(a3.ID), DID: a3.DID})
		seedUser(t, s, "shop", "nopass", []byte("hn"))
	}
	read := func(f func(t *testing.T, s persistence.Store) (any, error)) func(t *testing.T, s persistence.Store) (any, error) {
		return f
	}
	credentialsOf := func(community, username string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) {
			return s.CredentialsOf(t.Context(), community, username)
		}
	}
	attestation := func(id []byte) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) { return s.AttestationObjectOf(t.Context(), id) }
	}
	none := []persistence.Credential{}
	runReads(t, open, seed, []readCase{
		{name: "Credential by id, without its attestation object",
			read: read(func(t *testing.T, s persistence.Store) (any, error) { return s.Credential(t.Context(), a1.ID) }), want: asRead(a1)},
		{name: "Credential after sign-ins and a link",
			read: read(func(t *testing.T, s persistence.Store) (any, error) { return s.Credential(t.Context(), a3.ID) }), want: a3},
		{name: "Credential of an unknown id is not found",
			read:    read(func(t *testing.T, s persistence.Store) (any, error) { return s.Credential(t.Context(), []byte("nope")) }),
			wantErr: persistence.ErrNotFound},
		{name: "Credential of a prefix of an id is not found",
			read:    read(func(t *testing.T, s persistence.Store) (any, error) { return s.Credential(t.Context(), []byte("b-")) }),
			wantErr: persistence.ErrNotFound},
		{name: "CredentialsOf: a user's passkeys in the byte order of their ids", read: credentialsOf("shop", "alice"),
			want: []persistence.Credential{asRead(a2), a3, asRead(a1), asRead(high)}},
		{name: "CredentialsOf a user whose username extends another's", read: credentialsOf("shop", "alice2"), want: []persistence.Credential{asRead(x1)}},
		{name: "CredentialsOf a user without passkeys is empty", read: credentialsOf("shop", "nopass"), want: none},
		{name: "CredentialsOf an unknown user is empty", read: credentialsOf("shop", "nobody"), want: none},
		{name: "CredentialsOf a username of another community is empty", read: credentialsOf("blog", "alice"), want: none},
		{name: "CredentialsOf a prefix of a username is empty", read: credentialsOf("shop", "ali"), want: none},
		{name: "AttestationObjectOf a passkey registered with one", read: attestation(a1.ID), want: a1.AttestationObject},
		{name: "AttestationObjectOf a passkey registered without one is nil", read: attestation(a3.ID), want: []byte(nil)},
		{name: "AttestationObjectOf an unknown id is not found", read: attestation([]byte("nope")), wantErr: persistence.ErrNotFound},
		{name: "User by username", read: read(func(t *testing.T, s persistence.Store) (any, error) { return s.User(t.Context(), "shop", "nopass") }),
			want: persistence.User{CommunityID: "shop", Username: "nopass", DisplayName: "Name of nopass", Handle: []byte("hn"), Created: t0}},
		{name: "UserByHandle", read: read(func(t *testing.T, s persistence.Store) (any, error) {
			return s.UserByHandle(t.Context(), "shop", []byte("hn"))
		}),
			want: persistence.User{CommunityID: "shop", Username: "nopass", DisplayName: "Name of nopass", Handle: []byte("hn"), Created: t0}},
		{name: "User of an unknown username is not found",
			read:    read(func(t *testing.T, s persistence.Store) (any, error) { return s.User(t.Context(), "shop", "nobody") }),
			wantErr: persistence.ErrNotFound},
		{name: "User of another community is not found",
			read:    read(func(t *testing.T, s persistence.Store) (any, error) { return s.User(t.Context(), "blog", "alice") }),
			wantErr: persistence.ErrNotFound},
		{name: "UserByHandle of an unknown handle is not found",
			read: read(func(t *testing.T, s persistence.Store) (any, error) {
				return s.UserByHandle(t.Context(), "shop", []byte("zz"))
			}),
			wantErr: persistence.ErrNotFound},
		{name: "UserByHandle of another community is not found",
			read: read(func(t *testing.T, s persistence.Store) (any, error) {
				return s.UserByHandle(t.Context(), "blog", []byte("ha"))
			}),
			wantErr: persistence.ErrNotFound},
	})
}

func testRecordSignIn(t *testing.T, open Opener) {
	// The signature counter must move forward whenever either side is non-zero; a refusal
	// sets the clone warning and changes nothing else.
	for _, tc := range []struct {
		name            string
		stored, counter uint32
		accepted        bool
	}{
		{"stored 0, new 0: an authenticator without a counter", 0, 0, true},
		{"0 to 5: the first counter", 0, 5, true},
		{"5 to 6: forward", 5, 6, true},
		{"5 to 5: repeated", 5, 5, false},
		{"5 to 3: backwards", 5, 3, false},
		{"5 to 0: a counter that was reset", 5, 0, false},
		{"0 to the highest uint32", 0, 1<<32 - 1, true},
		{"the highest uint32 to 0", 1<<32 - 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			orig := seedCredential(t, s, tc.stored)
			r := apply(t, s, persistence.RecordSignIn{ID: orig.ID, Counter: tc.counter, UserVerified: true, BackupState: true, At: t1})[0]
			want := orig
			if tc.accepted {
				wantRefusal(t, "RecordSignIn", r.Err, nil)
				want.SignCount, want.UserVerified, want.BackupState, want.LastUsed = tc.counter, true, true, t1
				wantSame(t, "result", r.Value, asRead(want))
			} else {
				wantRefusal(t, "RecordSignIn", r.Err, persistence.ErrCounterRegression)
				want.CloneWarning = true
			}
			wantCredential(t, s, want)
		})
	}
	runOps(t, open, func(t *testing.T, s persistence.Store) { seedCredential(t, s, 5) }, []opCase{
		{name: "a higher counter clears no clone warning: a regression's warning stays",
			setup: []persistence.Op{persistence.RecordSignIn{ID: []byte("c1"), Counter: 9, At: t0}}, // accepted: a higher counter
			op:    persistence.RecordSignIn{ID: []byte("c1"), Counter: 10, At: t1},
			after: func(t *testing.T, s persistence.Store, v any) {
				if c := v.(persistence.Credential); c.CloneWarning || c.SignCount != 10 {
					t.Fatalf("result %+v: want SignCount 10 and no clone warning (there was no regression)", c)
				}
				// Now a regression, then a higher counter: the warning stays.
				if err := applyErr(t, s, persistence.RecordSignIn{ID: []byte("c1"), Counter: 3, At: t1}); err == nil {
					t.Fatal("a regression was accepted")
				}
				wantRefusal(t, "a second regression", applyErr(t, s, persistence.RecordSignIn{ID: []byte("c1"), Counter: 4, At: t1}), persistence.ErrCounterRegression)
				later := t1.Add(time.Hour)
				c := mustApply(t, s, persistence.RecordSignIn{ID: []byte("c1"), Counter: 11, At: later}).(persistence.Credential)
				if !c.CloneWarning || c.SignCount != 11 || !c.LastUsed.Equal(later) {
					t.Fatalf("result after a higher counter = %+v; want the clone warning, SignCount 11, LastUsed %v", c, later)
				}
				wantCredential(t, s, c)
			}},
		{name: "user verification is sticky; the backup state follows the last sign-in",
			setup: []persistence.Op{persistence.RecordSignIn{ID: []byte("c1"), Counter: 6, UserVerified: true, BackupState: true, At: t0}},
			op:    persistence.RecordSignIn{ID: []byte("c1"), Counter: 7, UserVerified: false, BackupState: false, At: t1},
			after: func(t *testing.T, s persistence.Store, v any) {
				c := v.(persistence.Credential)
				if !c.UserVerified || c.BackupState || c.SignCount != 7 || !c.LastUsed.Equal(t1) {
					t.Fatalf("result = %+v; want UserVerified, no BackupState, SignCount 7, LastUsed %v", c, t1)
				}
				wantCredential(t, s, c)
			}},
		{name: "the attestation object stays after a sign-in", op: persistence.RecordSignIn{ID: []byte("c1"), Counter: 6, At: t1},
			after: func(t *testing.T, s persistence.Store, v any) {
				if v.(persistence.Credential).AttestationObject != nil {
					t.Fatal("the result carries the attestation object; reads leave it out")
				}
				att, err := s.AttestationObjectOf(t.Context(), []byte("c1"))
				if err != nil || !bytes.Equal(att, credential("c1", persistence.User{}).AttestationObject) {
					t.Fatalf("AttestationObjectOf(c1) = %x, %s", att, describe(err))
				}
			}},
		{name: "an unknown credential is refused and not created", op: persistence.RecordSignIn{ID: []byte("nope"), Counter: 1, At: t1},
			want: persistence.ErrCredentialUnknown,
			after: func(t *testing.T, s persistence.Store, _ any) {
				wantNoCredential(t, s, "nope")
			}},
	})
}
