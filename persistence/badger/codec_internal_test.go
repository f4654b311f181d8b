package badger

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// Users and credentials round trip through their CBOR records, from the zero value to every
// field set.
func TestRecordCodecRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	full := persistence.Credential{
		ID: []byte("id"), CommunityID: "shop", Username: "alice", UserHandle: []byte{0, 1}, RPID: "example.com",
		PublicKey: []byte{0xa5}, Algorithm: -8, AAGUID: make([]byte, 16), AttestationFormat: "packed",
		AttestationType: "Basic", AttestationTrusted: true, Transports: []string{"usb", "nfc"}, Attachment: "cross-platform",
		UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true, SignCount: 1<<32 - 1,
		CloneWarning: true, Created: at, LastUsed: at.Add(time.Hour),
	}
	creds := []struct {
		name string
		c    persistence.Credential
	}{
		{"zero", persistence.Credential{}},
		{"every field", full},
		{"a time in another zone reads back in UTC", persistence.Credential{Created: at.In(time.FixedZone("x", 3600))}},
	}
	for _, tc := range creds {
		t.Run("credential: "+tc.name, func(t *testing.T) {
			b, err := encodeCredential(tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if isJSON(b) {
				t.Fatalf("encoded record %x reads as JSON", b)
			}
			got, err := decodeCredential(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.c
			if !want.Created.IsZero() {
				want.Created = want.Created.UTC()
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v\nwant    %+v", got, want)
			}
		})
	}
	users := []struct {
		name string
		u    persistence.User
	}{
		{"zero", persistence.User{}},
		{"every field", persistence.User{CommunityID: "shop", Username: "alice", DisplayName: "Alice", Handle: []byte{0, 1, 2}, Created: at}},
	}
	for _, tc := range users {
		t.Run("user: "+tc.name, func(t *testing.T) {
			b, err := encodeUser(tc.u)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeUser(b)
			if err != nil || !reflect.DeepEqual(got, tc.u) {
				t.Fatalf("decoded %+v, %v; want %+v", got, err, tc.u)
			}
		})
	}
	t.Run("a CBOR credential is a third of its JSON", func(t *testing.T) {
		full.AttestationObject = nil
		b, _ := encodeCredential(full)
		j, _ := json.Marshal(full)
		if 3*len(b) > len(j)+len(j)/10 {
			t.Errorf("CBOR %d bytes, JSON %d", len(b), len(j))
		}
	})
}

// A store written by an earlier version holds users and credentials in JSON, with the
// attestation object inside the credential: they read as before, and a sign-in rewrites the
// credential in CBOR and moves its attestation object to its own key.
func TestReadsRecordsOfEarlierVersions(t *testing.T) {
	s, err := Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	at := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	u := persistence.User{CommunityID: "shop", Username: "alice", DisplayName: "Alice", Handle: []byte("ha"), Created: at}
	c := persistence.Credential{ID: []byte("c1"), CommunityID: "shop", Username: "alice", UserHandle: u.Handle, RPID: "example.com",
		PublicKey: []byte{0xa5}, Algorithm: -7, AttestationFormat: "none", AttestationObject: []byte{0xa3, 0x63},
		UserPresent: true, SignCount: 3, Created: at}
	if err := s.db.Update(func(txn *bdb.Txn) error {
		for key, v := range map[string]any{string(userKey("shop", "alice")): u, string(credKey(c.ID)): c} {
			if err := setJSON(txn, []byte(key), v); err != nil {
				return err
			}
		}
		if err := txn.Set(handleKey("shop", u.Handle), []byte("alice")); err != nil {
			return err
		}
		return txn.Set(append(userCredPrefix("shop", "alice"), c.ID...), nil)
	}); err != nil {
		t.Fatal(err)
	}

	read := c
	read.AttestationObject = nil
	checkReads := func(t *testing.T, want persistence.Credential) {
		t.Helper()
		if got, err := s.User(ctx, "shop", "alice"); err != nil || !reflect.DeepEqual(got, u) {
			t.Fatalf("User = %+v, %v; want %+v", got, err, u)
		}
		if got, err := s.UserByHandle(ctx, "shop", u.Handle); err != nil || !reflect.DeepEqual(got, u) {
			t.Fatalf("UserByHandle = %+v, %v; want %+v", got, err, u)
		}
		if got, err := s.Credential(ctx, c.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("Credential = %+v, %v\nwant %+v", got, err, want)
		}
		if got, err := s.CredentialsOf(ctx, "shop", "alice"); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Fatalf("CredentialsOf = %+v, %v; want [%+v]", got, err, want)
		}
		if got, err := s.AttestationObjectOf(ctx, c.ID); err != nil || !reflect.DeepEqual(got, c.AttestationObject) {
			t.Fatalf("AttestationObjectOf = %x, %v; want %x", got, err, c.AttestationObject)
		}
	}
	checkReads(t, read)

	r := s.Apply(ctx, []persistence.Op{persistence.RecordSignIn{ID: c.ID, Counter: 4, At: at.Add(time.Hour)}})[0]
	read.SignCount, read.LastUsed = 4, at.Add(time.Hour)
	if r.Err != nil || !reflect.DeepEqual(r.Value, read) {
		t.Fatalf("RecordSignIn = %+v, %v; want %+v", r.Value, r.Err, read)
	}
	checkReads(t, read)
	if err := s.db.View(func(txn *bdb.Txn) error {
		item, err := txn.Get(credKey(c.ID))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if isJSON(b) {
				t.Errorf("the rewritten credential is still JSON: %s", b)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
}
