package badger

import (
	"encoding/json"
	"errors"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/fxamacker/cbor/v2"

	"github.com/webauthnd/webauthnd/persistence"
)

// Users and credentials, which every ceremony reads and every sign-in rewrites, are stored in
// CBOR with small integer keys: about a third of their JSON size, and several times faster to
// encode and decode. Records written by earlier versions are JSON; a stored value that starts
// with '{' is one (a CBOR map starts with a byte from 0xa0 to 0xbf), and it is read as such
// until the record is next written. The config records (tenants, communities, licenses,
// keyrings) stay JSON: they are cached or rarely read, and readable in a dump.
//
// The integer keys of the records below are the storage format: never reuse or renumber one.

var (
	cborEnc = mustEncMode()
	cborDec = mustDecMode()
)

func mustEncMode() cbor.EncMode {
	em, err := cbor.EncOptions{}.EncMode()
	if err != nil {
		panic(err) // the options are constant: this fails in every test or never
	}
	return em
}

func mustDecMode() cbor.DecMode {
	dm, err := cbor.DecOptions{}.DecMode()
	if err != nil {
		panic(err) // the options are constant: this fails in every test or never
	}
	return dm
}

// userRecord is a [persistence.User] as stored.
type userRecord struct {
	CommunityID string `cbor:"1,keyasint,omitempty"`
	Username    string `cbor:"2,keyasint,omitempty"`
	DisplayName string `cbor:"3,keyasint,omitempty"`
	Handle      []byte `cbor:"4,keyasint,omitempty"`
	Created     int64  `cbor:"5,keyasint,omitempty"` // Unix nanoseconds, 0 for the zero time
}

// credRecord is a [persistence.Credential] as stored, without its attestation object (under ka/).
type credRecord struct {
	ID                 []byte   `cbor:"1,keyasint,omitempty"`
	CommunityID        string   `cbor:"2,keyasint,omitempty"`
	Username           string   `cbor:"3,keyasint,omitempty"`
	UserHandle         []byte   `cbor:"4,keyasint,omitempty"`
	RPID               string   `cbor:"5,keyasint,omitempty"`
	PublicKey          []byte   `cbor:"6,keyasint,omitempty"`
	Algorithm          int64    `cbor:"7,keyasint,omitempty"`
	AAGUID             []byte   `cbor:"8,keyasint,omitempty"`
	AttestationFormat  string   `cbor:"9,keyasint,omitempty"`
	AttestationType    string   `cbor:"10,keyasint,omitempty"`
	AttestationTrusted bool     `cbor:"11,keyasint,omitempty"`
	Transports         []string `cbor:"12,keyasint,omitempty"`
	Attachment         string   `cbor:"13,keyasint,omitempty"`
	UserPresent        bool     `cbor:"14,keyasint,omitempty"`
	UserVerified       bool     `cbor:"15,keyasint,omitempty"`
	BackupEligible     bool     `cbor:"16,keyasint,omitempty"`
	BackupState        bool     `cbor:"17,keyasint,omitempty"`
	SignCount          uint32   `cbor:"18,keyasint,omitempty"`
	CloneWarning       bool     `cbor:"19,keyasint,omitempty"`
	Created            int64    `cbor:"20,keyasint,omitempty"` // Unix nanoseconds, 0 for the zero time
	LastUsed           int64    `cbor:"21,keyasint,omitempty"` // Unix nanoseconds, 0 for the zero time
	DID                string   `cbor:"22,keyasint,omitempty"`
}

// Times are stored as Unix nanoseconds and read back in UTC: exact for the years 1678 to 2262.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func isJSON(b []byte) bool { return len(b) > 0 && b[0] == '{' }

func encodeUser(u persistence.User) ([]byte, error) {
	return cborEnc.Marshal(userRecord{
		CommunityID: u.CommunityID, Username: u.Username, DisplayName: u.DisplayName, Handle: u.Handle,
		Created: unixNano(u.Created),
	})
}

