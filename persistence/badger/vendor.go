package badger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
)

func vendorPrefix(communityID string) []byte { return append(join("vm/", []byte(communityID)), 0) }
func vendorKey(communityID, aaguid string) []byte {
	return append(vendorPrefix(communityID), aaguid...)
}

func putVendorMetadata(txn *bdb.Txn, o persistence.PutVendorMetadata) (any, error) {
	r := o.Record
	if ok, err := exists(txn, communityKey(r.CommunityID)); err != nil {
		return nil, persistence.StoreInternal(err)
	} else if !ok {
		return nil, persistence.CommunityUnknown(r.CommunityID)
	}
	key := vendorKey(r.CommunityID, r.AAGUID)
	if ok, err := exists(txn, key); err != nil {
		return nil, persistence.StoreInternal(err)
	} else if ok {
		return nil, persistence.VendorRecordExists(r.AAGUID)
	}
	if r.ID == "" {
		id := make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			return nil, persistence.StoreInternal(err)
		}
		r.ID = "vm_" + hex.EncodeToString(id)
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = time.Now().UTC()
	}
	r.Created = r.UpdatedAt
	if err := setJSON(txn, key, r); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return r, nil
}

func patchVendorMetadata(txn *bdb.Txn, o persistence.PatchVendorMetadata) (any, error) {
	aaguid, err := persistence.CanonicalAAGUID(o.AAGUID)
	if err != nil {
		return nil, err
	}
	var r persistence.VendorRecord
	if !persistence.ValidID(o.CommunityID) {
		err = persistence.ErrNotFound
	} else {
		err = getJSON(txn, vendorKey(o.CommunityID, aaguid), &r)
	}
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, persistence.VendorRecordMissing(aaguid)
	} else if err != nil {
		return nil, persistence.StoreInternal(err)
	}
	r = o.Onto(r)
	if err := persistence.ValidateVendorRecord(r); err != nil {
		return nil, err
	}
	if err := setJSON(txn, vendorKey(r.CommunityID, r.AAGUID), r); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return r, nil
}

// VendorRecord returns a community's record for an AAGUID, or ErrNotFound (also for an id or
// an AAGUID that cannot name one).
func (s *Store) VendorRecord(ctx context.Context, communityID, aaguid string) (r persistence.VendorRecord, err error) {
	aaguid, err = persistence.CanonicalAAGUID(aaguid)
	if err != nil || !persistence.ValidID(communityID) {
		return r, notFound(ctx)
	}
	return r, s.viewJSON(ctx, vendorKey(communityID, aaguid), &r)
}

// VendorRecordsOf returns a community's records for aaguids (all of them when aaguids is
// empty), in AAGUID order; AAGUIDs without a record, or that cannot be one, are left out.
func (s *Store) VendorRecordsOf(ctx context.Context, communityID string, aaguids []string) ([]persistence.VendorRecord, error) {
	if !persistence.ValidID(communityID) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return []persistence.VendorRecord{}, nil
	}
	return s.vendorRecords(ctx, vendorPrefix(communityID), aaguids)
}

// AllVendorRecords returns the records of every community for aaguids (all of them when
// aaguids is empty), in community then AAGUID order.
func (s *Store) AllVendorRecords(ctx context.Context, aaguids []string) ([]persistence.VendorRecord, error) {
	return s.vendorRecords(ctx, []byte("vm/"), aaguids)
}

// vendorRecords reads, in one transaction, the records under prefix whose AAGUID is one of
// aaguids (any when empty).
func (s *Store) vendorRecords(ctx context.Context, prefix []byte, aaguids []string) ([]persistence.VendorRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, a := range aaguids {
		if c, err := persistence.CanonicalAAGUID(a); err == nil {
			want[c] = true
		}
	}
	if len(aaguids) > 0 && len(want) == 0 {
		return []persistence.VendorRecord{}, nil
	}
	out := []persistence.VendorRecord{}
	err := s.view(ctx, func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: prefix})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if err := alive(ctx, n); err != nil {
				return err
			}
			n++
			key := it.Item().Key()
			if len(want) > 0 {
				i := bytes.LastIndexByte(key, 0)
				if i < 0 || !want[string(key[i+1:])] {
					continue
				}
			}
			var r persistence.VendorRecord
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &r) }); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// VendorGeneration changes after every committed batch that wrote a vendor record (it moves
// on after the commit, so a reader that saw the old generation and then read a record may
// hold the old record or the new one, and is invalidated either way). Only this process writes
// the store (Badger's directory lock), so an in-memory counter sees every write; it starts
// again at 0 when the store is opened, with every cache of the process empty.
func (s *Store) VendorGeneration() uint64 { return s.vendorGen.Load() }
