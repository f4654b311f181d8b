package badger

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// TestParseReserve is the syntax of --min-free-disk: a size with or without a unit, or a share
// of the filesystem; anything else is refused with a message that shows what to write.
func TestParseReserve(t *testing.T) {
	cases := []struct {
		in   string
		want Reserve
		err  string // a part of the error; "" when in is valid
	}{
		{in: "256MiB", want: Reserve{Bytes: 256 << 20}},
		{in: "1GiB", want: Reserve{Bytes: 1 << 30}},
		{in: "1.5GiB", want: Reserve{Bytes: 3 << 29}},
		{in: "64KiB", want: Reserve{Bytes: 64 << 10}},
		{in: "2TiB", want: Reserve{Bytes: 2 << 40}},
		{in: "500MB", want: Reserve{Bytes: 500_000_000}},
		{in: "1GB", want: Reserve{Bytes: 1_000_000_000}},
		{in: "1048576", want: Reserve{Bytes: 1 << 20}},
		{in: "4096B", want: Reserve{Bytes: 4096}},
		{in: "units in any case: 256mib", want: Reserve{Bytes: 256 << 20}},
		{in: " 8 MiB ", want: Reserve{Bytes: 8 << 20}},
		{in: "5%", want: Reserve{Percent: 5}},
		{in: "0.5%", want: Reserve{Percent: 0.5}},
		{in: "12.5 %", want: Reserve{Percent: 12.5}},

		{in: "", err: "give a size such as 256MiB"},
		{in: "0", err: "at least one byte"},
		{in: "0.4", err: "at least one byte"},
		{in: "0MiB", err: "at least one byte"},
		{in: "MiB", err: "give a size"},
		{in: "-1MiB", err: "give a size"},
		{in: ".5GiB", err: "give a size"},
		{in: "1e9", err: "give a size"},
		{in: "Inf", err: "give a size"},
		{in: "NaN", err: "give a size"},
		{in: "256M", err: "give a size"},
		{in: "1.2.3MiB", err: "give a size"},
		{in: "10000000TiB", err: "below 8 EiB"},
		{in: "0%", err: "above 0% and below 100%"},
		{in: "100%", err: "above 0% and below 100%"},
		{in: "-5%", err: "above 0% and below 100%"},
		{in: "%", err: "above 0% and below 100%"},
		{in: "NaN%", err: "above 0% and below 100%"},
		{in: "5MiB%", err: "above 0% and below 100%"},
	}
	for _, tc := range cases {
		in := tc.in
		if name, value, ok := strings.Cut(in, ": "); ok && strings.Contains(name, " ") {
			in = value // "a description: the input"
		}
		t.Run(tc.in, func(t *testing.T) {
			var got Reserve
			err := got.Set(in)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Set(%q): %v", in, err)
			case tc.err == "" && got != tc.want:
				t.Fatalf("Set(%q) = %+v, want %+v", in, got, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Set(%q) = %+v, %v; want an error saying %q", in, got, err, tc.err)
			case tc.err == "":
				// What String writes, Set reads back.
				var again Reserve
				if err := again.Set(got.String()); err != nil || again != got {
					t.Errorf("Set(String() = %q) = %+v, %v; want %+v", got.String(), again, err, got)
				}
			}
		})
	}
}

