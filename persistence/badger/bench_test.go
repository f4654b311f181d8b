package badger_test

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// The benchmarks measure each Badger call of a ceremony on realistic records: a user, and an
// ES256 passkey with a 77-byte COSE key and a packed self-attestation object of about 280
// bytes, as a registration stores them. Run them with
//
//	go test -run '^$' -bench . -benchmem -count 6 ./persistence/

// benchUsers is how many users the read benchmarks spread their reads over.
const benchUsers = 1000

// benchOpen opens a fresh store in a temporary directory, closed when the benchmark ends.
func benchOpen(tb testing.TB) *badger.Store {
	tb.Helper()
	s, err := badger.Open(tb.TempDir(), zap.NewNop())
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// benchApply applies ops, a few hundred a batch, and fails on any refusal.
func benchApply(tb testing.TB, s *badger.Store, ops []persistence.Op) {
	tb.Helper()
	for first := 0; first < len(ops); first += 256 {
		batch := ops[first:min(first+256, len(ops))]
		for i, r := range s.Apply(ctx, batch) {
			if r.Err != nil {
				tb.Fatalf("Apply(%T): %v", batch[i], r.Err)
			}
		}
	}
}

// benchUser is user i of community "shop".
func benchUser(i int) persistence.User {
	h := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("handle"), uint64(i)))
	name := fmt.Sprintf("user-%07d@example.com", i)
	return persistence.User{CommunityID: "shop", Username: name, DisplayName: "User " + name, Handle: h[:], Created: t0}
}

// benchCredID is the 32-byte id of credential j of user i.
func benchCredID(i, j int) []byte {
	id := sha256.Sum256(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte("cred"), uint64(i)), uint64(j)))
	return id[:]
}

// benchCOSEKey is a 77-byte COSE_Key of a P-256 public key (EC2, ES256).
func benchCOSEKey(seed []byte) []byte {
	x, y := sha256.Sum256(append([]byte("x"), seed...)), sha256.Sum256(append([]byte("y"), seed...))
	k := []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20}
	k = append(k, x[:]...)
	k = append(append(k, 0x22, 0x58, 0x20), y[:]...)
	return k
}

// benchAttestation is a packed self-attestation object (CBOR) for a credential id and key.
func benchAttestation(id, cose []byte) []byte {
	rp := sha256.Sum256([]byte("example.com"))
	auth := append(rp[:], 0x45, 0, 0, 0, 0)  // UP, UV, AT; counter 0
	auth = append(auth, make([]byte, 16)...) // AAGUID
	auth = append(append(auth, byte(len(id)>>8), byte(len(id))), id...)
	auth = append(auth, cose...)
	sig := make([]byte, 71)
	sig[0] = 0x30
	out := []byte{0xa3, 0x63, 'f', 'm', 't', 0x66, 'p', 'a', 'c', 'k', 'e', 'd',
		0x67, 'a', 't', 't', 'S', 't', 'm', 't', 0xa2, 0x63, 'a', 'l', 'g', 0x26, 0x63, 's', 'i', 'g', 0x58, byte(len(sig))}
	out = append(out, sig...)
	out = append(out, 0x68, 'a', 'u', 't', 'h', 'D', 'a', 't', 'a', 0x58, byte(len(auth)))
	return append(out, auth...)
}

// benchCredential is credential j of user u (user number i), as a registration stores it.
func benchCredential(i, j int, u persistence.User) persistence.Credential {
	id := benchCredID(i, j)
	cose := benchCOSEKey(id)
	return persistence.Credential{
		ID: id, CommunityID: u.CommunityID, Username: u.Username, UserHandle: u.Handle, RPID: "example.com",
		PublicKey: cose, Algorithm: -7, AAGUID: make([]byte, 16),
		AttestationFormat: "packed", AttestationType: "Self", AttestationObject: benchAttestation(id, cose),
		Transports: []string{"internal", "hybrid"}, Attachment: "platform",
		UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true, Created: t0,
	}
}

// benchRegistration is the ops of registering user i with perUser credentials.
func benchRegistration(i, perUser int) []persistence.Op {
	u := benchUser(i)
	var ops []persistence.Op
	for j := range perUser {
		ops = append(ops, persistence.AddCredential{Credential: benchCredential(i, j, u), DisplayName: u.DisplayName})
	}
	return ops
}

