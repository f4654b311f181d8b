package persistence

import (
	"context"
	"time"
)

// Exporter yields every record a store holds, for `webauthnd migrate` to copy them into
// another store (see [Copy]). It is not part of [Store]: only the backends that can be copied
// from implement it.
//
// An export reads one consistent snapshot and yields, in this order (so that each record's
// dependencies come before it): tenants, communities, licenses, secrets, keyrings, users each
// with all its credentials (attestation objects included), vendor metadata records, the MDS
// BLOB with its entries, and the replay records of sealed requests. What a backend derives
// from those (indexes, the shape tallies, generations) is not exported: the target derives its
// own. A record the backend holds but cannot export fails the export, so that nothing is left
// behind without a word. An error that yield returns ends the export and is returned as is.
type Exporter interface {
	Export(ctx context.Context, yield func(Exported) error) error
}

// Exported is one record of an export. Like [Op], the set is closed: each is a type of this
// package, so that a copy can switch over all of them.
type Exported interface{ exported() }

func (ExportedTenant) exported()       {}
func (ExportedCommunity) exported()    {}
func (ExportedLicense) exported()      {}
func (ExportedSecret) exported()       {}
func (ExportedKeyring) exported()      {}
func (ExportedUser) exported()         {}
func (ExportedVendorRecord) exported() {}
func (ExportedMDS) exported()          {}
func (ExportedReplay) exported()       {}

// ExportedTenant is a tenant with its host names.
type ExportedTenant struct{ Tenant Tenant }

// ExportedCommunity is a community.
type ExportedCommunity struct{ Community Community }

// ExportedLicense is a license (its key's hash: keys are never stored).
type ExportedLicense struct{ License License }

// ExportedSecret is one of the service's secrets, by name.
type ExportedSecret struct {
	Name  string
	Value []byte
}

// ExportedKeyring is a keyring, by name, with its retired keys.
type ExportedKeyring struct {
	Name    string
	Keyring Keyring
}

// ExportedUser is a user with every credential it owns, in the order of their ids, each with
// its AttestationObject.
type ExportedUser struct {
	User        User
	Credentials []Credential
}

// ExportedVendorRecord is a community's vendor metadata record.
type ExportedVendorRecord struct{ Record VendorRecord }

// ExportedMDS is the imported MDS BLOB with its entries, in the BLOB's order.
type ExportedMDS struct {
	Blob    MDSBlob
	Entries []MDSEntry
}

// ExportedReplay is a replay record of a sealed request that has not expired. Only its expiry
// is exported: the record is stored under a digest of its caller's key, from which no
// [RememberRequest] can be made again, so a copy waits until the last one has expired
// before a server uses the target (a request replayed to it earlier would be accepted).
type ExportedReplay struct{ Until time.Time }