// TestReserveOf is the reserve in bytes on filesystems of several sizes: the default is 256 MiB
// or 5 %, whichever is smaller, but never below MinReserve; an explicit size is kept whatever
// the filesystem; a share follows the filesystem's size.
func TestReserveOf(t *testing.T) {
	const (
		MiB = 1 << 20
		GiB = 1 << 30
	)
	if MinReserve != 68*MiB {
		t.Fatalf("MinReserve = %d MiB, want 68 (4 × (16 MiB memtable + 1 MiB table))", MinReserve/MiB)
	}
	cases := []struct {
		name    string
		reserve Reserve
		total   uint64
		want    uint64
	}{
		{"default on 1 TiB: 256 MiB", Reserve{}, 1024 * GiB, 256 * MiB},
		{"default on 2 GiB: 5 %", Reserve{}, 2 * GiB, 2 * GiB / 100 * 5},
		{"default on 1 GiB: 5 % is below the floor", Reserve{}, GiB, MinReserve},
		{"default on a filesystem smaller than the floor", Reserve{}, 32 * MiB, MinReserve},
		{"a size on 1 TiB", Reserve{Bytes: 8 * MiB}, 1024 * GiB, 8 * MiB},
		{"a size below the floor is kept", Reserve{Bytes: MiB}, GiB, MiB},
		{"a share of 1 GiB", Reserve{Percent: 10}, GiB, GiB / 10},
		{"a share grows with the filesystem", Reserve{Percent: 10}, 4 * GiB, 4 * GiB / 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.reserve.Of(tc.total); got != tc.want {
				t.Errorf("%v.Of(%d) = %d, want %d", tc.reserve, tc.total, got, tc.want)
			}
		})
	}
}

// fakeDisk is a filesystem whose free space a test sets.
type fakeDisk struct{ avail, total atomic.Uint64 }

func (d *fakeDisk) statfs(string) (uint64, uint64, error) { return d.avail.Load(), d.total.Load(), nil }

const (
	testReserve = 4 << 20
	ample       = 8 << 20           // at or above the reserve
	low         = 2 << 20           // below the reserve, above a quarter of it
	exhausted   = testReserve/4 - 1 // below a quarter of the reserve
)

