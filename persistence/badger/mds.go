package persistence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
)

// MDSBlob describes the FIDO Metadata Service BLOB whose entries are the global metadata: they
// apply to every community that has no record of its own for an authenticator.
type MDSBlob struct {
	// Number is the BLOB's serial number ("no"); an import must bring a higher one unless forced.
	Number int `json:"number"`
	// NextUpdate is the date (UTC midnight) by which the MDS promised the next BLOB.
	NextUpdate time.Time `json:"nextUpdate"`
	// LegalHeader is the BLOB's legal notice, kept as the terms it was accepted under.
	LegalHeader string `json:"legalHeader,omitempty"`
	// Entries counts the stored entries.
	Entries int `json:"entries"`
	// Generation counts the imports: it changes with each one, so that a cache of entries (or of
	// what was derived from them) knows it is stale. See [Store.MDSGeneration].
	Generation uint64 `json:"generation"`
	// Imported is when the import switched to this BLOB's entries.
	Imported time.Time `json:"imported"`
}

// Source says where the entries of b came from, as `webauthnd metadata list` shows it.
func (b MDSBlob) Source() string { return fmt.Sprintf("mds blob %d", b.Number) }

// MDSEntry is one entry of an MDS BLOB. FIDO2 authenticators are found by AAGUID, U2F ones (whose
// AAGUID is all zeros) by the key identifiers of their attestation certificates; UAF entries
// carry an AAID, which no WebAuthn ceremony looks up, and are kept so that a listing shows the
// whole BLOB.
type MDSEntry struct {
	// AAGUID is the authenticator model's AAGUID in canonical form (36 lower-case characters,
	// 8-4-4-4-12), or empty for U2F and UAF entries.
	AAGUID string `json:"aaguid,omitempty"`
	// KeyIdentifiers are the lower-case hex SHA-1 identifiers of the attestation certificates'
	// public keys (attestationCertificateKeyIdentifiers), by which U2F entries are found.
	KeyIdentifiers []string `json:"keyIdentifiers,omitempty"`
	// AAID is a UAF authenticator's AAID.
	AAID string `json:"aaid,omitempty"`
	// Description is the metadata statement's description (the model's English name).
	Description string `json:"description,omitempty"`
	// Status is the entry's latest status (e.g. FIDO_CERTIFIED_L1, REVOKED): that of its last
	// status report by effective date, one that takes effect later included, for listings;
	// StatusDate is that report's effective date, if it gave one. Ceremonies judge the status
	// reports in Entry at their own clock.
	Status     string    `json:"status,omitempty"`
	StatusDate time.Time `json:"statusDate,omitzero"`
	// StatementError, when not empty, is why go-webauthn's metadata parser refuses the entry
	// (e.g. an attestation root certificate it cannot read): its status and description hold,
	// its statement's attestation roots cannot be used.
	StatementError string `json:"statementError,omitempty"`
	// Entry is the entry's JSON as the BLOB carried it (an MDS3 MetadataBLOBPayloadEntry): the
	// statement with its attestation roots and every status report, for go-webauthn's metadata
	// types to parse.
	Entry json.RawMessage `json:"entry"`
	// Source is where the entry came from ("mds blob 9"); reads fill it in, it is not stored.
	Source string `json:"-"`
}

// MDS reads the global metadata entries of the last imported BLOB. Each read runs in one
// snapshot of the store, so it sees the entries of one BLOB, never a mix of two imports.
type MDS interface {
	// CurrentMDSBlob describes the imported BLOB, or returns ErrNotFound before the first import.
	CurrentMDSBlob() (MDSBlob, error)
	// MDSEntryByAAGUID returns the entry of an AAGUID (canonical form, any case), or ErrNotFound.
	MDSEntryByAAGUID(aaguid string) (MDSEntry, error)
	// MDSEntryByKeyIdentifier returns the entry that lists an attestation certificate key
	// identifier (hex, any case), or ErrNotFound: how U2F authenticators are found.
	MDSEntryByKeyIdentifier(keyID string) (MDSEntry, error)
	// MDSEntries returns the BLOB and all its entries, in the BLOB's order, from one snapshot
	// (ErrNotFound before the first import): what a cache loads when the generation changed.
	MDSEntries() (MDSBlob, []MDSEntry, error)
	// MDSGeneration is the Generation of the imported BLOB (0 before the first import), read
	// from memory: a cache compares it with the one it loaded, at the cost of an atomic load.
	// Only this process writes the store (Badger's directory lock), so memory is never behind.
	MDSGeneration() uint64
}

