package postgres

// Vendor metadata records: a community's statements about authenticator models.

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/jackc/pgx/v5"

	"github.com/webauthnd/webauthnd/persistence"
)

const vendorColumns = `community_id, aaguid, id, metadata, name, disabled, updated_by, updated_at, created`

func scanVendorRecord(row pgx.Row) (persistence.VendorRecord, error) {
	var (
		r                  persistence.VendorRecord
		updatedAt, created int64
	)
	err := row.Scan(&r.CommunityID, &r.AAGUID, &r.ID, &r.Metadata, &r.Name, &r.Disabled, &r.UpdatedBy, &updatedAt, &created)
	r.UpdatedAt, r.Created = fromNanos(updatedAt), fromNanos(created)
	return r, err
}

// VendorRecord returns a community's record for an AAGUID, or ErrNotFound (also for an id or
// an AAGUID that cannot name one).
func (s *Store) VendorRecord(ctx context.Context, communityID, aaguid string) (persistence.VendorRecord, error) {
	if err := ctx.Err(); err != nil {
		return persistence.VendorRecord{}, err
	}
	aaguid, err := persistence.CanonicalAAGUID(aaguid)
	if err != nil || !persistence.ValidID(communityID) {
		return persistence.VendorRecord{}, errNotFound
	}
	r, err := scanVendorRecord(s.pool.QueryRow(ctx, `SELECT `+vendorColumns+` FROM vendor_records
		WHERE community_id = $1 AND aaguid = $2`, communityID, aaguid))
	return r, s.readErr(err)
}

// VendorRecordsOf returns a community's records for aaguids (all of them when aaguids is
// empty), in AAGUID order; AAGUIDs without a record, or that cannot be one, are left out.
func (s *Store) VendorRecordsOf(ctx context.Context, communityID string, aaguids []string) ([]persistence.VendorRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !persistence.ValidID(communityID) {
		return []persistence.VendorRecord{}, nil
	}
	return s.vendorRecords(ctx, &communityID, aaguids)
}

// AllVendorRecords returns the records of every community for aaguids (all of them when
// aaguids is empty), in community then AAGUID order.
func (s *Store) AllVendorRecords(ctx context.Context, aaguids []string) ([]persistence.VendorRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.vendorRecords(ctx, nil, aaguids)
}

// vendorRecords reads the records of community (every community when nil) whose AAGUID is one
// of aaguids (any when empty).
func (s *Store) vendorRecords(ctx context.Context, community *string, aaguids []string) ([]persistence.VendorRecord, error) {
	var want []string
	for _, a := range aaguids {
		if c, err := persistence.CanonicalAAGUID(a); err == nil {
			want = append(want, c)
		}
	}
	out := []persistence.VendorRecord{}
	if len(aaguids) > 0 && len(want) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+vendorColumns+` FROM vendor_records
		WHERE ($1::text IS NULL OR community_id = $1) AND ($2::text[] IS NULL OR aaguid = ANY($2))
		ORDER BY community_id, aaguid`, community, want)
	if err != nil {
		return nil, s.storeErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanVendorRecord(rows)
		if err != nil {
			return nil, s.storeErr(err)
		}
		out = append(out, r)
	}
	return out, s.storeErr(rows.Err())
}

// VendorGeneration changes after every committed batch that wrote a vendor record: at once for
// this process's batches, and when the notification arrives (within a second) for another's.
// It is this process's count, not the database's: it starts again at 0 when the store is
// opened, with every cache of the process empty.
func (s *Store) VendorGeneration() uint64 { return s.vendorGen.Load() }

// putVendorMetadata: see [persistence.PutVendorMetadata].
func putVendorMetadata(ctx context.Context, t *txn, o persistence.PutVendorMetadata) (any, error) {
	r := o.Record
	var found bool
	if _, err := t.queryRow(ctx, `SELECT true FROM communities WHERE id = $1`, []any{r.CommunityID}, &found); err != nil {
		return nil, err
	}
	if !found {
		return nil, persistence.CommunityUnknown(r.CommunityID)
	}
	if r.ID == "" {
		id := make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			return nil, err
		}
		r.ID = "vm_" + hex.EncodeToString(id)
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = now()
	}
	r.Created = r.UpdatedAt
	n, err := t.exec(ctx, `INSERT INTO vendor_records (`+vendorColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT DO NOTHING`,
		r.CommunityID, r.AAGUID, r.ID, r.Metadata, r.Name, r.Disabled, r.UpdatedBy, nanos(r.UpdatedAt), nanos(r.Created))
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, persistence.VendorRecordExists(r.AAGUID)
	}
	return r, nil
}

// patchVendorMetadata: see [persistence.PatchVendorMetadata].
func patchVendorMetadata(ctx context.Context, t *txn, o persistence.PatchVendorMetadata) (any, error) {
	aaguid, err := persistence.CanonicalAAGUID(o.AAGUID)
	if err != nil {
		return nil, err
	}
	if !persistence.ValidID(o.CommunityID) {
		return nil, persistence.VendorRecordMissing(aaguid)
	}
	var (
		r     persistence.VendorRecord
		found bool
	)
	t.queue(func(rows pgx.Rows) error {
		if !rows.Next() {
			return rows.Err()
		}
		found = true
		r, err = scanVendorRecord(rows)
		return err
	}, `SELECT `+vendorColumns+` FROM vendor_records WHERE community_id = $1 AND aaguid = $2 FOR UPDATE`, o.CommunityID, aaguid)
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	if !found {
		return nil, persistence.VendorRecordMissing(aaguid)
	}
	r = o.Onto(r)
	if err := persistence.ValidateVendorRecord(r); err != nil {
		return nil, err
	}
	if _, err := t.exec(ctx, `UPDATE vendor_records SET metadata = $3, name = $4, disabled = $5, updated_by = $6, updated_at = $7
		WHERE community_id = $1 AND aaguid = $2`,
		r.CommunityID, r.AAGUID, r.Metadata, r.Name, r.Disabled, r.UpdatedBy, nanos(r.UpdatedAt)); err != nil {
		return nil, err
	}
	return r, nil
}
