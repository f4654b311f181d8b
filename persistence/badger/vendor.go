package persistence

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
)

// AnyCommunity is the community id that the vendor metadata routes read as "every community the
// license may see". It is reserved: no community may be created with it (in any case, so that
// no look-alike of it exists either).
const AnyCommunity = "any"

// MaxVendorMetadata bounds the metadata statement of a vendor record, as JSON text (some real
// statements are 50 KB).
const MaxVendorMetadata = 256 << 10

// VendorRecord is what a community states about one authenticator model, found by the AAGUID
// its authenticators report: a FIDO MDS3 metadata statement, a name, and whether registrations
// and sign-ins of that model are refused. A community's record for an AAGUID comes before the
// global MDS entry for it. Authenticators without an AAGUID (U2F, whose AAGUID is all zeros)
// cannot be described by a record; MDS entries find them by attestation key identifier.
type VendorRecord struct {
	// ID is the record's own id (vm_ and 16 hex digits), made when it is created.
	ID          string `json:"id"`
	CommunityID string `json:"communityId"`
	// AAGUID is in its canonical form (see [CanonicalAAGUID]).
	AAGUID string `json:"aaguid"`
	// Metadata is the metadata statement as the caller gave it (JSON text, checked to be a
	// statement for AAGUID before it was stored).
	Metadata  string    `json:"metadata"`
	Name      string    `json:"name"`
	Disabled  bool      `json:"disabled"`
	UpdatedBy string    `json:"updatedBy"`
	UpdatedAt time.Time `json:"updatedAt"`
	Created   time.Time `json:"created"`
}

// VendorMetadata reads the communities' vendor metadata records. Generation changes on every
// committed write of a record, so that a cache of records (or of what was derived from them,
// such as parsed statements) can check with one atomic load whether it is still current.
type VendorMetadata interface {
	// VendorRecord returns a community's record for an AAGUID (in any case; see
	// CanonicalAAGUID), or ErrNotFound.
	VendorRecord(communityID, aaguid string) (VendorRecord, error)
	// VendorRecordsOf returns a community's records for the given AAGUIDs (every record when
	// none is given), in AAGUID order; AAGUIDs without a record are left out.
	VendorRecordsOf(communityID string, aaguids []string) ([]VendorRecord, error)
	// AllVendorRecords is VendorRecordsOf over every community, in community then AAGUID order.
	AllVendorRecords(aaguids []string) ([]VendorRecord, error)
	// VendorGeneration changes after every committed batch that wrote a record.
	VendorGeneration() uint64
}

var _ VendorMetadata = (*Store)(nil)

// CanonicalAAGUID returns an AAGUID in the form records are stored and looked up in: 36
// characters, lower-case hex in groups of 8-4-4-4-12 separated by '-'. It accepts that form in
// any case, and refuses anything else (braces, urn:uuid:, no hyphens).
func CanonicalAAGUID(s string) (string, error) {
	if len(s) != 36 {
		return "", invalid("an AAGUID is 36 characters: 32 hex digits in groups of 8-4-4-4-12 separated by '-'")
	}
	out := []byte(strings.ToLower(s))
	for i, c := range out {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", invalid("an AAGUID is 32 hex digits in groups of 8-4-4-4-12 separated by '-'")
			}
		case !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f'):
			return "", invalid("an AAGUID is 32 hex digits in groups of 8-4-4-4-12 separated by '-'")
		}
	}
	return string(out), nil
}