var _ MDS = (*Store)(nil)

// Key layout of the global entries. Each import writes its entries under a new generation
// (16 hex digits) and then switches mdsBlobKey to it in one small transaction, so that readers,
// which resolve the generation and read the entries in one snapshot, see the old set or the new
// one; the old generation is deleted afterwards. An import that died before its switch left
// keys of a generation nothing points at: the next import deletes them.
const (
	mdsBlobKey          = "mds/blob"
	mdsEntryPrefix      = "mds/e/"
	mdsAAGUIDPrefix     = "mds/a/"
	mdsKeyIDPrefix      = "mds/k/"
	maxMDSEntryBytes    = 1 << 20
	maxMDSKeyIdentifier = 128
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

// canonicalMDSAAGUID is s in lower case when it is an AAGUID's canonical text.
func canonicalMDSAAGUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	s = strings.ToLower(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return "", false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return s, true
}

// ValidateMDSEntry checks what the key layout and the look-ups rely on: an AAGUID in canonical
// form and not all zeros (U2F entries have none), lower-case hex key identifiers of 1 to 128
// digits, at least one of AAGUID, key identifiers and AAID, texts of valid UTF-8 without NUL, and
// an entry that is a JSON object of at most 1 MiB.
func ValidateMDSEntry(e MDSEntry) error {
	if e.AAGUID != "" {
		if c, ok := canonicalMDSAAGUID(e.AAGUID); !ok || c != e.AAGUID || c == "00000000-0000-0000-0000-000000000000" {
			return invalid("AAGUID %q is not a non-zero AAGUID in canonical lower-case form", e.AAGUID)
		}
	}
	for _, id := range e.KeyIdentifiers {
		if id == "" || len(id) > maxMDSKeyIdentifier || strings.Trim(id, "0123456789abcdef") != "" {
			return invalid("key identifier %q is not 1 to %d lower-case hex digits", id, maxMDSKeyIdentifier)
		}
	}
	switch {
	case e.AAGUID == "" && len(e.KeyIdentifiers) == 0 && e.AAID == "":
		return invalid("an MDS entry needs an AAGUID, key identifiers or an AAID")
	case !utf8.ValidString(e.AAID) || strings.ContainsRune(e.AAID, 0) || len(e.AAID) > 256:
		return invalid("AAID %q is not at most 256 bytes of UTF-8 without NUL", e.AAID)
	case !utf8.ValidString(e.Description) || len(e.Description) > 4096:
		return invalid("an MDS entry's description is at most 4096 bytes of UTF-8")
	case len(e.Entry) > maxMDSEntryBytes:
		return invalid("an MDS entry is at most 1 MiB of JSON")
	case len(bytes.TrimSpace(e.Entry)) == 0 || bytes.TrimSpace(e.Entry)[0] != '{' || !json.Valid(e.Entry):
		return invalid("an MDS entry's JSON is not an object")
	}
	return nil
}

// ReplaceMDS makes entries, those of the verified BLOB b, the global metadata in place of the
// stored ones, and returns the stored MDSBlob with its new Generation. Readers see the old
// entries until a last small transaction switches to the new ones (see the key layout above),
// so a failure at any point before it, a crash included, leaves the old set in force.
//
// A BLOB whose Number is not above the stored one is refused (409) unless force is set: MDS
// serial numbers only grow, so a lower one is an older BLOB that may lack revocations. Entries
// are checked with ValidateMDSEntry, and no two may share an AAGUID or a key identifier.
func (s *Store) ReplaceMDS(b MDSBlob, entries []MDSEntry, force bool) (MDSBlob, error) {
	if b.Number < 1 {
		return MDSBlob{}, invalid("an MDS BLOB's number is 1 or more")
	}
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		if err := ValidateMDSEntry(e); err != nil {
			var refusal *messages.Error
			errors.As(err, &refusal)
			return MDSBlob{}, invalid("entry %d: %s", i, refusal.Message)
		}
		ids := e.KeyIdentifiers
		if e.AAGUID != "" {
			ids = append([]string{e.AAGUID}, ids...)
		}
		for _, id := range ids {
			if seen[id] {
				return MDSBlob{}, invalid("entry %d: %s is in an earlier entry too", i, id)
			}
			seen[id] = true
		}
	}
	// An import is no essential write: below the disk reserve it is refused (see space.go).
	if space := s.space.read(); space.level != spaceAmple {
		return MDSBlob{}, space.refusal()
	}
	s.mdsMu.Lock()
	defer s.mdsMu.Unlock()
	cur, err := s.CurrentMDSBlob()
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return MDSBlob{}, errStoreInternal(err)
	case b.Number <= cur.Number && !force:
		return MDSBlob{}, messages.Errorf(messages.CodeConflict, fmt.Sprintf(
			"BLOB number %d is not above the stored BLOB number %d: it is the same or an older BLOB; force the import to replace the stored entries anyway",
			b.Number, cur.Number))
	}
	// Keys of a generation other than the current one are an earlier import's that died before
	// its switch; the new generation's keys must start empty.
	if err := s.dropMDSGenerations(cur.Generation); err != nil {
		return MDSBlob{}, errStoreInternal(err)
	}
	b.Generation = cur.Generation + 1
	b.Entries = len(entries)
	b.Imported = time.Now().UTC()
	if err := s.writeMDSGeneration(b.Generation, entries); err != nil {
		return MDSBlob{}, errStoreInternal(err)
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		var now MDSBlob
		if err := getJSON(txn, []byte(mdsBlobKey), &now); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if now.Generation != cur.Generation {
			return fmt.Errorf("the stored generation moved from %d to %d during the import", cur.Generation, now.Generation)
		}
		return setJSON(txn, []byte(mdsBlobKey), b)
	})
	if err != nil {
		return MDSBlob{}, errStoreInternal(fmt.Errorf("switch to MDS generation %d: %w", b.Generation, err))
	}
	s.mdsGen.Store(b.Generation)
	// Readers that resolved the old generation before the switch keep their snapshot, which
	// Badger holds for them; a failure here leaves keys that the next import drops.
	_ = s.dropMDSGenerations(b.Generation)
	return b, nil
}

