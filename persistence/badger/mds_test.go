package badger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// mdsSet is a synthetic set of n MDS entries, each described as desc: entries 0 mod 3 are U2F
// (two key identifiers, no AAGUID), 1 mod 3 FIDO2 (an AAGUID), 2 mod 3 UAF (an AAID); pad bytes
// of padding make each entry's JSON that much larger.
func mdsSet(desc string, n, pad int) []persistence.MDSEntry {
	out := make([]persistence.MDSEntry, n)
	for i := range out {
		e := persistence.MDSEntry{Description: desc, Status: "FIDO_CERTIFIED_L1", StatusDate: time.Date(2021, 9, 1, 0, 0, 0, 0, time.UTC)}
		switch i % 3 {
		case 0:
			e.KeyIdentifiers = []string{fmt.Sprintf("%040x", i), fmt.Sprintf("ff%038x", i)}
		case 1:
			e.AAGUID = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		case 2:
			e.AAID = fmt.Sprintf("%04X#%04X", i, i)
		}
		e.Entry, _ = json.Marshal(map[string]any{"aaguid": e.AAGUID, "aaid": e.AAID, "attestationCertificateKeyIdentifiers": e.KeyIdentifiers,
			"metadataStatement": map[string]string{"description": desc}, "pad": strings.Repeat("x", pad)})
		out[i] = e
	}
	return out
}

// mustReplaceMDS imports entries as BLOB number and fails the test when refused.
func mustReplaceMDS(t testing.TB, s *badger.Store, number int, entries []persistence.MDSEntry, force bool) persistence.MDSBlob {
	t.Helper()
	b, err := s.ReplaceMDS(ctx, persistence.MDSBlob{Number: number, NextUpdate: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, entries, force)
	if err != nil {
		t.Fatalf("ReplaceMDS(number %d, %d entries): %v", number, len(entries), err)
	}
	return b
}

// TestMDSReadsBeforeAnyImport: before the first import every read says ErrNotFound and the
// generation is 0.
func TestMDSReadsBeforeAnyImport(t *testing.T) {
	s := mustOpen(t)
	var r persistence.MDS = s
	if _, err := r.CurrentMDSBlob(ctx); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("CurrentMDSBlob: %v", err)
	}
	if _, _, err := r.MDSEntries(ctx); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("MDSEntries: %v", err)
	}
	if _, err := r.MDSEntryByAAGUID(ctx, "00000001-0000-4000-8000-000000000001"); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("MDSEntryByAAGUID: %v", err)
	}
	if _, err := r.MDSEntryByKeyIdentifier(ctx, "00"); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("MDSEntryByKeyIdentifier: %v", err)
	}
	if g := r.MDSGeneration(); g != 0 {
		t.Errorf("MDSGeneration = %d", g)
	}
}

