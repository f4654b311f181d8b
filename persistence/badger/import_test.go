package badger_test

import (
	"bytes"
	"reflect"
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

func TestImport(t *testing.T) {
	t.Run("imported users and credentials read as registered ones", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		alice, bob, carol := importUser("alice", "ha"), importUser("bob", "hb"), importUser("carol", "hc")
		carol.Created = time.Time{}
		a1, a2, b1 := credential("a-1", alice), credential("a-2", alice), credential("b-1", bob)
		b1.AttestationObject = nil
		if err := s.Import(ctx, []persistence.User{alice, bob, carol}, []persistence.Credential{a2, b1, a1}); err != nil {
			t.Fatalf("Import: %s", describe(err))
		}
		for _, u := range []persistence.User{alice, bob} {
			if got, err := s.User(ctx, "shop", u.Username); err != nil || !reflect.DeepEqual(got, u) {
				t.Fatalf("User(%s) = %+v, %v; want %+v", u.Username, got, err, u)
			}
			if got, err := s.UserByHandle(ctx, "shop", u.Handle); err != nil || !reflect.DeepEqual(got, u) {
				t.Fatalf("UserByHandle(%s) = %+v, %v; want %+v", u.Handle, got, err, u)
			}
		}
		if got, err := s.User(ctx, "shop", "carol"); err != nil || got.Created.IsZero() {
			t.Fatalf("User(carol) = %+v, %v; want her created now", got, err)
		}
		for _, c := range []persistence.Credential{a1, a2, b1} {
			if got, err := s.Credential(ctx, c.ID); err != nil || !reflect.DeepEqual(got, asRead(c)) {
				t.Fatalf("Credential(%s) = %+v, %v; want %+v", c.ID, got, err, asRead(c))
			}
			if got, err := s.AttestationObjectOf(ctx, c.ID); err != nil || !bytes.Equal(got, c.AttestationObject) {
				t.Fatalf("AttestationObjectOf(%s) = %x, %v; want %x", c.ID, got, err, c.AttestationObject)
			}
		}
		if list, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || !reflect.DeepEqual(list, []persistence.Credential{asRead(a1), asRead(a2)}) {
			t.Fatalf("CredentialsOf(alice) = %+v, %v; want [a-1 a-2]", list, err)
		}
		if list, err := s.CredentialsOf(ctx, "shop", "carol"); err != nil || len(list) != 0 {
			t.Fatalf("CredentialsOf(carol) = %+v, %v; want none", list, err)
		}
		// Settling (compacting into one level) changes nothing that reads see.
		before, err := s.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Settle(); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		if after, err := s.Digest(); err != nil || !bytes.Equal(before, after) {
			t.Fatalf("the store's digest changed when it settled: %v", err)
		}
		// The ordinary ops see the imported records.
		other := alice
		other.Handle = []byte("other")
		wantCode(t, applyErr(t, s, persistence.AddCredential{Credential: credential("a-other", other)}), messages.CodeConflict)
		mustApply(t, s, persistence.AddCredential{Credential: credential("a-3", alice)})
		if got, err := s.User(ctx, "shop", "alice"); err != nil || !reflect.DeepEqual(got, alice) {
			t.Fatalf("User(alice) = %+v, %v; want the imported %+v", got, err, alice)
		}
		mustApply(t, s, persistence.RecordSignIn{ID: a1.ID, Counter: 1, At: t1})
		wantCode(t, applyErr(t, s, persistence.AddCredential{Credential: credential("b-1", bob)}), messages.CodeCredentialExists)
	})

	t.Run("an import larger than one transaction is written whole", func(t *testing.T) {
		const n = 4000 // about 3 MB: several transactions
		s := benchSeed(t, 0, 0)
		users := make([]persistence.User, n)
		creds := make([]persistence.Credential, n)
		for i := range users {
			users[i] = benchUser(i)
			creds[i] = benchCredential(i, 0, users[i])
		}
		if err := s.Import(ctx, users, creds); err != nil {
			t.Fatalf("Import: %s", describe(err))
		}
		for _, i := range []int{0, 1, n / 2, n - 1} {
			if got, err := s.UserByHandle(ctx, "shop", users[i].Handle); err != nil || !reflect.DeepEqual(got, users[i]) {
				t.Fatalf("UserByHandle(user %d) = %+v, %v", i, got, err)
			}
			if list, err := s.CredentialsOf(ctx, "shop", users[i].Username); err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], asRead(creds[i])) {
				t.Fatalf("CredentialsOf(user %d) = %+v, %v", i, list, err)
			}
		}
	})

	// Each refusal writes nothing, though the records before the bad one are valid.
	existing := importUser("erin", "he")
	valid := func() ([]persistence.User, []persistence.Credential) {
		alice, bob := importUser("alice", "ha"), importUser("bob", "hb")
		return []persistence.User{alice, bob}, []persistence.Credential{credential("a-1", alice), credential("b-1", bob)}
	}
	tests := []struct {
		name   string
		change func(users []persistence.User, creds []persistence.Credential) ([]persistence.User, []persistence.Credential)
		code   messages.Code
	}{
		{"the community does not exist", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			u[1].CommunityID, c[1].CommunityID = "nowhere", "nowhere"
			return u, c
		}, messages.CodeCommunityUnknown},
		{"the username exists", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser(existing.Username, "new-handle")), c
		}, messages.CodeConflict},
		{"the handle is used", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("dave", string(existing.Handle))), c
		}, messages.CodeConflict},
		{"the credential id exists", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("e-1", u[0]))
		}, messages.CodeCredentialExists},
		{"a credential names a user not given", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("e-2", existing))
		}, messages.CodeInvalidRequest},
		{"a credential carries another handle", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			c[1].UserHandle = []byte("ha")
			return u, c
		}, messages.CodeInvalidRequest},
		{"a username given twice", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("alice", "hz")), c
		}, messages.CodeInvalidRequest},
		{"a handle given twice", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("zoe", "ha")), c
		}, messages.CodeInvalidRequest},
		{"a credential id given twice", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("a-1", u[1]))
		}, messages.CodeInvalidRequest},
		{"a user created in year 1 (not storable in Unix nanoseconds)", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			u[0].Created = time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)
			return u, c
		}, messages.CodeInvalidRequest},
		{"a credential last used at the Unix epoch (would read back as never)", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			c[0].LastUsed = time.Unix(0, 0)
			return u, c
		}, messages.CodeInvalidRequest},
		{"an empty username", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("", "hz")), c
		}, messages.CodeInvalidRequest},
		{"a username with NUL", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("a\x00b", "hz")), c
		}, messages.CodeInvalidRequest},
		{"a username of 257 bytes", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser(strings.Repeat("x", 257), "hz")), c
		}, messages.CodeInvalidRequest},
		{"an invalid community id", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			u[1].CommunityID, c[1].CommunityID = "a/b", "a/b"
			return u, c
		}, messages.CodeInvalidRequest},
		{"an empty handle", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("zoe", "")), c
		}, messages.CodeInvalidRequest},
		{"a handle of 65 bytes", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("zoe", strings.Repeat("h", 65))), c
		}, messages.CodeInvalidRequest},
		{"an empty credential id", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("", u[0]))
		}, messages.CodeInvalidRequest},
		{"a credential id of 1024 bytes", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential(strings.Repeat("i", 1024), u[0]))
		}, messages.CodeInvalidRequest},
		{"a user with more credential data than a transaction holds", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			big := credential("big", u[0])
			big.AttestationObject = make([]byte, importTooBig)
			return u, append(c, big)
		}, messages.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			s := mustOpen(t)
			seedCommunity(t, s, "shop")
			seedUser(t, s, "shop", existing.Username, existing.Handle)
			mustApply(t, s, persistence.AddCredential{Credential: credential("e-1", existing)})
			before, err := s.Digest()
			if err != nil {
				t.Fatal(err)
			}
			users, creds := tc.change(valid())
			wantCode(t, s.Import(ctx, users, creds), tc.code)
			if after, err := s.Digest(); err != nil || !bytes.Equal(after, before) {
				t.Fatalf("the store changed (digest %x, %v; was %x)", after, err, before)
			}
			// The valid records alone import.
			users, creds = valid()
			if err := s.Import(ctx, users, creds); err != nil {
				t.Fatalf("Import of the valid records after the refusal: %s", describe(err))
			}
		})
	}
}

// BenchmarkImport imports b.N users with one passkey each, 10,000 a call, as `bench seed`
// does; users/s is the rate. Measure 100,000 users with
//
//	go test -run '^$' -bench Import -benchtime 100000x ./persistence/
func BenchmarkImport(b *testing.B) {
	const batch = 10000
	s := benchSeed(b, 0, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for first := 0; first < b.N; first += batch {
		b.StopTimer()
		n := min(batch, b.N-first)
		users := make([]persistence.User, n)
		creds := make([]persistence.Credential, n)
		for k := range users {
			users[k] = benchUser(first + k)
			creds[k] = benchCredential(first+k, 0, users[k])
		}
		b.StartTimer()
		if err := s.Import(ctx, users, creds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "users/s")
}

// importTooBig is more credential data than one user may bring to an Import.
const importTooBig = 1100 << 10
