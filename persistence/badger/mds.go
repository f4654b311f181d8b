package badger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Key layout of the global entries. Each import writes its entries under a new generation
// (16 hex digits) and then switches mdsBlobKey to it in one small transaction, so that readers,
// which resolve the generation and read the entries in one snapshot, see the old set or the new
// one; the old generation is deleted afterwards. An import that died before its switch left
// keys of a generation nothing points at: the next import deletes them.
const (
	mdsBlobKey      = "mds/blob"
	mdsEntryPrefix  = "mds/e/"
	mdsAAGUIDPrefix = "mds/a/"
	mdsKeyIDPrefix  = "mds/k/"
)

func mdsGenPart(gen uint64) []byte { return fmt.Appendf(nil, "%016x", gen) }
func mdsEntryKey(gen uint64, i int) []byte {
	return join(mdsEntryPrefix, mdsGenPart(gen), fmt.Appendf(nil, "%08x", i))
}
func mdsAAGUIDKey(gen uint64, aaguid string) []byte {
	return join(mdsAAGUIDPrefix, mdsGenPart(gen), []byte(aaguid))
}
func mdsKeyIDKey(gen uint64, id string) []byte {
	return join(mdsKeyIDPrefix, mdsGenPart(gen), []byte(id))
}

// ReplaceMDS makes entries, those of the verified BLOB b, the global metadata in place of the
// stored ones, and returns the stored MDSBlob with its new Generation. Readers see the old
// entries until a last small transaction switches to the new ones (see the key layout above),
// so a failure at any point before it, a crash included, leaves the old set in force.
//
// A BLOB whose Number is not above the stored one is refused (409) unless force is set: MDS
// serial numbers only grow, so a lower one is an older BLOB that may lack revocations. Entries
// are checked with [persistence.ValidateMDSEntry], and no two may share an AAGUID or a key
// identifier. ctx is checked before the entries are written and again before the switch; once
// the switch committed, the import is done whatever ctx does.
func (s *Store) ReplaceMDS(ctx context.Context, b persistence.MDSBlob, entries []persistence.MDSEntry, force bool) (persistence.MDSBlob, error) {
	if b.Number < 1 {
		return persistence.MDSBlob{}, invalid("an MDS BLOB's number is 1 or more")
	}
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		if err := persistence.ValidateMDSEntry(e); err != nil {
			var refusal *messages.Error
			errors.As(err, &refusal)
			return persistence.MDSBlob{}, invalid("entry %d: %s", i, refusal.Message)
		}
		ids := e.KeyIdentifiers
		if e.AAGUID != "" {
			ids = append([]string{e.AAGUID}, ids...)
		}
		for _, id := range ids {
			if seen[id] {
				return persistence.MDSBlob{}, invalid("entry %d: %s is in an earlier entry too", i, id)
			}
			seen[id] = true
		}
	}
	// An import is no essential write: below the disk reserve it is refused (see space.go).
	if space := s.space.read(); space.level != spaceAmple {
		return persistence.MDSBlob{}, space.refusal()
	}
	s.mdsMu.Lock()
	defer s.mdsMu.Unlock()
	cur, err := s.CurrentMDSBlob(ctx)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
	case err != nil && ctx.Err() != nil:
		return persistence.MDSBlob{}, err
	case err != nil:
		return persistence.MDSBlob{}, persistence.StoreInternal(err)
	case b.Number <= cur.Number && !force:
		return persistence.MDSBlob{}, messages.Errorf(messages.CodeConflict, fmt.Sprintf(
			"BLOB number %d is not above the stored BLOB number %d: it is the same or an older BLOB; force the import to replace the stored entries anyway",
			b.Number, cur.Number))
	}
	// Keys of a generation other than the current one are an earlier import's that died before
	// its switch; the new generation's keys must start empty.
	if err := s.dropMDSGenerations(cur.Generation); err != nil {
		return persistence.MDSBlob{}, persistence.StoreInternal(err)
	}
	b.Generation = cur.Generation + 1
	b.Entries = len(entries)
	b.Imported = time.Now().UTC()
	if err := s.writeMDSGeneration(b.Generation, entries); err != nil {
		return persistence.MDSBlob{}, persistence.StoreInternal(err)
	}
	if err := ctx.Err(); err != nil {
		// The entries written are of a generation nothing points at: the next import drops them.
		return persistence.MDSBlob{}, err
	}
	err = s.db.Update(func(txn *bdb.Txn) error {
		var now persistence.MDSBlob
		if err := getJSON(txn, []byte(mdsBlobKey), &now); err != nil && !errors.Is(err, persistence.ErrNotFound) {
			return err
		}
		if now.Generation != cur.Generation {
			return fmt.Errorf("the stored generation moved from %d to %d during the import", cur.Generation, now.Generation)
		}
		return setJSON(txn, []byte(mdsBlobKey), b)
	})
	if err != nil {
		return persistence.MDSBlob{}, persistence.StoreInternal(fmt.Errorf("switch to MDS generation %d: %w", b.Generation, err))
	}
	s.mdsGen.Store(b.Generation)
	// Readers that resolved the old generation before the switch keep their snapshot, which
	// Badger holds for them; a failure here leaves keys that the next import drops.
	_ = s.dropMDSGenerations(b.Generation)
	return b, nil
}

