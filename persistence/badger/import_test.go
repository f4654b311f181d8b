package badger_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// importUser is a user of community "shop" to import.
func importUser(name, handle string) persistence.User {
	return persistence.User{CommunityID: "shop", Username: name, DisplayName: "Name of " + name, Handle: []byte(handle), Created: t0}
}

// TestImport is what the contract suite (storetest) cannot see of Import: its transactions
// and its keys. The records an import writes, and what it refuses, are the suite's.
func TestImport(t *testing.T) {
	t.Run("settling the store after an import changes nothing, key for key", func(t *testing.T) {
		s := mustOpen(t)
		seedCommunity(t, s, "shop")
		alice, bob := importUser("alice", "ha"), importUser("bob", "hb")
		if err := s.Import(ctx, []persistence.User{alice, bob}, []persistence.Credential{credential("a-1", alice), credential("b-1", bob)}); err != nil {
			t.Fatalf("Import: %s", describe(err))
		}
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

	// A refusal writes no key, though the records before the bad one are valid.
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
		{"the handle is used", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return append(u, importUser("dave", string(existing.Handle))), c
		}, messages.CodeConflict},
		{"the credential id exists", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			return u, append(c, credential("e-1", u[0]))
		}, messages.CodeCredentialExists},
		{"a credential carries another handle", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			c[1].UserHandle = []byte("ha")
			return u, c
		}, messages.CodeInvalidRequest},
		// Badger's own limit: a user's records must fit in one of its transactions.
		{"a user with more credential data than a transaction holds", func(u []persistence.User, c []persistence.Credential) ([]persistence.User, []persistence.Credential) {
			big := credential("big", u[0])
			big.AttestationObject = make([]byte, importTooBig)
			return u, append(c, big)
		}, messages.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run("refused, writing no key: "+tc.name, func(t *testing.T) {
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
