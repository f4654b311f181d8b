package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// mdsSet is a synthetic set of n MDS entries, each described as desc: entries 0 mod 3 are U2F
// (two key identifiers, no AAGUID), 1 mod 3 FIDO2 (an AAGUID), 2 mod 3 UAF (an AAID); pad bytes
// of padding make each entry's JSON that much larger. The JSON is written as a BLOB may carry
// it, with spaces that a store may drop: it keeps the JSON value, not its text.
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
		ids, _ := json.Marshal(e.KeyIdentifiers)
		e.Entry = json.RawMessage(fmt.Sprintf(`{"aaguid": %q, "aaid": %q, "attestationCertificateKeyIdentifiers": %s, "metadataStatement": {"description": %q}, "pad": %q}`,
			e.AAGUID, e.AAID, ids, desc, strings.Repeat("x", pad)))
		out[i] = e
	}
	return out
}

// sourced is entries as reads return them, from BLOB number.
func sourced(number int, entries ...persistence.MDSEntry) []persistence.MDSEntry {
	out := make([]persistence.MDSEntry, len(entries))
	for i, e := range entries {
		e.Source = fmt.Sprintf("mds blob %d", number)
		out[i] = e
	}
	return out
}

// blob is the BLOB number as an import gives it.
func blob(number int) persistence.MDSBlob {
	return persistence.MDSBlob{Number: number, NextUpdate: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), LegalHeader: "Retrieval and use of this BLOB indicates acceptance."}
}

// mustReplaceMDS imports entries as BLOB number and fails the test when refused.
func mustReplaceMDS(t *testing.T, s persistence.Store, number int, entries []persistence.MDSEntry, force bool) persistence.MDSBlob {
	t.Helper()
	b, err := s.ReplaceMDS(t.Context(), blob(number), entries, force)
	if err != nil {
		t.Fatalf("ReplaceMDS(number %d, %d entries): %s", number, len(entries), describe(err))
	}
	return b
}

// wantMDS fails the test unless the store holds BLOB want with entries, in every read.
func wantMDS(t *testing.T, s persistence.Store, want persistence.MDSBlob, entries []persistence.MDSEntry) {
	t.Helper()
	b, err := s.CurrentMDSBlob(t.Context())
	if err != nil {
		t.Fatalf("CurrentMDSBlob: %s", describe(err))
	}
	wantSame(t, "CurrentMDSBlob", b, want)
	b, all, err := s.MDSEntries(t.Context())
	if err != nil {
		t.Fatalf("MDSEntries: %s", describe(err))
	}
	wantSame(t, "MDSEntries' BLOB", b, want)
	wantSame(t, "MDSEntries", all, sourced(want.Number, entries...))
	if g := s.MDSGeneration(); g != want.Generation {
		t.Fatalf("MDSGeneration = %d, want the BLOB's %d", g, want.Generation)
	}
	for _, e := range entries {
		if e.AAGUID != "" {
			got, err := s.MDSEntryByAAGUID(t.Context(), e.AAGUID)
			if err != nil {
				t.Fatalf("MDSEntryByAAGUID(%s): %s", e.AAGUID, describe(err))
			}
			wantSame(t, "MDSEntryByAAGUID("+e.AAGUID+")", got, sourced(want.Number, e)[0])
		}
	}
}