// writeMDSGeneration writes entries and their indexes under gen, in as many transactions as
// Badger needs: nothing reads gen until the switch.
func (s *Store) writeMDSGeneration(gen uint64, entries []persistence.MDSEntry) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, e := range entries {
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := wb.Set(mdsEntryKey(gen, i), raw); err != nil {
			return err
		}
		index := fmt.Appendf(nil, "%08x", i)
		if e.AAGUID != "" {
			if err := wb.Set(mdsAAGUIDKey(gen, e.AAGUID), index); err != nil {
				return err
			}
		}
		for _, id := range e.KeyIdentifiers {
			if err := wb.Set(mdsKeyIDKey(gen, id), index); err != nil {
				return err
			}
		}
	}
	return wb.Flush()
}

// dropMDSGenerations deletes the entries and indexes of every generation but keep.
func (s *Store) dropMDSGenerations(keep uint64) error {
	var doomed [][]byte
	err := s.db.View(func(txn *bdb.Txn) error {
		for _, prefix := range []string{mdsEntryPrefix, mdsAAGUIDPrefix, mdsKeyIDPrefix} {
			it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte(prefix)})
			keepPrefix := append(append([]byte(prefix), mdsGenPart(keep)...), 0)
			for it.Rewind(); it.Valid(); it.Next() {
				if !bytes.HasPrefix(it.Item().Key(), keepPrefix) {
					doomed = append(doomed, it.Item().KeyCopy(nil))
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil || len(doomed) == 0 {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range doomed {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// loadMDSGeneration reads the generation of the stored BLOB into memory (at Open).
func (s *Store) loadMDSGeneration() error {
	b, err := s.CurrentMDSBlob(context.Background())
	if err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return err
	}
	s.mdsGen.Store(b.Generation)
	return nil
}

// MDSGeneration is the Generation of the imported BLOB, 0 before the first import. It is read
// from memory: only this process writes the store (Badger's directory lock), so memory is
// never behind.
func (s *Store) MDSGeneration() uint64 { return s.mdsGen.Load() }

// CurrentMDSBlob describes the imported BLOB, or returns ErrNotFound before the first import.
func (s *Store) CurrentMDSBlob(ctx context.Context) (b persistence.MDSBlob, err error) {
	return b, s.viewJSON(ctx, []byte(mdsBlobKey), &b)
}

// MDSEntryByAAGUID returns the entry of an AAGUID in canonical form (any case), or ErrNotFound.
func (s *Store) MDSEntryByAAGUID(ctx context.Context, aaguid string) (persistence.MDSEntry, error) {
	c, ok := persistence.CanonicalMDSAAGUID(aaguid)
	if !ok {
		return persistence.MDSEntry{}, notFound(ctx)
	}
	return s.mdsEntryBy(ctx, func(gen uint64) []byte { return mdsAAGUIDKey(gen, c) })
}

// MDSEntryByKeyIdentifier returns the entry that lists an attestation certificate key
// identifier (hex, any case), or ErrNotFound.
func (s *Store) MDSEntryByKeyIdentifier(ctx context.Context, keyID string) (persistence.MDSEntry, error) {
	id := strings.ToLower(keyID)
	if id == "" || strings.ContainsRune(id, 0) {
		return persistence.MDSEntry{}, notFound(ctx)
	}
	return s.mdsEntryBy(ctx, func(gen uint64) []byte { return mdsKeyIDKey(gen, id) })
}

// mdsEntryBy resolves the current generation, then an index key of it, then the entry, all in
// one snapshot.
func (s *Store) mdsEntryBy(ctx context.Context, indexKey func(gen uint64) []byte) (e persistence.MDSEntry, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		var b persistence.MDSBlob
		if err := getJSON(txn, []byte(mdsBlobKey), &b); err != nil {
			return err
		}
		item, err := txn.Get(indexKey(b.Generation))
		if errors.Is(err, bdb.ErrKeyNotFound) {
			return persistence.ErrNotFound
		}
		if err != nil {
			return err
		}
		index, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if err := getJSON(txn, join(mdsEntryPrefix, mdsGenPart(b.Generation), index), &e); err != nil {
			return fmt.Errorf("MDS index points at a missing entry: %w", err)
		}
		e.Source = b.Source()
		return nil
	})
	return e, err
}

// MDSEntries returns the imported BLOB and its entries in the BLOB's order, from one snapshot,
// or ErrNotFound before the first import.
func (s *Store) MDSEntries(ctx context.Context) (b persistence.MDSBlob, out []persistence.MDSEntry, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		if err := getJSON(txn, []byte(mdsBlobKey), &b); err != nil {
			return err
		}
		prefix := append(append([]byte(mdsEntryPrefix), mdsGenPart(b.Generation)...), 0)
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := alive(ctx, len(out)); err != nil {
				return err
			}
			var e persistence.MDSEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return err
			}
			e.Source = b.Source()
			out = append(out, e)
		}
		return nil
	})
	return b, out, err
}