// openOnFakeDisk opens a store with a 4 MiB reserve on a fake disk with ample space.
func openOnFakeDisk(t *testing.T) (*Store, *fakeDisk) {
	t.Helper()
	s, err := Open(t.TempDir(), zap.NewNop(), WithReserve(Reserve{Bytes: testReserve}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	disk := &fakeDisk{}
	disk.total.Store(1 << 30)
	disk.avail.Store(ample)
	s.space.statfs = disk.statfs
	s.space.recent.Store(nil) // Open's reading of the real filesystem
	return s, disk
}

// TestSpaceAdmitsOps is the classification of writes by free space: at or above the reserve
// every op runs; below it only the essential ones (a sign-in's counter, a sealed request's
// replay record, a license revocation: persistence.Essential), and every other op (any op
// added later too, as Essential names the few it admits) is refused with storage_full and
// writes nothing; below a quarter of the reserve no op runs. Service resumes by itself when
// space returns.
func TestSpaceAdmitsOps(t *testing.T) {
	s, disk := openOnFakeDisk(t)
	c := persistence.Community{ID: "c1", TenantID: "t1", Name: "c1", RPIDs: []string{"example.com"},
		Origins: []string{"https://example.com"}, UserVerification: persistence.VerificationPreferred}
	lic, _, err := persistence.NewLicense(persistence.LevelCommunity, "c1", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	revocable := make([]persistence.License, 4) // one per level below
	for i := range revocable {
		revocable[i], _, _ = persistence.NewLicense(persistence.LevelCommunity, "c1", "", 0)
	}
	for _, op := range []persistence.Op{
		persistence.PutCommunity{Community: c, Create: true},
		persistence.PutLicense{License: lic},
		persistence.PutLicense{License: revocable[0]}, persistence.PutLicense{License: revocable[1]},
		persistence.PutLicense{License: revocable[2]}, persistence.PutLicense{License: revocable[3]},
		persistence.AddCredential{Credential: persistence.Credential{ID: []byte("cred-alice"), CommunityID: "c1", Username: "alice", UserHandle: []byte("h-alice")}},
	} {
		if r := s.Apply(ctx, []persistence.Op{op}); r[0].Err != nil {
			t.Fatalf("seed %T: %v", op, r[0].Err)
		}
	}

	// Each op writes something new at every level it runs at (n makes its keys unique).
	other, _, _ := persistence.NewLicense(persistence.LevelCommunity, "c1", "", 0)
	levelIndex := 0
	ops := []struct {
		name      string
		op        func(n int) persistence.Op
		essential bool
	}{
		{"PutTenant", func(n int) persistence.Op {
			return persistence.PutTenant{Tenant: persistence.Tenant{ID: fmt.Sprintf("t-%d", n)}}
		}, false},
		{"PutCommunity", func(n int) persistence.Op {
			c := c
			c.ID = fmt.Sprintf("c-%d", n)
			return persistence.PutCommunity{Community: c, Create: true}
		}, false},
		{"PatchCommunity", func(n int) persistence.Op {
			return persistence.PatchCommunity{ID: "c1", Name: fmt.Sprintf("name %d", n)}
		}, false},
		{"PutLicense", func(n int) persistence.Op {
			l := other
			l.ID, l.KeyHash = fmt.Sprintf("lic-%d", n), persistence.HashLicenseKey(fmt.Sprint(n))
			return persistence.PutLicense{License: l}
		}, false},
		{"RevokeLicense", func(int) persistence.Op { return persistence.RevokeLicense{ID: revocable[levelIndex].ID} }, true},
		{"PutSecretIfAbsent", func(n int) persistence.Op {
			return persistence.PutSecretIfAbsent{Name: fmt.Sprintf("s-%d", n), Value: []byte("v")}
		}, false},
		{"RotateKey", func(n int) persistence.Op {
			return persistence.RotateKey{Name: "signing", New: persistence.KeyRecord{Kind: "ES256", Private: []byte{byte(n)}, Created: time.Now()}}
		}, false},
		{"AddCredential of a new user", func(n int) persistence.Op {
			return persistence.AddCredential{Credential: persistence.Credential{ID: []byte(fmt.Sprintf("new-%d", n)), CommunityID: "c1",
				Username: fmt.Sprintf("u-%d", n), UserHandle: []byte(fmt.Sprintf("h-%d", n))}}
		}, false},
		{"RecordSignIn", func(n int) persistence.Op {
			return persistence.RecordSignIn{ID: []byte("cred-alice"), Counter: uint32(n), At: time.Now()}
		}, true},
		{"RememberRequest", func(n int) persistence.Op {
			return persistence.RememberRequest{Caller: []byte("caller"), UUID: fmt.Sprint(n), Until: time.Now().Add(time.Minute)}
		}, true},
	}
	levels := []struct {
		name    string
		avail   uint64
		admit   func(essential bool) bool
		healthy bool
	}{
		{"at or above the reserve", ample, func(bool) bool { return true }, true},
		{"below the reserve", low, func(essential bool) bool { return essential }, false},
		{"below a quarter of the reserve", exhausted, func(bool) bool { return false }, false},
		{"when space returns", testReserve, func(bool) bool { return true }, true},
	}
	n := 0
	for i, level := range levels {
		levelIndex = i
		disk.avail.Store(level.avail)
		if err := s.CheckSpace(ctx); (err == nil) != level.healthy || (err != nil && messages.ErrorCode(err) != messages.CodeStorageFull) {
			t.Errorf("%s: CheckSpace() = %v, want healthy %v (else storage_full)", level.name, err, level.healthy)
		}
		for _, tc := range ops {
			t.Run(level.name+"/"+tc.name, func(t *testing.T) {
				n++
				before, err := s.Digest()
				if err != nil {
					t.Fatal(err)
				}
				r := s.Apply(ctx, []persistence.Op{tc.op(n)})
				after, _ := s.Digest()
				written := string(before) != string(after)
				if level.admit(tc.essential) {
					if r[0].Err != nil || !written {
						t.Errorf("refused or wrote nothing: %v", r[0].Err)
					}
					return
				}
				if messages.ErrorCode(r[0].Err) != messages.CodeStorageFull || r[0].Value != nil {
					t.Errorf("answered %v, %v; want storage_full", r[0].Value, r[0].Err)
				}
				if written {
					t.Errorf("a refused op changed the store")
				}
			})
		}
	}
}

// TestApplyBelowTheReserveRunsTheEssentialOpsOfABatch: one batch of the writer mixes the
// writes of many ceremonies; below the reserve its essential ops commit and the others are
// refused, each result in its op's place.
func TestApplyBelowTheReserveRunsTheEssentialOpsOfABatch(t *testing.T) {
	s, disk := openOnFakeDisk(t)
	disk.avail.Store(low)
	until := time.Now().Add(time.Minute)
	res := s.Apply(ctx, []persistence.Op{
		persistence.RememberRequest{Caller: []byte("a"), UUID: "1", Until: until},
		persistence.PutSecretIfAbsent{Name: "refused", Value: []byte("x")},
		persistence.RememberRequest{Caller: []byte("a"), UUID: "2", Until: until},
		persistence.RememberRequest{Caller: []byte("a"), UUID: "1", Until: until}, // sees the first one's write
	})
	codes := make([]messages.Code, len(res))
	for i, r := range res {
		codes[i] = ""
		if r.Err != nil {
			codes[i] = messages.ErrorCode(r.Err)
		}
	}
	want := []messages.Code{"", messages.CodeStorageFull, "", messages.CodeRequestReplayed}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("results %v, want %v", codes, want)
	}
	if _, err := s.Secret(ctx, "refused"); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("the refused op was written: %v", err)
	}
}

// TestImportStopsBelowTheReserve: an Import is no essential write. Below the reserve it is
// refused before its first transaction and writes nothing; when space runs out during an
// import, it stops before the next transaction and says how many users it wrote.
func TestImportStopsBelowTheReserve(t *testing.T) {
	s, disk := openOnFakeDisk(t)
	c := persistence.Community{ID: "c1", TenantID: "t1", Name: "c1", RPIDs: []string{"example.com"},
		Origins: []string{"https://example.com"}, UserVerification: persistence.VerificationPreferred}
	if _, err := persistence.ApplyOne(ctx, s, persistence.PutCommunity{Community: c, Create: true}); err != nil {
		t.Fatal(err)
	}
	users := func(prefix string, n int) []persistence.User {
		out := make([]persistence.User, n)
		for i := range out {
			out[i] = persistence.User{CommunityID: "c1", Username: fmt.Sprintf("%s-%d", prefix, i), Handle: []byte(fmt.Sprintf("%s-%d", prefix, i))}
		}
		return out
	}

	disk.avail.Store(low)
	before, _ := s.Digest()
	err := s.Import(ctx, users("a", 10), nil)
	if messages.ErrorCode(err) != messages.CodeStorageFull || !strings.Contains(err.Error(), "wrote nothing") {
		t.Fatalf("Import below the reserve: %v, want storage_full saying it wrote nothing", err)
	}
	if after, _ := s.Digest(); string(before) != string(after) {
		t.Errorf("a refused Import changed the store")
	}

	// 3,000 users take two transactions (5,000 entries at most each); space runs out after
	// the first.
	disk.avail.Store(ample)
	calls := 0
	s.space.statfs = func(string) (uint64, uint64, error) {
		calls++
		if calls > 1 {
			return low, 1 << 30, nil
		}
		return ample, 1 << 30, nil
	}
	err = s.Import(ctx, users("b", 3000), nil)
	if messages.ErrorCode(err) != messages.CodeStorageFull || !strings.Contains(err.Error(), "wrote its first 2500 users") {
		t.Fatalf("Import that runs out of space: %v, want storage_full saying it wrote its first 2500 users", err)
	}
	if _, err := s.User(ctx, "c1", "b-2499"); err != nil {
		t.Errorf("a user of the first transaction is missing: %v", err)
	}
	if _, err := s.User(ctx, "c1", "b-2500"); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("a user of the refused transaction was written: %v", err)
	}
}