func decodeUser(b []byte) (persistence.User, error) {
	var u persistence.User
	if isJSON(b) {
		err := json.Unmarshal(b, &u)
		return u, err
	}
	var r userRecord
	if err := cborDec.Unmarshal(b, &r); err != nil {
		return u, err
	}
	return persistence.User{CommunityID: r.CommunityID, Username: r.Username, DisplayName: r.DisplayName, Handle: r.Handle,
		Created: fromUnixNano(r.Created)}, nil
}

// encodeCredential encodes c without its AttestationObject.
func encodeCredential(c persistence.Credential) ([]byte, error) {
	return cborEnc.Marshal(credRecord{
		ID: c.ID, CommunityID: c.CommunityID, Username: c.Username, UserHandle: c.UserHandle, RPID: c.RPID,
		PublicKey: c.PublicKey, Algorithm: c.Algorithm, AAGUID: c.AAGUID,
		AttestationFormat: c.AttestationFormat, AttestationType: c.AttestationType,
		AttestationTrusted: c.AttestationTrusted, Transports: c.Transports, Attachment: c.Attachment,
		UserPresent: c.UserPresent, UserVerified: c.UserVerified, BackupEligible: c.BackupEligible,
		BackupState: c.BackupState, SignCount: c.SignCount, CloneWarning: c.CloneWarning,
		Created: unixNano(c.Created), LastUsed: unixNano(c.LastUsed), DID: c.DID,
	})
}

// decodeCredential decodes a stored credential. Only a JSON record of an earlier version has an
// AttestationObject.
func decodeCredential(b []byte) (persistence.Credential, error) {
	var c persistence.Credential
	if isJSON(b) {
		err := json.Unmarshal(b, &c)
		return c, err
	}
	var r credRecord
	if err := cborDec.Unmarshal(b, &r); err != nil {
		return c, err
	}
	return persistence.Credential{
		ID: r.ID, CommunityID: r.CommunityID, Username: r.Username, UserHandle: r.UserHandle, RPID: r.RPID,
		PublicKey: r.PublicKey, Algorithm: r.Algorithm, AAGUID: r.AAGUID,
		AttestationFormat: r.AttestationFormat, AttestationType: r.AttestationType,
		AttestationTrusted: r.AttestationTrusted, Transports: r.Transports, Attachment: r.Attachment,
		UserPresent: r.UserPresent, UserVerified: r.UserVerified, BackupEligible: r.BackupEligible,
		BackupState: r.BackupState, SignCount: r.SignCount, CloneWarning: r.CloneWarning,
		Created: fromUnixNano(r.Created), LastUsed: fromUnixNano(r.LastUsed), DID: r.DID,
	}, nil
}

// getValue decodes the value under key with decode; a missing key is ErrNotFound.
func getValue[T any](txn *bdb.Txn, key []byte, decode func([]byte) (T, error)) (T, error) {
	var v T
	item, err := txn.Get(key)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return v, persistence.ErrNotFound
	}
	if err != nil {
		return v, err
	}
	err = item.Value(func(b []byte) error {
		v, err = decode(b)
		return err
	})
	return v, err
}

func getUser(txn *bdb.Txn, key []byte) (persistence.User, error) {
	return getValue(txn, key, decodeUser)
}

// getCredential reads a credential without its attestation object (which a JSON record of an
// earlier version still holds: it is left out too, so every read answers the same).
func getCredential(txn *bdb.Txn, id []byte) (persistence.Credential, error) {
	c, err := getStoredCredential(txn, id)
	c.AttestationObject = nil
	return c, err
}

// getStoredCredential reads a credential as stored: with the attestation object only if it is a
// JSON record of an earlier version.
func getStoredCredential(txn *bdb.Txn, id []byte) (persistence.Credential, error) {
	return getValue(txn, credKey(id), decodeCredential)
}

func setUser(txn *bdb.Txn, u persistence.User) error {
	b, err := encodeUser(u)
	if err != nil {
		return err
	}
	return txn.Set(userKey(u.CommunityID, u.Username), b)
}

// setCredential writes c's record (never its attestation object: see AddCredential).
func setCredential(txn *bdb.Txn, c persistence.Credential) error {
	b, err := encodeCredential(c)
	if err != nil {
		return err
	}
	return txn.Set(credKey(c.ID), b)
}
