package persistence

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by reads of a record that does not exist.
var ErrNotFound = errors.New("not found")

// Every method that can wait on storage takes a context: a request's deadline and cancellation
// reach the database. A read whose context ends returns the context's error.

// Communities reads tenants and communities.
type Communities interface {
	Tenant(ctx context.Context, id string) (Tenant, error)
	// TenantByDNS returns the tenant that owns a host name (any case; a :port suffix is
	// ignored).
	TenantByDNS(ctx context.Context, host string) (Tenant, error)
	Community(ctx context.Context, id string) (Community, error)
	// CommunityByName returns the community of a tenant with a name. Names are not unique:
	// the first by id wins.
	CommunityByName(ctx context.Context, tenantID, name string) (Community, error)
}

// Users reads users by username or by user handle.
type Users interface {
	User(ctx context.Context, communityID, username string) (User, error)
	UserByHandle(ctx context.Context, communityID string, handle []byte) (User, error)
}

// Credentials reads credentials by id or by owner, each without its AttestationObject (only
// AttestationObjectOf reads that).
type Credentials interface {
	Credential(ctx context.Context, id []byte) (Credential, error)
	// CredentialsOf returns a user's credentials in the order of their ids.
	CredentialsOf(ctx context.Context, communityID, username string) ([]Credential, error)
	// AttestationObjectOf returns the attestation object that the registration of credential
	// id stored: nil when it stored none, ErrNotFound when there is no such credential.
	AttestationObjectOf(ctx context.Context, id []byte) ([]byte, error)
}

// CommunityPasskeys reads a community's users with their passkeys, for `webauthnd passkeys
// export`: one user at a time, so that a community of a million passkeys is never held in
// memory at once.
type CommunityPasskeys interface {
	// PasskeysOf yields each user of a community, in username order, with its credentials (as
	// CredentialsOf returns them: in the order of their ids, without attestation objects), all
	// from one snapshot. Users without a passkey are yielded too (with none). An error that
	// yield returns ends the read and is returned as is; an unknown community yields nothing.
	PasskeysOf(ctx context.Context, communityID string, yield func(User, []Credential) error) error
}

// PasskeyLookups reads what an import checks its lines against, for many lines in one read:
// over PostgreSQL a chunk of 5,000 lines costs one round trip instead of three per line. A
// backend offers it when it can; an importer falls back to Credential, User and UserByHandle.
type PasskeyLookups interface {
	// CredentialsByID returns the stored credentials among ids (as Credential reads them), in
	// no particular order; ids that name none are left out.
	CredentialsByID(ctx context.Context, ids [][]byte) ([]Credential, error)
	// UsersByNameOrHandle returns the users of a community whose username is among usernames or
	// whose handle is among handles, each once, in no particular order.
	UsersByNameOrHandle(ctx context.Context, communityID string, usernames []string, handles [][]byte) ([]User, error)
}

// UserCredentials reads a user with its credentials in one read: what a sign-in's options need
// (over PostgreSQL one round trip instead of two, which keeps a sign-in within its budget of
// four). A backend offers it when it can; ReadUserAndCredentials works with any store.
type UserCredentials interface {
	// UserAndCredentials returns the user of a community by username and its credentials (as
	// CredentialsOf returns them), from one snapshot; ErrNotFound when there is no such user.
	UserAndCredentials(ctx context.Context, communityID, username string) (User, []Credential, error)
}

// ReadUserAndCredentials returns the user of a community by username and its credentials: in
// one read when s offers UserCredentials, else with User and then CredentialsOf.
func ReadUserAndCredentials(ctx context.Context, s interface {
	Users
	Credentials
}, communityID, username string) (User, []Credential, error) {
	if uc, ok := s.(UserCredentials); ok {
		return uc.UserAndCredentials(ctx, communityID, username)
	}
	u, err := s.User(ctx, communityID, username)
	if err != nil {
		return User{}, nil, err
	}
	creds, err := s.CredentialsOf(ctx, communityID, username)
	if err != nil {
		return User{}, nil, err
	}
	return u, creds, nil
}