func testMDS(t *testing.T, open Opener) {
	t.Run("before the first import every read is not found and the generation 0", func(t *testing.T) {
		s := open(t)
		_, err := s.CurrentMDSBlob(t.Context())
		wantNotFound(t, "CurrentMDSBlob", err)
		_, _, err = s.MDSEntries(t.Context())
		wantNotFound(t, "MDSEntries", err)
		_, err = s.MDSEntryByAAGUID(t.Context(), "00000001-0000-4000-8000-000000000001")
		wantNotFound(t, "MDSEntryByAAGUID", err)
		_, err = s.MDSEntryByKeyIdentifier(t.Context(), "00")
		wantNotFound(t, "MDSEntryByKeyIdentifier", err)
		if g := s.MDSGeneration(); g != 0 {
			t.Fatalf("MDSGeneration = %d, want 0", g)
		}
	})

	t.Run("an import stores the BLOB with its count, a new generation and the time of the switch", func(t *testing.T) {
		s := open(t)
		set := mdsSet("first", 6, 10)
		given := blob(9)
		given.Entries, given.Generation, given.Imported = 99, 99, t0 // the store's to set
		b, err := s.ReplaceMDS(t.Context(), given, set, false)
		if err != nil {
			t.Fatal(describe(err))
		}
		if b.Generation == 0 || b.Generation == 99 {
			t.Fatalf("Generation = %d, want a new one (not 0)", b.Generation)
		}
		wantWriteTime(t, "Imported", b.Imported)
		want := blob(9)
		want.Entries, want.Generation, want.Imported = 6, b.Generation, b.Imported
		wantSame(t, "result", b, want)
		wantMDS(t, s, want, set)
	})

	set := mdsSet("first", 6, 10)
	entry := func(i int) any { return sourced(9, set[i])[0] }
	byAAGUID := func(aaguid string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) { return s.MDSEntryByAAGUID(t.Context(), aaguid) }
	}
	byKeyID := func(id string) func(t *testing.T, s persistence.Store) (any, error) {
		return func(t *testing.T, s persistence.Store) (any, error) {
			return s.MDSEntryByKeyIdentifier(t.Context(), id)
		}
	}
	t.Run("look-ups", func(t *testing.T) {
		runReads(t, open, func(t *testing.T, s persistence.Store) { mustReplaceMDS(t, s, 9, set, false) }, []readCase{
			{name: "FIDO2 by AAGUID", read: byAAGUID(set[1].AAGUID), want: entry(1)},
			{name: "FIDO2 by AAGUID in upper case", read: byAAGUID(strings.ToUpper(set[4].AAGUID)), want: entry(4)},
			{name: "U2F by its first key identifier", read: byKeyID(set[3].KeyIdentifiers[0]), want: entry(3)},
			{name: "U2F by its second key identifier in upper case", read: byKeyID(strings.ToUpper(set[0].KeyIdentifiers[1])), want: entry(0)},
			{name: "an unknown AAGUID is not found", read: byAAGUID("ffffffff-0000-4000-8000-000000000000"), wantErr: persistence.ErrNotFound},
			{name: "what is no AAGUID is not found", read: byAAGUID("../mds/blob"), wantErr: persistence.ErrNotFound},
			{name: "the zero AAGUID of U2F is not found", read: byAAGUID("00000000-0000-0000-0000-000000000000"), wantErr: persistence.ErrNotFound},
			{name: "an unknown key identifier is not found", read: byKeyID("abcdef"), wantErr: persistence.ErrNotFound},
			{name: "a prefix of a key identifier is not found", read: byKeyID(set[3].KeyIdentifiers[0][:20]), wantErr: persistence.ErrNotFound},
			{name: "a UAF AAID is no key identifier", read: byKeyID(set[2].AAID), wantErr: persistence.ErrNotFound},
			{name: "an AAGUID is no key identifier", read: byKeyID(set[1].AAGUID), wantErr: persistence.ErrNotFound},
			{name: "no key identifier is not found", read: byKeyID(""), wantErr: persistence.ErrNotFound},
		})
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		edited := func(edit func(e *persistence.MDSEntry)) []persistence.MDSEntry {
			entries := mdsSet("new", 6, 10)
			edit(&entries[1])
			return entries
		}
		for _, tc := range []struct {
			name    string
			number  int
			entries []persistence.MDSEntry
			code    messages.Code
		}{
			{"the same number", 9, mdsSet("new", 6, 10), messages.CodeConflict},
			{"a lower number", 8, mdsSet("new", 6, 10), messages.CodeConflict},
			{"number 0", 0, mdsSet("new", 6, 10), messages.CodeInvalidRequest},
			{"an AAGUID in upper case", 10, edited(func(e *persistence.MDSEntry) { e.AAGUID = "ABCDEF01-0000-4000-8000-000000000001" }), messages.CodeInvalidRequest},
			{"the zero AAGUID", 10, edited(func(e *persistence.MDSEntry) { e.AAGUID = "00000000-0000-0000-0000-000000000000" }), messages.CodeInvalidRequest},
			{"an AAGUID without hyphens", 10, edited(func(e *persistence.MDSEntry) { e.AAGUID = strings.Repeat("a", 36) }), messages.CodeInvalidRequest},
			{"a key identifier in upper case", 10, edited(func(e *persistence.MDSEntry) { e.KeyIdentifiers = []string{"ABCD"} }), messages.CodeInvalidRequest},
			{"a key identifier with a NUL", 10, edited(func(e *persistence.MDSEntry) { e.KeyIdentifiers = []string{"ab\x00cd"} }), messages.CodeInvalidRequest},
			{"an empty key identifier", 10, edited(func(e *persistence.MDSEntry) { e.KeyIdentifiers = []string{""} }), messages.CodeInvalidRequest},
			{"no identifier at all", 10, edited(func(e *persistence.MDSEntry) { e.AAGUID = "" }), messages.CodeInvalidRequest},
			{"an AAID with a NUL", 10, edited(func(e *persistence.MDSEntry) { e.AAID = "FFFF\x00" }), messages.CodeInvalidRequest},
			{"entry JSON that is no object", 10, edited(func(e *persistence.MDSEntry) { e.Entry = json.RawMessage(`[1]`) }), messages.CodeInvalidRequest},
			{"no entry JSON", 10, edited(func(e *persistence.MDSEntry) { e.Entry = nil }), messages.CodeInvalidRequest},
			{"two entries of one AAGUID", 10, edited(func(e *persistence.MDSEntry) { e.AAGUID = mdsSet("", 6, 0)[4].AAGUID }), messages.CodeInvalidRequest},
			{"two entries of one key identifier", 10, edited(func(e *persistence.MDSEntry) { e.KeyIdentifiers = mdsSet("", 6, 0)[0].KeyIdentifiers[1:] }),
				messages.CodeInvalidRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t)
				stored := mustReplaceMDS(t, s, 9, set, false)
				_, err := s.ReplaceMDS(t.Context(), blob(tc.number), tc.entries, false)
				wantCode(t, "ReplaceMDS", err, tc.code)
				wantMDS(t, s, stored, set)
			})
		}
	})

	t.Run("a higher number replaces the entries: the old ones are gone", func(t *testing.T) {
		s := open(t)
		first := mustReplaceMDS(t, s, 9, set, false)
		next := mdsSet("second", 3, 10)
		b := mustReplaceMDS(t, s, 10, next, false)
		if b.Generation <= first.Generation {
			t.Fatalf("Generation %d after %d, want a higher one", b.Generation, first.Generation)
		}
		wantMDS(t, s, b, next)
		_, err := s.MDSEntryByAAGUID(t.Context(), set[4].AAGUID)
		wantNotFound(t, "MDSEntryByAAGUID of an entry of the replaced BLOB", err)
		_, err = s.MDSEntryByKeyIdentifier(t.Context(), set[3].KeyIdentifiers[0])
		wantNotFound(t, "MDSEntryByKeyIdentifier of an entry of the replaced BLOB", err)
	})

	t.Run("a forced import replaces the entries with those of a lower number", func(t *testing.T) {
		s := open(t)
		first := mustReplaceMDS(t, s, 9, set, false)
		again := mustReplaceMDS(t, s, 9, set[:2], true)
		lower := mustReplaceMDS(t, s, 8, mdsSet("eight", 3, 10), true)
		if again.Generation <= first.Generation || lower.Generation <= again.Generation || lower.Number != 8 {
			t.Fatalf("generations %d, %d, %d (numbers %d, %d, %d), want each import higher", first.Generation, again.Generation, lower.Generation,
				first.Number, again.Number, lower.Number)
		}
		wantMDS(t, s, lower, mdsSet("eight", 3, 10))
		_, err := s.MDSEntryByAAGUID(t.Context(), set[4].AAGUID)
		wantNotFound(t, "MDSEntryByAAGUID of an entry of the replaced BLOB", err)
	})

	t.Run("a BLOB without entries empties the set", func(t *testing.T) {
		s := open(t)
		mustReplaceMDS(t, s, 9, set, false)
		b := mustReplaceMDS(t, s, 10, nil, false)
		if b.Entries != 0 {
			t.Fatalf("Entries = %d, want 0", b.Entries)
		}
		wantMDS(t, s, b, nil)
		_, err := s.MDSEntryByAAGUID(t.Context(), set[1].AAGUID)
		wantNotFound(t, "MDSEntryByAAGUID", err)
	})

	t.Run("each read sees the entries of one BLOB while imports replace them", func(t *testing.T) {
		testMDSAtomic(t, open(t))
	})
}

