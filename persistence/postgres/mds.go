package postgres

// The global metadata: the entries of the last imported FIDO MDS BLOB.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// mdsImportLock is the key of the transaction-scoped advisory lock that makes imports of MDS
// BLOBs, from any node, run one at a time. (The bytes of "wadmdsim".)
const mdsImportLock int64 = 0x7761646d6473696d

// ReplaceMDS makes entries, those of the verified BLOB b, the global metadata in place of the
// stored ones, and returns the stored MDSBlob with its new Generation. The whole import is one
// transaction: readers see the old entries until it commits, and a failure at any point leaves
// them in force. Other nodes learn of the new generation from the database's notification.
//
// A BLOB whose Number is not above the stored one is refused (409) unless force is set. Entries
// are checked with ValidateMDSEntry, and no two may share an AAGUID or a key identifier.
func (s *Store) ReplaceMDS(ctx context.Context, b persistence.MDSBlob, entries []persistence.MDSEntry, force bool) (persistence.MDSBlob, error) {
	if err := ctx.Err(); err != nil {
		return persistence.MDSBlob{}, persistence.StoreInternal(err)
	}
	if b.Number < 1 {
		return persistence.MDSBlob{}, messages.Errorf(messages.CodeInvalidRequest, "an MDS BLOB's number is 1 or more")
	}
	seen := make(map[string]bool, len(entries))
	records := make([][]any, len(entries))
	var keyIDs [][]any
	for i, e := range entries {
		if err := persistence.ValidateMDSEntry(e); err != nil {
			var refusal *messages.Error
			errors.As(err, &refusal)
			return persistence.MDSBlob{}, messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf("entry %d: %s", i, refusal.Message))
		}
		ids := e.KeyIdentifiers
		if e.AAGUID != "" {
			ids = append([]string{e.AAGUID}, ids...)
		}
		for _, id := range ids {
			if seen[id] {
				return persistence.MDSBlob{}, messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf("entry %d: %s is in an earlier entry too", i, id))
			}
			seen[id] = true
		}
		e.Source = ""
		raw, err := json.Marshal(e)
		if err != nil {
			return persistence.MDSBlob{}, persistence.StoreInternal(err)
		}
		var aaguid *string
		if e.AAGUID != "" {
			aaguid = &e.AAGUID
		}
		records[i] = []any{int32(i), aaguid, string(raw)}
		for _, id := range e.KeyIdentifiers {
			keyIDs = append(keyIDs, []any{id, int32(i)})
		}
	}
	s.mdsMu.Lock()
	defer s.mdsMu.Unlock()
	var stored persistence.MDSBlob
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, mdsImportLock); err != nil {
			return err
		}
		cur, err := currentMDSBlob(ctx, tx)
		switch {
		case errors.Is(err, errNotFound):
		case err != nil:
			return err
		case b.Number <= cur.Number && !force:
			return messages.Errorf(messages.CodeConflict, fmt.Sprintf(
				"BLOB number %d is not above the stored BLOB number %d: it is the same or an older BLOB; force the import to replace the stored entries anyway",
				b.Number, cur.Number))
		}
		b.Generation = cur.Generation + 1
		b.Entries = len(entries)
		b.Imported = now()
		// Readers that started before the commit keep seeing the old generation's rows, which
		// this transaction deletes: PostgreSQL keeps them for their snapshots.
		for _, table := range []string{"mds_entries", "mds_key_identifiers"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table); err != nil {
				return err
			}
		}
		gen := int64(b.Generation)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"mds_entries"}, []string{"generation", "position", "aaguid", "record"},
			pgx.CopyFromSlice(len(records), func(i int) ([]any, error) { return append([]any{gen}, records[i]...), nil })); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"mds_key_identifiers"}, []string{"generation", "key_id", "position"},
			pgx.CopyFromSlice(len(keyIDs), func(i int) ([]any, error) { return append([]any{gen}, keyIDs[i]...), nil })); err != nil {
			return err
		}
		raw, err := json.Marshal(b)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mds_blob (one, generation, number, record) VALUES (true, $1, $2, $3)
			ON CONFLICT (one) DO UPDATE SET generation = excluded.generation, number = excluded.number, record = excluded.record`,
			gen, int64(b.Number), string(raw)); err != nil {
			return err
		}
		stored = b
		return nil
	})
	if err != nil {
		var me *messages.Error
		if errors.As(err, &me) {
			return persistence.MDSBlob{}, err
		}
		return persistence.MDSBlob{}, persistence.StoreInternal(s.secret.error(fmt.Errorf("import MDS BLOB %d: %w", b.Number, err)))
	}
	s.mdsGen.Store(stored.Generation)
	return stored, nil
}

// querier is what both the pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func currentMDSBlob(ctx context.Context, q querier) (persistence.MDSBlob, error) {
	var (
		b   persistence.MDSBlob
		raw string
	)
	if err := q.QueryRow(ctx, `SELECT record FROM mds_blob`).Scan(&raw); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return b, errNotFound
		}
		return b, err
	}
	return b, json.Unmarshal([]byte(raw), &b)
}

// MDSGeneration is the Generation of the imported BLOB, 0 before the first import: this
// process's imports set it at once, another's when its notification arrives (within a second).
func (s *Store) MDSGeneration() uint64 { return s.mdsGen.Load() }

// CurrentMDSBlob describes the imported BLOB, or returns ErrNotFound before the first import.
func (s *Store) CurrentMDSBlob(ctx context.Context) (persistence.MDSBlob, error) {
	if err := ctx.Err(); err != nil {
		return persistence.MDSBlob{}, err
	}
	b, err := currentMDSBlob(ctx, s.pool)
	if err != nil && !errors.Is(err, errNotFound) {
		return b, s.secret.error(err)
	}
	return b, err
}

// MDSEntryByAAGUID returns the entry of an AAGUID in canonical form (any case), or ErrNotFound.
func (s *Store) MDSEntryByAAGUID(ctx context.Context, aaguid string) (persistence.MDSEntry, error) {
	if err := ctx.Err(); err != nil {
		return persistence.MDSEntry{}, err
	}
	c, ok := persistence.CanonicalMDSAAGUID(aaguid)
	if !ok {
		return persistence.MDSEntry{}, errNotFound
	}
	return s.mdsEntry(ctx, `SELECT b.record, e.record FROM mds_blob b
		JOIN mds_entries e ON e.generation = b.generation AND e.aaguid = $1`, c)
}

// MDSEntryByKeyIdentifier returns the entry that lists an attestation certificate key
// identifier (hex, any case), or ErrNotFound.
func (s *Store) MDSEntryByKeyIdentifier(ctx context.Context, keyID string) (persistence.MDSEntry, error) {
	if err := ctx.Err(); err != nil {
		return persistence.MDSEntry{}, err
	}
	id := strings.ToLower(keyID)
	if id == "" || !textOK(id) {
		return persistence.MDSEntry{}, errNotFound
	}
	return s.mdsEntry(ctx, `SELECT b.record, e.record FROM mds_blob b
		JOIN mds_key_identifiers k ON k.generation = b.generation AND k.key_id = $1
		JOIN mds_entries e ON e.generation = b.generation AND e.position = k.position`, id)
}

// mdsEntry reads the BLOB and one entry of its generation, in one statement (one snapshot).
func (s *Store) mdsEntry(ctx context.Context, sql string, arg string) (persistence.MDSEntry, error) {
	var (
		blob, entry string
		b           persistence.MDSBlob
		e           persistence.MDSEntry
	)
	if err := s.pool.QueryRow(ctx, sql, arg).Scan(&blob, &entry); err != nil {
		return e, s.readErr(err)
	}
	if err := json.Unmarshal([]byte(blob), &b); err != nil {
		return e, err
	}
	if err := json.Unmarshal([]byte(entry), &e); err != nil {
		return e, err
	}
	e.Source = b.Source()
	return e, nil
}

// MDSEntries returns the imported BLOB and its entries in the BLOB's order, from one snapshot,
// or ErrNotFound before the first import.
func (s *Store) MDSEntries(ctx context.Context) (persistence.MDSBlob, []persistence.MDSEntry, error) {
	if err := ctx.Err(); err != nil {
		return persistence.MDSBlob{}, nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT b.record, e.record FROM mds_blob b
		LEFT JOIN mds_entries e ON e.generation = b.generation ORDER BY e.position`)
	if err != nil {
		return persistence.MDSBlob{}, nil, s.secret.error(err)
	}
	defer rows.Close()
	var (
		b     persistence.MDSBlob
		out   []persistence.MDSEntry
		found bool
	)
	for rows.Next() {
		var (
			blob  string
			entry *string
		)
		if err := rows.Scan(&blob, &entry); err != nil {
			return b, nil, s.secret.error(err)
		}
		if !found {
			if err := json.Unmarshal([]byte(blob), &b); err != nil {
				return b, nil, err
			}
			found = true
		}
		if entry == nil {
			continue
		}
		var e persistence.MDSEntry
		if err := json.Unmarshal([]byte(*entry), &e); err != nil {
			return b, nil, err
		}
		e.Source = b.Source()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return b, nil, s.secret.error(err)
	}
	if !found {
		return b, nil, errNotFound
	}
	return b, out, nil
}