// TestSpaceWhenStatfsFails: a filesystem whose free space cannot be read limits nothing (the
// store's own errors say more than a guess would).
func TestSpaceWhenStatfsFails(t *testing.T) {
	s, _ := openOnFakeDisk(t)
	s.space.statfs = func(string) (uint64, uint64, error) { return 0, 0, errors.New("statfs failed") }
	if _, err := persistence.ApplyOne(ctx, s, persistence.PutSecretIfAbsent{Name: "k", Value: []byte("v")}); err != nil {
		t.Errorf("a write when statfs fails: %v", err)
	}
	if err := s.CheckSpace(ctx); err != nil {
		t.Errorf("CheckSpace when statfs fails: %v", err)
	}
}

// TestStatfsReadsTheFilesystem checks the real statfs on the test's temporary directory.
func TestStatfsReadsTheFilesystem(t *testing.T) {
	avail, total, err := statfs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if total == 0 || avail > total {
		t.Errorf("statfs: %d available of %d", avail, total)
	}
}

// TestSpaceReadingReusedOnlyFarAboveTheReserve: a reading that found 64 MiB or more above the
// reserve is reused for 50 ms; one closer to the reserve, or older, is not.
func TestSpaceReadingReusedOnlyFarAboveTheReserve(t *testing.T) {
	cases := []struct {
		name      string
		avail     uint64
		wait      time.Duration
		wantCalls int
	}{
		{"far above the reserve, read again at once: reused", testReserve + spaceHeadroom, 0, 1},
		{"far above the reserve, read again later: read", testReserve + spaceHeadroom, 2 * spaceFresh, 2},
		{"just under the headroom: read each time", testReserve + spaceHeadroom - 1, 0, 2},
		{"below the reserve: read each time", low, 0, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			g := newSpaceGuard(t.TempDir(), Reserve{Bytes: testReserve}, zap.NewNop())
			g.statfs = func(string) (uint64, uint64, error) { calls++; return tc.avail, 1 << 40, nil }
			first := g.read()
			time.Sleep(tc.wait)
			if second := g.read(); second.level != first.level || second.avail != first.avail {
				t.Errorf("second reading %+v, first %+v", second, first)
			}
			if calls != tc.wantCalls {
				t.Errorf("statfs called %d times, want %d", calls, tc.wantCalls)
			}
		})
	}
}

