package storetest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// importUser is a user of community "shop" to import.
func importUser(name, handle string) persistence.User {
	return persistence.User{CommunityID: "shop", Username: name, DisplayName: "Name of " + name, Handle: []byte(handle), Created: t0}
}

func testImport(t *testing.T, open Opener) {
	t.Run("imported users and passkeys read exactly as given, times and all", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		alice, bob, carol := importUser("alice", "ha"), importUser("bob", "hb"), importUser("carol", "hc")
		a1, a2, b1 := credential("a-1", alice), credential("a-2", alice), credential("b-1", bob)
		// Everything a passkey may carry after its sign-ins and links.
		a2.SignCount, a2.LastUsed, a2.CloneWarning, a2.UserVerified, a2.BackupState, a2.DID = 41, t1, true, true, true, "did:example:alice"
		a2.Created = time.Date(1700, 1, 2, 3, 4, 5, 6, time.UTC)
		b1.AttestationObject, b1.Transports, b1.Attachment, b1.AAGUID = nil, nil, "", nil
		if err := s.Import(t.Context(), []persistence.User{alice, bob, carol}, []persistence.Credential{a2, b1, a1}); err != nil {
			t.Fatalf("Import: %s", describe(err))
		}
		for _, u := range []persistence.User{alice, bob, carol} {
			wantUser(t, s, u)
		}
		for _, c := range []persistence.Credential{a1, a2, b1} {
			wantCredential(t, s, c)
			att, err := s.AttestationObjectOf(t.Context(), c.ID)
			if err != nil || !bytes.Equal(att, c.AttestationObject) {
				t.Fatalf("AttestationObjectOf(%s) = %x, %s; want %x", c.ID, att, describe(err), c.AttestationObject)
			}
		}
		wantCredentialsOf(t, s, "shop", "alice", a1, a2)
		wantCredentialsOf(t, s, "shop", "bob", b1)
		wantCredentialsOf(t, s, "shop", "carol")
	})

	t.Run("a user's zero Created becomes the time of the import", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		u := importUser("alice", "ha")
		u.Created = time.Time{}
		if err := s.Import(t.Context(), []persistence.User{u}, nil); err != nil {
			t.Fatal(describe(err))
		}
		wantWriteTime(t, "Created", readUser(t, s, "shop", "alice").Created)
	})

	t.Run("an import of nothing writes nothing", func(t *testing.T) {
		s := open(t)
		if err := s.Import(t.Context(), nil, nil); err != nil {
			t.Fatal(describe(err))
		}
		if empty, err := s.Empty(t.Context()); err != nil || !empty {
			t.Fatalf("Empty = %v, %s", empty, describe(err))
		}
	})

	t.Run("the ops see imported records as registered ones", func(t *testing.T) {
		s := open(t)
		seedShop(t, s)
		alice, bob := importUser("alice", "ha"), importUser("bob", "hb")
		a1, b1 := credential("a-1", alice), credential("b-1", bob)
		b1.DID = "did:example:bob"
		if err := s.Import(t.Context(), []persistence.User{alice, bob}, []persistence.Credential{a1, b1}); err != nil {
			t.Fatal(describe(err))
		}
		wantRefusal(t, "another first registration of alice", applyErr(t, s,
			persistence.AddCredential{Credential: credential("a-other", user("shop", "alice", "other"))}), persistence.ErrStartAgain)
		wantRefusal(t, "an imported id again", applyErr(t, s,
			persistence.AddCredential{Credential: credential("b-1", user("shop", "carol", "hc"))}), persistence.ErrCredentialExists)
		addCredential(t, s, credential("a-2", alice))
		wantUser(t, s, alice)
		signedIn := mustApply(t, s, persistence.RecordSignIn{ID: a1.ID, Counter: 1, At: t1}).(persistence.Credential)
		if signedIn.SignCount != 1 || !signedIn.Created.Equal(a1.Created) {
			t.Fatalf("sign-in of an imported passkey = %+v", signedIn)
		}
		mustApply(t, s, persistence.LinkCredential{CommunityID: "shop", Username: "alice", FidoKeyHash: hashOf("a-1"), DID: "did:example:alice"})
		wantRefusal(t, "linking bob's imported link elsewhere", applyErr(t, s,
			persistence.LinkCredential{CommunityID: "shop", Username: "bob", FidoKeyHash: hashOf("b-1"), DID: "did:example:x"}), persistence.ErrLinkedElsewhere)
		if n := mustApply(t, s, persistence.RemoveCredentials{CommunityID: "shop", DID: "did:example:bob"}); n != 1 {
			t.Fatalf("removing by an imported DID removed %v, want 1", n)
		}
		wantNoCredential(t, s, "b-1")
	})

	// Each refusal writes nothing, though the records before the bad one are valid: the valid
	// records alone import afterwards.
	existing := importUser("erin", "he")
	valid := func() ([]persistence.User, []persistence.Credential) {
		alice, bob := importUser("alice", "ha"), importUser("bob", "hb")
		return []persistence.User{alice, bob}, []persistence.Credential{credential("a-1", alice), credential("b-1", bob)}
	}
	type edit func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential)
	for _, tc := range []struct {
		name   string
		change edit
		// want is the refusal; nil: the one PlanImport makes, with its code and message.
		want error
	}{
		{"the community does not exist", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			u[1].CommunityID, c[1].CommunityID = "nowhere", "nowhere"
			return u, c
		}, persistence.CommunityUnknown("nowhere")},
		{"the username exists", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser(existing.Username, "new-handle")), c
		}, code(messages.CodeConflict)},
		{"the handle is used", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("dave", string(existing.Handle))), c
		}, code(messages.CodeConflict)},
		{"the credential id exists", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("e-1", u[0]))
		}, code(messages.CodeCredentialExists)},
		{"a credential names a user not given", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("e-2", existing))
		}, nil},
		{"a credential carries another handle", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			c[1].UserHandle = []byte("ha")
			return u, c
		}, nil},
		{"a username given twice", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("alice", "hz")), c
		}, nil},
		{"a handle given twice", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("zoe", "ha")), c
		}, nil},
		{"a credential id given twice", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("a-1", u[1]))
		}, nil},
		{"a user created in year 1 (not storable in Unix nanoseconds)", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			u[0].Created = time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)
			return u, c
		}, nil},
		{"a credential last used at the Unix epoch (would read back as never)", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			c[0].LastUsed = time.Unix(0, 0)
			return u, c
		}, nil},
		{"a credential created after 2262", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			c[0].Created = time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)
			return u, c
		}, nil},
		{"an invalid DID", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			c[0].DID = "example:alice"
			return u, c
		}, nil},
		{"an empty username", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("", "hz")), c
		}, nil},
		{"a username with NUL", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("a\x00b", "hz")), c
		}, nil},
		{"a username of 257 bytes", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser(strings.Repeat("x", 257), "hz")), c
		}, nil},
		{"an invalid community id", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			u[1].CommunityID, c[1].CommunityID = "a/b", "a/b"
			return u, c
		}, nil},
		{"an empty handle", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("zoe", "")), c
		}, nil},
		{"a handle of 65 bytes", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("zoe", strings.Repeat("h", 65))), c
		}, nil},
		{"an empty credential id", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("", u[0]))
		}, nil},
		{"a credential id of 1024 bytes", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential(strings.Repeat("i", 1024), u[0]))
		}, nil},
	} {
		t.Run("refused, writing nothing: "+tc.name, func(t *testing.T) {
			s := open(t)
			seedShop(t, s)
			seedUser(t, s, "shop", existing.Username, existing.Handle)
			addCredential(t, s, credential("e-1", existing))
			users, creds := tc.change(valid())
			err := s.Import(t.Context(), users, creds)
			if tc.want != nil {
				wantRefusal(t, "Import", err, tc.want)
			} else {
				_, planned := persistence.PlanImport(users, creds)
				var want, got *messages.Error
				if !errors.As(planned, &want) {
					t.Fatalf("PlanImport accepts the records (%v): the case is wrong", planned)
				}
				if !errors.As(err, &got) || got.Code != want.Code || got.Message != want.Message {
					t.Fatalf("Import: %s, want PlanImport's %q", describe(err), planned)
				}
			}
			wantNoUser(t, s, "shop", "alice", []byte("ha"))
			wantNoCredential(t, s, "a-1")
			users, creds = valid()
			if err := s.Import(t.Context(), users, creds); err != nil {
				t.Fatalf("Import of the valid records after the refusal: %s", describe(err))
			}
		})
	}
}