// writeMDSGeneration writes entries and their indexes under gen, in as many transactions as
// Badger needs: nothing reads gen until the switch.
func (s *Store) writeMDSGeneration(gen uint64, entries []MDSEntry) error {
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
	err := s.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []string{mdsEntryPrefix, mdsAAGUIDPrefix, mdsKeyIDPrefix} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
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
	b, err := s.CurrentMDSBlob()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	s.mdsGen.Store(b.Generation)
	return nil
}

// MDSGeneration is the Generation of the imported BLOB, 0 before the first import.
func (s *Store) MDSGeneration() uint64 { return s.mdsGen.Load() }

// CurrentMDSBlob describes the imported BLOB, or returns ErrNotFound before the first import.
func (s *Store) CurrentMDSBlob() (b MDSBlob, err error) { return b, s.view([]byte(mdsBlobKey), &b) }

// MDSEntryByAAGUID returns the entry of an AAGUID in canonical form (any case), or ErrNotFound.
func (s *Store) MDSEntryByAAGUID(aaguid string) (MDSEntry, error) {
	c, ok := canonicalMDSAAGUID(aaguid)
	if !ok {
		return MDSEntry{}, ErrNotFound
	}
	return s.mdsEntryBy(func(gen uint64) []byte { return mdsAAGUIDKey(gen, c) })
}

// MDSEntryByKeyIdentifier returns the entry that lists an attestation certificate key
// identifier (hex, any case), or ErrNotFound.
func (s *Store) MDSEntryByKeyIdentifier(keyID string) (MDSEntry, error) {
	id := strings.ToLower(keyID)
	if id == "" || strings.ContainsRune(id, 0) {
		return MDSEntry{}, ErrNotFound
	}
	return s.mdsEntryBy(func(gen uint64) []byte { return mdsKeyIDKey(gen, id) })
}

// mdsEntryBy resolves the current generation, then an index key of it, then the entry, all in
// one snapshot.
func (s *Store) mdsEntryBy(indexKey func(gen uint64) []byte) (e MDSEntry, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		var b MDSBlob
		if err := getJSON(txn, []byte(mdsBlobKey), &b); err != nil {
			return err
		}
		item, err := txn.Get(indexKey(b.Generation))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
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
func (s *Store) MDSEntries() (b MDSBlob, out []MDSEntry, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		if err := getJSON(txn, []byte(mdsBlobKey), &b); err != nil {
			return err
		}
		prefix := append(append([]byte(mdsEntryPrefix), mdsGenPart(b.Generation)...), 0)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var e MDSEntry
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