// BenchmarkSpaceRead is what each batch pays for its free-space check: one statfs of the
// store's directory and the level's arithmetic (compare a synced commit, BenchmarkApply*), and,
// far above the reserve, a reading reused for 50 ms.
func BenchmarkSpaceRead(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		b.Run(fmt.Sprintf("reused=%v", reuse), func(b *testing.B) {
			g := newSpaceGuard(b.TempDir(), Reserve{}, zap.NewNop())
			for b.Loop() {
				if !reuse {
					g.recent.Store(nil)
				}
				if r := g.read(); r.err != nil {
					b.Fatal(r.err)
				}
			}
		})
	}
}

// TestSpaceAdmitsPasskeyOps: below the reserve a passkey can still be removed (a stolen one must
// stop signing in), but not linked or unlinked; below a quarter of it nothing is written.
func TestSpaceAdmitsPasskeyOps(t *testing.T) {
	s, disk := openOnFakeDisk(t)
	c := persistence.Community{ID: "c1", TenantID: "t1", Name: "c1", RPIDs: []string{"example.com"},
		Origins: []string{"https://example.com"}, UserVerification: persistence.VerificationPreferred}
	hash := func(id string) []byte { return persistence.FidoKeyHash([]byte(id)) }
	for _, op := range []persistence.Op{
		persistence.PutCommunity{Community: c, Create: true},
		persistence.AddCredential{Credential: persistence.Credential{ID: []byte("k1"), CommunityID: "c1", Username: "alice", UserHandle: []byte("h")}},
		persistence.AddCredential{Credential: persistence.Credential{ID: []byte("k2"), CommunityID: "c1", Username: "alice", UserHandle: []byte("h")}},
		persistence.LinkCredential{CommunityID: "c1", Username: "alice", FidoKeyHash: hash("k1"), DID: "did:example:a"},
	} {
		if r := s.Apply(ctx, []persistence.Op{op}); r[0].Err != nil {
			t.Fatalf("seed %T: %v", op, r[0].Err)
		}
	}
	for _, tc := range []struct {
		name  string
		avail uint64
		op    persistence.Op
		code  messages.Code
	}{
		{"link below the reserve", low, persistence.LinkCredential{CommunityID: "c1", Username: "alice", FidoKeyHash: hash("k2"), DID: "did:example:a"}, messages.CodeStorageFull},
		{"unlink below the reserve", low, persistence.UnlinkCredential{CommunityID: "c1", Username: "alice", FidoKeyHash: hash("k1"), DID: "did:example:a"}, messages.CodeStorageFull},
		{"remove below a quarter of the reserve", exhausted, persistence.RemoveCredentials{CommunityID: "c1", FidoKeyHash: hash("k2")}, messages.CodeStorageFull},
		{"remove below the reserve", low, persistence.RemoveCredentials{CommunityID: "c1", FidoKeyHash: hash("k2")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk.avail.Store(tc.avail)
			if code := messages.ErrorCode(s.Apply(ctx, []persistence.Op{tc.op})[0].Err); tc.code != "" && code != tc.code {
				t.Fatalf("got %s, want %s", code, tc.code)
			} else if err := s.Apply(ctx, []persistence.Op{tc.op})[0].Err; tc.code == "" && messages.ErrorCode(err) != messages.CodeNotFound {
				t.Fatalf("the second removal got %v, want not_found (the first removed it)", err)
			}
		})
	}
}