// FormatAAGUID writes a raw 16-byte AAGUID (as a credential holds it) in canonical form.
func FormatAAGUID(raw []byte) (string, error) {
	if len(raw) != 16 {
		return "", fmt.Errorf("an AAGUID is 16 bytes, not %d", len(raw))
	}
	h := hex.EncodeToString(raw)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// zeroAAGUID is what U2F authenticators, which have none, report.
const zeroAAGUID = "00000000-0000-0000-0000-000000000000"

// ValidateVendorRecord checks a record's invariants: a valid community id, a canonical non-zero
// AAGUID, a name and an updatedBy of 1 to 256 bytes of UTF-8 without control characters, and a
// metadata statement of 1 byte to MaxVendorMetadata. Whether the metadata is a statement for
// the AAGUID is checked before the write, by the caller (persistence does not parse statements).
func ValidateVendorRecord(r VendorRecord) error {
	if !ValidID(r.CommunityID) {
		return invalid("community id %q: use 1-128 letters, digits, '-', '_' or '.'", r.CommunityID)
	}
	aaguid, err := CanonicalAAGUID(r.AAGUID)
	switch {
	case err != nil:
		return err
	case aaguid != r.AAGUID:
		return invalid("the record's AAGUID is not in canonical (lower-case) form")
	case aaguid == zeroAAGUID:
		return errZeroAAGUID
	case r.Metadata == "":
		return invalid("metadata is required")
	case len(r.Metadata) > MaxVendorMetadata:
		return invalid("metadata is larger than 256 KiB")
	}
	if err := checkText("name", r.Name); err != nil {
		return err
	}
	return checkText("updatedBy", r.UpdatedBy)
}

// errZeroAAGUID refuses a record for the all-zero AAGUID.
var errZeroAAGUID = invalid("the all-zero AAGUID is what authenticators without one (U2F) report: " +
	"a community record cannot describe them; the FIDO MDS entries find them by attestation key identifier")

// checkText checks a short required text: 1 to 256 bytes of UTF-8 without control characters.
func checkText(field, v string) error {
	switch {
	case v == "":
		return invalid("%s is required", field)
	case len(v) > 256:
		return invalid("%s is longer than 256 bytes", field)
	case !utf8.ValidString(v):
		return invalid("%s is not valid UTF-8", field)
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalid("%s contains control characters", field)
	}
	return nil
}

func vendorPrefix(communityID string) []byte { return append(join("vm/", []byte(communityID)), 0) }
func vendorKey(communityID, aaguid string) []byte {
	return append(vendorPrefix(communityID), aaguid...)
}

// vendorOp marks the ops that write vendor records: after a batch with one, the store's vendor
// generation moves on.
type vendorOp interface{ writesVendorMetadata() }

func (PutVendorMetadata) writesVendorMetadata()   {}
func (PatchVendorMetadata) writesVendorMetadata() {}

// PutVendorMetadata creates a community's record for an AAGUID; it returns the stored
// VendorRecord. The community must exist; an AAGUID the community already has a record for is
// refused (409 conflict: change it with PatchVendorMetadata). An empty ID gets a fresh one, a
// zero UpdatedAt the time of the write.
type PutVendorMetadata struct {
	Record VendorRecord `json:"record"`
}

func (o PutVendorMetadata) apply(txn *badger.Txn) (any, error) {
	r := o.Record
	if err := ValidateVendorRecord(r); err != nil {
		return nil, err
	}
	if ok, err := exists(txn, communityKey(r.CommunityID)); err != nil {
		return nil, errStoreInternal(err)
	} else if !ok {
		return nil, messages.Errorf(messages.CodeCommunityUnknown, fmt.Sprintf("community %q does not exist", r.CommunityID))
	}
	key := vendorKey(r.CommunityID, r.AAGUID)
	if ok, err := exists(txn, key); err != nil {
		return nil, errStoreInternal(err)
	} else if ok {
		return nil, messages.Errorf(messages.CodeConflict,
			fmt.Sprintf("the community already has a record for AAGUID %s: change it with PATCH", r.AAGUID))
	}
	if r.ID == "" {
		id := make([]byte, 8)
		if _, err := rand.Read(id); err != nil {
			return nil, errStoreInternal(err)
		}
		r.ID = "vm_" + hex.EncodeToString(id)
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = time.Now().UTC()
	}
	r.Created = r.UpdatedAt
	if err := setJSON(txn, key, r); err != nil {
		return nil, errStoreInternal(err)
	}
	return r, nil
}

// PatchVendorMetadata changes the members it sets of a community's record for an AAGUID and
// stamps it with UpdatedBy and At (the time of the write when zero); it returns the stored
// VendorRecord. An unknown record is 404 not_found. A new Metadata must already have been
// checked against the record's AAGUID by the caller.
type PatchVendorMetadata struct {
	CommunityID string    `json:"communityId"`
	AAGUID      string    `json:"aaguid"`
	Metadata    *string   `json:"metadata,omitempty"`
	Name        *string   `json:"name,omitempty"`
	Disabled    *bool     `json:"disabled,omitempty"`
	UpdatedBy   string    `json:"updatedBy"`
	At          time.Time `json:"at,omitzero"`
}

func (o PatchVendorMetadata) apply(txn *badger.Txn) (any, error) {
	aaguid, err := CanonicalAAGUID(o.AAGUID)
	if err != nil {
		return nil, err
	}
	var r VendorRecord
	if !ValidID(o.CommunityID) {
		err = ErrNotFound
	} else {
		err = getJSON(txn, vendorKey(o.CommunityID, aaguid), &r)
	}
	if errors.Is(err, ErrNotFound) {
		return nil, messages.Errorf(messages.CodeNotFound, fmt.Sprintf("the community has no record for AAGUID %s", aaguid))
	} else if err != nil {
		return nil, errStoreInternal(err)
	}
	if o.Metadata != nil {
		r.Metadata = *o.Metadata
	}
	if o.Name != nil {
		r.Name = *o.Name
	}
	if o.Disabled != nil {
		r.Disabled = *o.Disabled
	}
	r.UpdatedBy, r.UpdatedAt = o.UpdatedBy, o.At
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = time.Now().UTC()
	}
	if err := ValidateVendorRecord(r); err != nil {
		return nil, err
	}
	if err := setJSON(txn, vendorKey(r.CommunityID, r.AAGUID), r); err != nil {
		return nil, errStoreInternal(err)
	}
	return r, nil
}