// TestMDSLookUps: after an import, FIDO2 entries are found by AAGUID and U2F entries by each of
// their key identifiers, in any case; UAF entries only in the listing; each read says which
// BLOB the entry came from; the generation survives a restart.
func TestMDSLookUps(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := mustOpenAt(t, dir)
	set := mdsSet("first", 6, 10)
	b := mustReplaceMDS(t, s, 9, set, false)
	if b.Generation != 1 || b.Entries != 6 || b.Number != 9 || b.Imported.IsZero() || s.MDSGeneration() != 1 {
		t.Fatalf("stored %+v, generation %d", b, s.MDSGeneration())
	}
	for _, tc := range []struct {
		name string
		read func() (persistence.MDSEntry, error)
		want int // index in set, -1 for not found
	}{
		{"FIDO2 by AAGUID", func() (persistence.MDSEntry, error) { return s.MDSEntryByAAGUID(ctx, set[1].AAGUID) }, 1},
		{"FIDO2 by AAGUID in upper case", func() (persistence.MDSEntry, error) { return s.MDSEntryByAAGUID(ctx, strings.ToUpper(set[4].AAGUID)) }, 4},
		{"U2F by its first key identifier", func() (persistence.MDSEntry, error) { return s.MDSEntryByKeyIdentifier(ctx, set[3].KeyIdentifiers[0]) }, 3},
		{"U2F by its second key identifier in upper case", func() (persistence.MDSEntry, error) {
			return s.MDSEntryByKeyIdentifier(ctx, strings.ToUpper(set[0].KeyIdentifiers[1]))
		}, 0},
		{"an unknown AAGUID", func() (persistence.MDSEntry, error) {
			return s.MDSEntryByAAGUID(ctx, "ffffffff-0000-4000-8000-000000000000")
		}, -1},
		{"not an AAGUID", func() (persistence.MDSEntry, error) { return s.MDSEntryByAAGUID(ctx, "../mds/blob") }, -1},
		{"the zero AAGUID of U2F", func() (persistence.MDSEntry, error) {
			return s.MDSEntryByAAGUID(ctx, "00000000-0000-0000-0000-000000000000")
		}, -1},
		{"an unknown key identifier", func() (persistence.MDSEntry, error) { return s.MDSEntryByKeyIdentifier(ctx, "abcdef") }, -1},
		{"a UAF AAID is no key identifier", func() (persistence.MDSEntry, error) { return s.MDSEntryByKeyIdentifier(ctx, set[2].AAID) }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.read()
			if tc.want < 0 {
				if !errors.Is(err, persistence.ErrNotFound) {
					t.Fatalf("got %+v, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := set[tc.want]
			want.Source = "mds blob 9"
			if !mdsEqual(got, want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
	blob, all, err := s.MDSEntries(ctx)
	if err != nil || blob != b || len(all) != len(set) {
		t.Fatalf("MDSEntries: %+v, %d entries, %v; want %+v and %d", blob, len(all), err, b, len(set))
	}
	for i := range all {
		want := set[i]
		want.Source = "mds blob 9"
		if !mdsEqual(all[i], want) {
			t.Errorf("entry %d: %+v, want %+v", i, all[i], want)
		}
	}
	closeStore()
	s, _ = mustOpenAt(t, dir)
	if s.MDSGeneration() != 1 {
		t.Fatalf("after a restart MDSGeneration = %d, want 1", s.MDSGeneration())
	}
}

func mdsEqual(a, b persistence.MDSEntry) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb) && a.Source == b.Source
}

// TestReplaceMDSRefusals: a BLOB whose number is not above the stored one is 409 unless
// forced; entries that would break the key layout or the look-ups are 400; every refusal
// leaves the store as it was, key for key.
func TestReplaceMDSRefusals(t *testing.T) {
	s := mustOpen(t)
	mustReplaceMDS(t, s, 9, mdsSet("nine", 6, 10), false)
	set := func(edit func(e *persistence.MDSEntry)) []persistence.MDSEntry {
		entries := mdsSet("new", 6, 10)
		edit(&entries[1])
		return entries
	}
	for _, tc := range []struct {
		name    string
		number  int
		entries []persistence.MDSEntry
		code    messages.Code
		want    string
	}{
		{"the same number", 9, mdsSet("new", 6, 10), messages.CodeConflict, "BLOB number 9 is not above the stored BLOB number 9"},
		{"a lower number", 8, mdsSet("new", 6, 10), messages.CodeConflict, "BLOB number 8 is not above the stored BLOB number 9"},
		{"number 0", 0, mdsSet("new", 6, 10), messages.CodeInvalidRequest, "number is 1 or more"},
		{"an AAGUID in upper case", 10, set(func(e *persistence.MDSEntry) { e.AAGUID = "ABCDEF01-0000-4000-8000-000000000001" }), messages.CodeInvalidRequest, "entry 1: AAGUID"},
		{"the zero AAGUID", 10, set(func(e *persistence.MDSEntry) { e.AAGUID = "00000000-0000-0000-0000-000000000000" }), messages.CodeInvalidRequest, "entry 1: AAGUID"},
		{"an AAGUID without hyphens", 10, set(func(e *persistence.MDSEntry) { e.AAGUID = strings.Repeat("a", 36) }), messages.CodeInvalidRequest, "entry 1: AAGUID"},
		{"a key identifier in upper case", 10, set(func(e *persistence.MDSEntry) { e.KeyIdentifiers = []string{"ABCD"} }), messages.CodeInvalidRequest, "entry 1: key identifier"},
		{"a key identifier with a NUL", 10, set(func(e *persistence.MDSEntry) { e.KeyIdentifiers = []string{"ab\x00cd"} }), messages.CodeInvalidRequest, "entry 1: key identifier"},
		{"an empty key identifier", 10, set(func(e *persistence.MDSEntry) { e.KeyIdentifiers = []string{""} }), messages.CodeInvalidRequest, "entry 1: key identifier"},
		{"no identifier at all", 10, set(func(e *persistence.MDSEntry) { e.AAGUID = "" }), messages.CodeInvalidRequest, "needs an AAGUID"},
		{"an AAID with a NUL", 10, set(func(e *persistence.MDSEntry) { e.AAID = "FFFF\x00" }), messages.CodeInvalidRequest, "entry 1: AAID"},
		{"entry JSON not an object", 10, set(func(e *persistence.MDSEntry) { e.Entry = json.RawMessage(`[1]`) }), messages.CodeInvalidRequest, "not an object"},
		{"entry JSON empty", 10, set(func(e *persistence.MDSEntry) { e.Entry = nil }), messages.CodeInvalidRequest, "not an object"},
		{"two entries of one AAGUID", 10, set(func(e *persistence.MDSEntry) { e.AAGUID = mdsSet("", 6, 0)[4].AAGUID }), messages.CodeInvalidRequest, "entry 4: "},
		{"two entries of one key identifier", 10, set(func(e *persistence.MDSEntry) { e.KeyIdentifiers = mdsSet("", 6, 0)[0].KeyIdentifiers[1:] }), messages.CodeInvalidRequest, "is in an earlier entry too"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.Digest()
			_, err := s.ReplaceMDS(ctx, persistence.MDSBlob{Number: tc.number, NextUpdate: time.Now()}, tc.entries, false)
			var e *messages.Error
			if !errors.As(err, &e) || e.Code != tc.code || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("error %v, want %s saying %q", err, tc.code, tc.want)
			}
			if after, _ := s.Digest(); !bytes.Equal(before, after) {
				t.Fatal("a refused import changed the store")
			}
			if s.MDSGeneration() != 1 {
				t.Fatalf("generation %d after a refusal", s.MDSGeneration())
			}
		})
	}
	b := mustReplaceMDS(t, s, 8, mdsSet("eight", 3, 10), true)
	if b.Generation != 2 || b.Number != 8 {
		t.Fatalf("forced import stored %+v", b)
	}
	if _, err := s.MDSEntryByAAGUID(ctx, mdsSet("", 6, 0)[4].AAGUID); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("an entry of the replaced set is still found: %v", err)
	}
}

// TestReplaceMDSIsAtomic: imports of two large sets (several megabytes, beyond what one Badger
// transaction holds) alternate while readers list and look up entries: every listing holds
// exactly the entries of one BLOB, and every look-up an entry of the BLOB it names.
func TestReplaceMDSIsAtomic(t *testing.T) {
	s := mustOpen(t)
	sets := map[int][]persistence.MDSEntry{1: mdsSet("blob 1", 1200, 2000), 2: mdsSet("blob 2", 2400, 2000)}
	mustReplaceMDS(t, s, 1, sets[1], false)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var listings, lookups atomic.Int64
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if r == 0 {
					b, entries, err := s.MDSEntries(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					want := fmt.Sprintf("blob %d", b.Number)
					if len(entries) != b.Entries || len(entries) != len(sets[b.Number]) {
						t.Errorf("listing of BLOB %d holds %d entries, want %d", b.Number, len(entries), b.Entries)
						return
					}
					for _, e := range entries {
						if e.Description != want || e.Source != "mds blob "+want[5:] {
							t.Errorf("listing of BLOB %d holds an entry of %q (%s)", b.Number, e.Description, e.Source)
							return
						}
					}
					listings.Add(1)
					continue
				}
				// Entry 4 is in both sets: it must always come with the BLOB it names.
				e, err := s.MDSEntryByAAGUID(ctx, sets[1][4].AAGUID)
				if err != nil || "mds "+e.Description != e.Source {
					t.Errorf("look-up: an entry of %q from %q, %v", e.Description, e.Source, err)
					return
				}
				lookups.Add(1)
			}
		}()
	}
	for i := range 4 {
		number := 2 - i%2 // 2, 1, 2, 1: every other one goes back, so forced
		b := mustReplaceMDS(t, s, number, sets[number], true)
		if b.Generation != uint64(i+2) {
			t.Fatalf("import %d: generation %d", i, b.Generation)
		}
	}
	stop.Store(true)
	wg.Wait()
	if listings.Load() == 0 || lookups.Load() == 0 {
		t.Fatalf("the readers read %d listings and %d look-ups", listings.Load(), lookups.Load())
	}
	t.Logf("%d listings and %d look-ups during 4 imports", listings.Load(), lookups.Load())
}