// SignInSubject is what the sign-in options for a username need, whether or not it names a
// user: the user with its credentials, and the community's most common shape, from which the
// decoy passkeys of an unknown username (or of a user without passkeys) are made.
type SignInSubject struct {
	// Found says whether the username names a user; User and Credentials (as CredentialsOf
	// returns them) are zero when it does not.
	Found       bool
	User        User
	Credentials []Credential
	// CommonShape is what Shapes.CommonShape returns: nil when no user of the community has
	// a passkey.
	CommonShape []CredentialShape
}

// SignInSubjects reads a sign-in's subject: in one read from one snapshot (over PostgreSQL one
// round trip), which reads the same records whether or not the username names a user, so that
// how long the options take does not tell whether an account exists (a separate CommonShape
// read for an unknown username was one more round trip than a known one costs).
type SignInSubjects interface {
	// SignInSubject returns the subject of a sign-in by username in a community; an error
	// only when the store cannot answer (an unknown username is Found false, not an error).
	SignInSubject(ctx context.Context, communityID, username string) (SignInSubject, error)
}

// Licenses finds licenses.
type Licenses interface {
	// LicenseByKey finds the license of a key by its hash, compared in constant time.
	LicenseByKey(ctx context.Context, key string) (License, error)
	// AllLicenses returns every license (never a key: only hashes are stored).
	AllLicenses(ctx context.Context) ([]License, error)
}

// Secrets reads the service's own secrets (the decoy secret, the challenge MAC key).
type Secrets interface {
	Secret(ctx context.Context, name string) ([]byte, error)
}

// Keyrings reads the service's keyrings (envelope and token signing keys). KeyringGeneration
// changes after every committed change of a keyring, made by this process or (over a shared
// database) any other, so that a cache of keys can check with one atomic load whether it is
// still current.
type Keyrings interface {
	Keyring(ctx context.Context, name string) (Keyring, error)
	KeyringGeneration() uint64
}

// Shapes reads what a community's users look like from outside, so that the sign-in options of
// an unknown username can look the same.
type Shapes interface {
	// CommonShape returns the shapes of the passkeys of the community's most common kind of
	// user (how many passkeys, which id lengths and transports), in no particular order;
	// ErrNotFound when no user of the community has a passkey.
	CommonShape(ctx context.Context, communityID string) ([]CredentialShape, error)
}

// VendorMetadata reads the communities' vendor metadata records. VendorGeneration changes after
// every committed write of a record (by any process writing the store), so that a cache of
// records, or of what was derived from them such as parsed statements, can check with one
// atomic load whether it is still current.
type VendorMetadata interface {
	// VendorRecord returns a community's record for an AAGUID (in any case; see
	// CanonicalAAGUID), or ErrNotFound.
	VendorRecord(ctx context.Context, communityID, aaguid string) (VendorRecord, error)
	// VendorRecordsOf returns a community's records for the given AAGUIDs (every record when
	// none is given), in AAGUID order; AAGUIDs without a record are left out.
	VendorRecordsOf(ctx context.Context, communityID string, aaguids []string) ([]VendorRecord, error)
	// AllVendorRecords is VendorRecordsOf over every community, in community then AAGUID order.
	AllVendorRecords(ctx context.Context, aaguids []string) ([]VendorRecord, error)
	// VendorGeneration changes after every committed batch that wrote a record.
	VendorGeneration() uint64
}

// MDS reads the global metadata entries of the last imported BLOB. Each read sees the entries
// of one BLOB, never a mix of two imports.
type MDS interface {
	// CurrentMDSBlob describes the imported BLOB, or returns ErrNotFound before the first import.
	CurrentMDSBlob(ctx context.Context) (MDSBlob, error)
	// MDSEntryByAAGUID returns the entry of an AAGUID (canonical form, any case), or ErrNotFound.
	MDSEntryByAAGUID(ctx context.Context, aaguid string) (MDSEntry, error)
	// MDSEntryByKeyIdentifier returns the entry that lists an attestation certificate key
	// identifier (hex, any case), or ErrNotFound: how U2F authenticators are found.
	MDSEntryByKeyIdentifier(ctx context.Context, keyID string) (MDSEntry, error)
	// MDSEntries returns the BLOB and all its entries, in the BLOB's order, from one snapshot
	// (ErrNotFound before the first import): what a cache loads when the generation changed.
	MDSEntries(ctx context.Context) (MDSBlob, []MDSEntry, error)
	// MDSGeneration is the Generation of the imported BLOB (0 before the first import), read
	// from memory and kept current when another process imports (see the backends).
	MDSGeneration() uint64
}

