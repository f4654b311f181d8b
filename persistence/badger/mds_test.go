package badger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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

// TestMDSGenerationSurvivesARestart: the generation, which readers compare with one atomic
// load, is read back from the store when it opens.
func TestMDSGenerationSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	s, closeStore := mustOpenAt(t, dir)
	b := mustReplaceMDS(t, s, 9, mdsSet("first", 6, 10), false)
	if b.Generation != 1 || s.MDSGeneration() != 1 {
		t.Fatalf("stored %+v, generation %d; want generation 1", b, s.MDSGeneration())
	}
	closeStore()
	s, _ = mustOpenAt(t, dir)
	if s.MDSGeneration() != 1 {
		t.Fatalf("after a restart MDSGeneration = %d, want 1", s.MDSGeneration())
	}
	if got, err := s.CurrentMDSBlob(ctx); err != nil || got != b {
		t.Fatalf("after a restart CurrentMDSBlob = %+v, %v; want %+v", got, err, b)
	}
}

// TestReplaceMDSRefusals: the refusals the contract suite checks by their codes say what to
// fix (which entry, which numbers), and every one leaves the store as it was, key for key.
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
