package badger

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// countKeys counts the keys under prefix.
func countKeys(t *testing.T, s *Store, prefix string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplaceMDSDropsOtherGenerations: an import that died after writing its entries and
// before its switch left keys of a generation nothing points at; readers never see them, and
// the next import deletes them with the generation it replaces, so that the store holds the
// keys of one generation only.
func TestReplaceMDSDropsOtherGenerations(t *testing.T) {
	s, err := Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entries := func(desc string, n int) []persistence.MDSEntry {
		out := make([]persistence.MDSEntry, n)
		for i := range out {
			out[i] = persistence.MDSEntry{AAGUID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i+1), KeyIdentifiers: []string{fmt.Sprintf("%x", i+1)},
				Description: desc, Entry: json.RawMessage(`{}`)}
		}
		return out
	}
	next := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.ReplaceMDS(ctx, persistence.MDSBlob{Number: 1, NextUpdate: next}, entries("one", 3), false); err != nil {
		t.Fatal(err)
	}
	// The dead import: generation 2 written, never switched to.
	if err := s.writeMDSGeneration(2, entries("dead", 5)); err != nil {
		t.Fatal(err)
	}
	if e, err := s.MDSEntryByAAGUID(ctx, "00000005-0000-4000-8000-000000000000"); err == nil {
		t.Fatalf("an entry of an unswitched generation is visible: %+v", e)
	}
	if _, all, _ := s.MDSEntries(ctx); len(all) != 3 || all[0].Description != "one" {
		t.Fatalf("the listing holds %d entries, want the 3 of the current BLOB", len(all))
	}
	b, err := s.ReplaceMDS(ctx, persistence.MDSBlob{Number: 2, NextUpdate: next}, entries("two", 4), false)
	if err != nil {
		t.Fatal(err)
	}
	if b.Generation != 2 {
		t.Fatalf("generation %d, want 2 (the dead import's keys dropped first)", b.Generation)
	}
	for prefix, want := range map[string]int{mdsEntryPrefix: 4, mdsAAGUIDPrefix: 4, mdsKeyIDPrefix: 4} {
		if n := countKeys(t, s, prefix); n != want {
			t.Errorf("%d keys under %s, want %d", n, prefix, want)
		}
	}
	if e, err := s.MDSEntryByAAGUID(ctx, "00000004-0000-4000-8000-000000000000"); err != nil || e.Description != "two" {
		t.Fatalf("look-up after the import: %+v, %v", e, err)
	}
}