// testMDSAtomic: imports of two large sets (several megabytes: more than one transaction of an
// embedded store holds) alternate while readers list and look up entries; every listing holds
// exactly the entries of one BLOB, and every look-up an entry of the BLOB it names.
func testMDSAtomic(t *testing.T, s persistence.Store) {
	sets := map[int][]persistence.MDSEntry{1: mdsSet("blob 1", 1200, 2000), 2: mdsSet("blob 2", 2400, 2000)}
	mustReplaceMDS(t, s, 1, sets[1], false)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var listings, lookups atomic.Int64
	for r := range 3 {
		wg.Go(func() {
			for !stop.Load() {
				if r == 0 {
					b, entries, err := s.MDSEntries(t.Context())
					if err != nil {
						t.Error(describe(err))
						return
					}
					want := fmt.Sprintf("blob %d", b.Number)
					if len(entries) != b.Entries || len(entries) != len(sets[b.Number]) {
						t.Errorf("listing of BLOB %d holds %d entries, want %d", b.Number, len(entries), b.Entries)
						return
					}
					for _, e := range entries {
						if e.Description != want || e.Source != "mds "+want {
							t.Errorf("listing of BLOB %d holds an entry of %q (%s)", b.Number, e.Description, e.Source)
							return
						}
					}
					listings.Add(1)
					continue
				}
				// Entry 4 is in both sets: it must always come with the BLOB it names.
				e, err := s.MDSEntryByAAGUID(t.Context(), sets[1][4].AAGUID)
				if err != nil || "mds "+e.Description != e.Source {
					t.Errorf("look-up: an entry of %q from %q, %s", e.Description, e.Source, describe(err))
					return
				}
				lookups.Add(1)
			}
		})
	}
	prev := s.MDSGeneration()
	for i := range 4 {
		number := 2 - i%2 // 2, 1, 2, 1: every other one goes back, so forced
		b := mustReplaceMDS(t, s, number, sets[number], true)
		if b.Generation <= prev {
			t.Errorf("import %d: generation %d after %d", i, b.Generation, prev)
		}
		prev = b.Generation
	}
	// Let the readers read at least once each before they stop (unless they failed).
	for deadline := time.Now().Add(time.Minute); (listings.Load() == 0 || lookups.Load() == 0) && !t.Failed() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if listings.Load() == 0 || lookups.Load() == 0 {
		t.Fatalf("the readers read %d listings and %d look-ups", listings.Load(), lookups.Load())
	}
}