// TestSpaceRefusesVendorWrites: a vendor record's put or patch is no essential write; below the
// reserve it is refused with storage_full and leaves the record as it was.
func TestSpaceRefusesVendorWrites(t *testing.T) {
	s, disk := openOnFakeDisk(t)
	c := persistence.Community{ID: "c1", TenantID: "t1", Name: "c1", RPIDs: []string{"example.com"},
		Origins: []string{"https://example.com"}, UserVerification: persistence.VerificationPreferred}
	aaguid := "cb69481e-8ff7-4039-93ec-0a2729a154a8"
	record := persistence.VendorRecord{CommunityID: "c1", AAGUID: aaguid, Metadata: "{}", Name: "m", UpdatedBy: "x"}
	for _, op := range []persistence.Op{persistence.PutCommunity{Community: c, Create: true}, persistence.PutVendorMetadata{Record: record}} {
		if r := s.Apply(ctx, []persistence.Op{op}); r[0].Err != nil {
			t.Fatalf("seed %T: %v", op, r[0].Err)
		}
	}
	before, _ := s.VendorRecord(ctx, "c1", aaguid)
	on := true
	disk.avail.Store(low)
	for _, op := range []persistence.Op{
		persistence.PutVendorMetadata{Record: persistence.VendorRecord{CommunityID: "c1", AAGUID: "6028b017-b1d4-4c02-b4b3-afcdafc96bb2", Metadata: "{}", Name: "m", UpdatedBy: "x"}},
		persistence.PatchVendorMetadata{CommunityID: "c1", AAGUID: aaguid, Disabled: &on, UpdatedBy: "y"},
	} {
		if code := messages.ErrorCode(s.Apply(ctx, []persistence.Op{op})[0].Err); code != messages.CodeStorageFull {
			t.Fatalf("%T below the reserve: got %s, want storage_full", op, code)
		}
	}
	if all, _ := s.AllVendorRecords(ctx, nil); len(all) != 1 || !reflect.DeepEqual(all[0], before) {
		t.Fatalf("records after refused writes = %+v, want only %+v", all, before)
	}
}

// TestSpaceRefusesMDSImports: an MDS import is no essential write; below the reserve it is
// refused and the stored BLOB stays as it was.
func TestSpaceRefusesMDSImports(t *testing.T) {
	s, disk := openOnFakeDisk(t)
	disk.avail.Store(low)
	if _, err := s.ReplaceMDS(ctx, persistence.MDSBlob{Number: 1}, nil, false); messages.ErrorCode(err) != messages.CodeStorageFull {
		t.Fatalf("an import below the reserve: %v, want storage_full", err)
	}
	if _, err := s.CurrentMDSBlob(ctx); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("a refused import left a BLOB: %v", err)
	}
	disk.avail.Store(ample)
	if _, err := s.ReplaceMDS(ctx, persistence.MDSBlob{Number: 1}, nil, false); err != nil {
		t.Fatalf("an import with space: %v", err)
	}
}