// VendorRecord returns a community's record for an AAGUID, or ErrNotFound (also for an id or
// an AAGUID that cannot name one).
func (s *Store) VendorRecord(communityID, aaguid string) (r VendorRecord, err error) {
	aaguid, err = CanonicalAAGUID(aaguid)
	if err != nil || !ValidID(communityID) {
		return r, ErrNotFound
	}
	return r, s.view(vendorKey(communityID, aaguid), &r)
}

// VendorRecordsOf returns a community's records for aaguids (all of them when aaguids is
// empty), in AAGUID order; AAGUIDs without a record, or that cannot be one, are left out.
func (s *Store) VendorRecordsOf(communityID string, aaguids []string) ([]VendorRecord, error) {
	if !ValidID(communityID) {
		return []VendorRecord{}, nil
	}
	return s.vendorRecords(vendorPrefix(communityID), aaguids)
}

// AllVendorRecords returns the records of every community for aaguids (all of them when
// aaguids is empty), in community then AAGUID order.
func (s *Store) AllVendorRecords(aaguids []string) ([]VendorRecord, error) {
	return s.vendorRecords([]byte("vm/"), aaguids)
}

// vendorRecords reads, in one transaction, the records under prefix whose AAGUID is one of
// aaguids (any when empty).
func (s *Store) vendorRecords(prefix []byte, aaguids []string) ([]VendorRecord, error) {
	want := map[string]bool{}
	for _, a := range aaguids {
		if c, err := CanonicalAAGUID(a); err == nil {
			want[c] = true
		}
	}
	if len(aaguids) > 0 && len(want) == 0 {
		return []VendorRecord{}, nil
	}
	out := []VendorRecord{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			if len(want) > 0 {
				i := bytes.LastIndexByte(key, 0)
				if i < 0 || !want[string(key[i+1:])] {
					continue
				}
			}
			var r VendorRecord
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