// benchSeed opens a store with community "shop" and users 0 … n-1, each with perUser
// credentials.
func benchSeed(tb testing.TB, n, perUser int) *badger.Store {
	tb.Helper()
	s := benchOpen(tb)
	ops := []persistence.Op{persistence.PutCommunity{Community: community("shop"), Create: true}}
	for i := range n {
		ops = append(ops, benchRegistration(i, perUser)...)
	}
	benchApply(tb, s, ops)
	return s
}

// benchReads runs read once per iteration, for users 0, 1, 2, … of a store of benchUsers users
// with one passkey each.
func benchReads(b *testing.B, read func(s *badger.Store, user int) error) {
	s := benchSeed(b, benchUsers, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := read(s, i%benchUsers); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkUser measures a read of a user by username (every options call).
func BenchmarkUser(b *testing.B) {
	names := make([]string, benchUsers)
	for i := range names {
		names[i] = benchUser(i).Username
	}
	benchReads(b, func(s *badger.Store, i int) error {
		_, err := s.User(ctx, "shop", names[i])
		return err
	})
}

// BenchmarkUserByHandle measures a read of a user by user handle.
func BenchmarkUserByHandle(b *testing.B) {
	handles := make([][]byte, benchUsers)
	for i := range handles {
		handles[i] = benchUser(i).Handle
	}
	benchReads(b, func(s *badger.Store, i int) error {
		_, err := s.UserByHandle(ctx, "shop", handles[i])
		return err
	})
}

// BenchmarkCredential measures a read of a credential by id (a discoverable sign-in's result).
func BenchmarkCredential(b *testing.B) {
	benchReads(b, func(s *badger.Store, i int) error {
		_, err := s.Credential(ctx, benchCredID(i, 0))
		return err
	})
}

// BenchmarkCredentialsOf measures reading a user's passkeys (every options call by username).
func BenchmarkCredentialsOf(b *testing.B) {
	for _, perUser := range []int{1, 5} {
		b.Run(fmt.Sprintf("creds=%d", perUser), func(b *testing.B) {
			s := benchSeed(b, benchUsers, perUser)
			names := make([]string, benchUsers)
			for i := range names {
				names[i] = benchUser(i).Username
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				list, err := s.CredentialsOf(ctx, "shop", names[i%benchUsers])
				if err != nil || len(list) != perUser {
					b.Fatalf("CredentialsOf = %d credentials, %v; want %d", len(list), err, perUser)
				}
				i++
			}
		})
	}
}

// BenchmarkLicenseByKey measures finding a license by its key (every call; cached).
func BenchmarkLicenseByKey(b *testing.B) {
	s := benchSeed(b, 1, 1)
	l, key, err := persistence.NewLicense(persistence.LevelCommunity, "shop", "", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	benchApply(b, s, []persistence.Op{persistence.PutLicense{License: l}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.LicenseByKey(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommunity measures reading a community (every ceremony; cached).
func BenchmarkCommunity(b *testing.B) {
	s := benchSeed(b, 1, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Community(ctx, "shop"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyRecordSignIn is the store's group commit: one synced transaction per batch of
// sign-ins of distinct credentials. ns/signin is the time per sign-in of the batch.
func BenchmarkApplyRecordSignIn(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := benchSeed(b, benchUsers, 1)
			counters := make([]uint32, benchUsers)
			ops := make([]persistence.Op, size)
			b.ReportAllocs()
			next := 0
			for b.Loop() {
				for k := range ops {
					i := next % benchUsers
					next++
					counters[i]++
					ops[k] = persistence.RecordSignIn{ID: benchCredID(i, 0), Counter: counters[i], UserVerified: true, BackupState: true, At: t1}
				}
				for _, r := range s.Apply(ctx, ops) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/signin")
		})
	}
}

// BenchmarkApplyRegistration commits batches of 16 registrations (an AddCredential that
// creates a new user with its passkey). ns/registration is the time per registration.
func BenchmarkApplyRegistration(b *testing.B) {
	const size = 16
	s := benchSeed(b, 0, 0)
	b.ReportAllocs()
	next := 0
	for b.Loop() {
		ops := make([]persistence.Op, 0, size)
		for range size {
			ops = append(ops, benchRegistration(next, 1)...)
			next++
		}
		for _, r := range s.Apply(ctx, ops) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/registration")
}