// Writer applies a batch of operations in one durable transaction; see [Op] for the contract.
// The context bounds the whole batch: the writer actor, which groups the writes of many
// requests, gives it a deadline of its own rather than any one request's.
type Writer interface {
	Apply(ctx context.Context, ops []Op) []Result
}

// ApplyOne runs op through w in a batch of its own and returns its value or its refusal: what
// start-up, the management commands and tests write outside the writer actor.
func ApplyOne(ctx context.Context, w Writer, op Op) (any, error) {
	r := w.Apply(ctx, []Op{op})[0]
	return r.Value, r.Err
}

// MDSImporter replaces the global metadata entries. It is a method of its own, not an Op: an
// import spans many transactions. A BLOB whose Number is not above the stored one is refused
// (409) unless force is set; entries are checked with ValidateMDSEntry, and no two may share an
// AAGUID or a key identifier. Readers see the old entries until the import switches to the new
// ones in one last small transaction, so a failure at any point before it, a crash included,
// leaves the old set in force. It returns the stored MDSBlob with its new Generation.
type MDSImporter interface {
	ReplaceMDS(ctx context.Context, b MDSBlob, entries []MDSEntry, force bool) (MDSBlob, error)
}

// Importer writes passkeys in bulk, for migrations and benchmark stores: see [PlanImport] for
// what it accepts. Every record is checked before the first is written; a failure in the
// middle may leave the users of the transactions before it written (import those again
// without them).
type Importer interface {
	Import(ctx context.Context, users []User, creds []Credential) error
}

// Ceremony is what a node needs to finish a ceremony that another node started: the state the
// actor held, opaque to the store (the actors encode it), under the ceremony's id, until it
// expires. Over a shared database any node may finish any ceremony; in an embedded store only
// the one process does, and it keeps ceremonies in memory only.
type Ceremony struct {
	// ID names the ceremony (derived from its challenge).
	ID string
	// CommunityID is the community whose supervisor counts the ceremony.
	CommunityID string
	// State is the ceremony's state as the actors encoded it.
	State []byte
	// Expires is when the ceremony stops accepting a result; a swept row is gone after it.
	Expires time.Time
}

// Ceremonies keeps the live ceremonies of a cluster of nodes.
type Ceremonies interface {
	// PutCeremony stores a ceremony when its options are issued.
	PutCeremony(ctx context.Context, c Ceremony) error
	// TakeCeremony removes the ceremony with id and returns it, atomically: of any number of
	// concurrent takes of one ceremony, across nodes, exactly one gets it; the others, and a
	// take after it expired, get ErrNotFound.
	TakeCeremony(ctx context.Context, id string) (Ceremony, error)
	// CeremonyExists reports whether the ceremony with id is still stored (not taken, not
	// expired): how the node that issued a ceremony learns that another node finished it.
	CeremonyExists(ctx context.Context, id string) (bool, error)
}

// Store is everything a backend offers, what cmd opens by URL and hands out piece by piece:
// each consumer takes the small interfaces above that it uses.
type Store interface {
	Communities
	Users
	Credentials
	CommunityPasskeys
	Licenses
	Secrets
	Keyrings
	Shapes
	SignInSubjects
	VendorMetadata
	MDS
	Writer
	MDSImporter
	Importer
	// Empty reports whether the store holds no community yet.
	Empty(ctx context.Context) (bool, error)
	// Ping checks that the store answers a read.
	Ping(ctx context.Context) error
	// CheckSpace returns a storage_full error while the store refuses writes that are not
	// essential for want of space (see [Essential]), and nil otherwise.
	CheckSpace(ctx context.Context) error
	// Close releases the store; nothing may use it afterwards.
	Close() error
}
