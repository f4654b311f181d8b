package persistence

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/webauthnd/webauthnd/messages"
)

// Op is one write of a batch: a plain value that says what to change, which every backend
// applies in its own transaction. The set of ops is closed (each is a type of this package), so
// that a backend can switch over all of them and the contract suite can test each one.
//
// # The batch contract
//
// [Writer.Apply] runs a batch of ops in one transaction and returns one [Result] per op, in
// order. Every backend keeps these rules, and persistence/storetest checks them:
//
//   - An op checks its conditions before it writes. A refused op (its Result has an Err)
//     leaves nothing behind, with one exception: RecordSignIn's refusal of a counter that went
//     backwards sets the credential's clone warning, which is the point of that refusal.
//   - A refused op does not stop the others: they commit, in the same transaction. (On
//     PostgreSQL each op runs under a SAVEPOINT that a refusal rolls back to.)
//   - Each op sees the writes of the ops before it in the batch.
//   - When the transaction cannot commit, every op of the batch fails with an internal error
//     and nothing of the batch is stored.
//   - A Result without Err is durable: it was committed, and synced, before Apply returned.
//   - An op that the store refuses for want of space (Badger below its free-space reserve, see
//     [Essential]) gets storage_full and leaves nothing behind; the others still run.
//
// Refusals are *messages.Error values with the codes the wire shows (conflict, not_found,
// invalid_request, ...); storage failures are CodeInternal errors whose cause is logged, never
// sent.
type Op interface{ op() }

func (PutTenant) op()           {}
func (PutCommunity) op()        {}
func (PatchCommunity) op()      {}
func (PutLicense) op()          {}
func (RevokeLicense) op()       {}
func (PutSecretIfAbsent) op()   {}
func (RotateKey) op()           {}
func (RememberRequest) op()     {}
func (AddCredential) op()       {}
func (RecordSignIn) op()        {}
func (LinkCredential) op()      {}
func (UnlinkCredential) op()    {}
func (RemoveCredentials) op()   {}
func (PutVendorMetadata) op()   {}
func (PatchVendorMetadata) op() {}

// Result is the outcome of one Op: its value, or the reason it was refused.
type Result struct {
	Value any
	Err   error
}

// ChangesConfig reports whether op changes what stores and nodes cache as configuration:
// tenants, communities, licenses and keyrings. After a batch with one, every cache of them (in
// this process and, over a shared database, in every node) must be read again.
func ChangesConfig(op Op) bool {
	switch op.(type) {
	case PutTenant, PutCommunity, PatchCommunity, PutLicense, RevokeLicense, RotateKey:
		return true
	}
	return false
}

// WritesVendorMetadata reports whether op writes a vendor metadata record: after a batch with
// one, the vendor generation moves on (see [VendorMetadata]).
func WritesVendorMetadata(op Op) bool {
	switch op.(type) {
	case PutVendorMetadata, PatchVendorMetadata:
		return true
	}
	return false
}

// Essential reports whether op still runs when storage is short: what a sign-in writes (its
// counter, and the replay record of a sealed request), which is small and keeps users signing
// in, and what an operator or a relying party needs most when something is wrong: license
// revocation and the removal of passkeys (a stolen one must stop signing in). Any other op,
// including every op added later, is refused below the reserve.
func Essential(op Op) bool {
	switch op.(type) {
	case RecordSignIn, RememberRequest, RevokeLicense, RemoveCredentials:
		return true
	}
	return false
}

// Refusals that more than one op, and every backend, return.
var (
	// ErrCounterRegression refuses a sign-in whose counter did not move forward.
	ErrCounterRegression = messages.Errorf(messages.CodeCounterRegression,
		"the authenticator's signature counter went backwards: the credential may be cloned")
	// ErrStartAgain refuses a first registration that another one of the same username
	// overtook.
	ErrStartAgain = messages.Errorf(messages.CodeConflict,
		"another registration of this username finished first; start the registration again")
	// ErrCredentialExists refuses a credential id that is stored already, whoever owns it.
	ErrCredentialExists = messages.Errorf(messages.CodeCredentialExists, "this credential is already registered")
	// ErrCredentialUnknown refuses a sign-in record of a credential that is not stored.
	ErrCredentialUnknown = messages.Errorf(messages.CodeCredentialUnknown, "the credential is not registered")
	// ErrPasskeyNotFound, ErrLinkNotFound and ErrNothingToRemove are the not_found refusals of
	// the link ops.
	ErrPasskeyNotFound = messages.Errorf(messages.CodeNotFound, "the user has no such passkey")
	ErrLinkNotFound    = messages.Errorf(messages.CodeNotFound, "that passkey is not linked to that DID")
	ErrNothingToRemove = messages.Errorf(messages.CodeNotFound, "no passkey matches that identifier")
	// ErrLinkedElsewhere refuses to link a passkey that is linked to another DID.
	ErrLinkedElsewhere = messages.Errorf(messages.CodeConflict, "the passkey is linked to another DID: unlink it first")
	// ErrRequestReplayed refuses a sealed request whose uuid its caller key used before.
	ErrRequestReplayed = messages.Errorf(messages.CodeRequestReplayed, "this requestid was already used")
	// ErrLicenseIDExists refuses a PutLicense (without Rekey) of an id that is taken.
	ErrLicenseIDExists = messages.Errorf(messages.CodeConflict, "license id exists")
	errNameThePasskeys = invalid("name the passkeys by a fidoKeyHash or a DID")
	errInvalidDID      = invalid("a DID starts with did: and is 5 to 512 bytes without control characters")
)

// StoreInternal wraps a storage failure: clients are told "internal error", the cause is logged.
func StoreInternal(err error) error {
	return messages.Wrap(messages.CodeInternal, "internal error", err)
}

// CommunityExists refuses the creation of a community that exists.
func CommunityExists(id string) error {
	return messages.Errorf(messages.CodeConflict, fmt.Sprintf("community %q exists", id))
}

// CommunityMissing refuses a change of a community that does not exist.
func CommunityMissing(id string) error {
	return messages.Errorf(messages.CodeNotFound, fmt.Sprintf("community %q does not exist", id))
}

// CommunityUnknown refuses a record that names a community that does not exist.
func CommunityUnknown(id string) error {
	return messages.Errorf(messages.CodeCommunityUnknown, fmt.Sprintf("community %q does not exist", id))
}

// TenantMissing refuses a license of a tenant that does not exist.
func TenantMissing(id string) error {
	return messages.Errorf(messages.CodeNotFound, fmt.Sprintf("tenant %q does not exist", id))
}

// HostTaken refuses a tenant host name that another tenant owns.
func HostTaken(host string) error {
	return messages.Errorf(messages.CodeConflict, fmt.Sprintf("host %q belongs to another tenant", host))
}

// LicenseMissing refuses the revocation of an unknown license.
func LicenseMissing(id string) error {
	return messages.Errorf(messages.CodeNotFound, fmt.Sprintf("no license %q", id))
}

// VendorRecordExists refuses a second record of a community for one AAGUID.
func VendorRecordExists(aaguid string) error {
	return messages.Errorf(messages.CodeConflict,
		fmt.Sprintf("the community already has a record for AAGUID %s: change it with PATCH", aaguid))
}

// VendorRecordMissing refuses a change of a record that does not exist.
func VendorRecordMissing(aaguid string) error {
	return messages.Errorf(messages.CodeNotFound, fmt.Sprintf("the community has no record for AAGUID %s", aaguid))
}

// Check runs the checks of op that need no store: the ones every backend makes first, so that
// both refuse the same malformed op with the same error. A nil error does not mean the op will
// succeed: the conditions on stored records are each backend's to check.
func Check(op Op) error {
	switch o := op.(type) {
	case PutCommunity:
		if err := ValidateCommunity(o.Community); err != nil {
			return err
		}
		if o.Create && strings.EqualFold(o.Community.ID, AnyCommunity) {
			// Only at creation: a community of that name made before it was reserved keeps working.
			return invalid("community id %q is reserved: the vendor metadata routes read %q as every community of the license", o.Community.ID, AnyCommunity)
		}
	case PutLicense:
		return ValidateLicense(o.License)
	case AddCredential:
		c := o.Credential
		if c.Username == "" || len(c.Username) > MaxUsernameLength || strings.ContainsRune(c.Username, 0) || !ValidID(c.CommunityID) {
			return invalid("a username is 1 to 256 bytes without NUL, in a valid community")
		}
		if len(c.UserHandle) == 0 || len(c.UserHandle) > MaxHandleLength || len(c.ID) == 0 || len(c.ID) > MaxCredentialIDLength {
			return invalid("a user handle is 1 to %d bytes and a credential id 1 to %d", MaxHandleLength, MaxCredentialIDLength)
		}
	case LinkCredential:
		if !ValidDID(o.DID) {
			return errInvalidDID
		}
	case RemoveCredentials:
		if (len(o.FidoKeyHash) > 0) == (o.DID != "") || (o.DID != "" && !ValidDID(o.DID)) {
			return errNameThePasskeys
		}
	case PutVendorMetadata:
		return ValidateVendorRecord(o.Record)
	case PatchVendorMetadata:
		if _, err := CanonicalAAGUID(o.AAGUID); err != nil {
			return err
		}
	}
	return nil
}

// PutTenant creates the tenant when it does not exist and gives it the host names in DNS
// (refusing a host that another tenant owns); it returns the stored Tenant.
type PutTenant struct {
	Tenant Tenant   `json:"tenant"`
	DNS    []string `json:"dns,omitempty"`
}

// PutCommunity creates (Create) or replaces (!Create) a community, creating its tenant when new.
// Creating one that exists, or updating one that does not, is refused.
type PutCommunity struct {
	Community Community `json:"community"`
	Create    bool      `json:"create"`
	// TenantDNS are host names to add to the community's tenant.
	TenantDNS []string `json:"tenantDns,omitempty"`
}

// PatchCommunity changes the fields it sets of an existing community; the result must still be
// a valid community.
type PatchCommunity struct {
	ID               string   `json:"id"`
	TenantID         string   `json:"tenantId,omitempty"`
	Name             string   `json:"name,omitempty"`
	RPIDs            []string `json:"rpIds,omitempty"`
	Origins          []string `json:"origins,omitempty"`
	TopOrigins       []string `json:"topOrigins,omitempty"`
	UserVerification string   `json:"userVerification,omitempty"`
	BlockClones      *bool    `json:"blockClones,omitempty"`
	AttestationTrust string   `json:"attestationTrust,omitempty"`
	TenantDNS        []string `json:"tenantDns,omitempty"`
}

// PutLicense stores a new license (by the hash of its key).
type PutLicense struct {
	License License `json:"license"`
	// Rekey replaces the license of the same id, if there is one, instead of refusing it: its
	// old key stops working in the same transaction. The demo's license (id "demo") is re-keyed
	// so at every start, its key kept in memory only.
	Rekey bool `json:"rekey,omitempty"`
}

// RevokeLicense disables a license by id; a disabled license answers 401 from then on.
type RevokeLicense struct {
	ID string `json:"id"`
}

// PutSecretIfAbsent stores a service secret unless one exists; it returns the stored value,
// so two starts that race both end with the same key.
type PutSecretIfAbsent struct {
	Name  string
	Value []byte
}

// RotateKey makes New the current key of the keyring Name: the current one is retired at
// New.Created, and keys retired more than Keep ago are dropped. With OnlyIfAbsent it only
// creates a keyring that does not exist yet (two first starts then agree on one key). It
// returns the stored Keyring.
type RotateKey struct {
	Name         string        `json:"name"`
	New          KeyRecord     `json:"new"`
	Keep         time.Duration `json:"keep"`
	OnlyIfAbsent bool          `json:"onlyIfAbsent"`
}

// RememberRequest records a sealed request's uuid from a caller key until Until (a Badger TTL,
// so the record expires on its own and survives a restart until then). A uuid already
// recorded for that caller is refused.
type RememberRequest struct {
	Caller []byte
	UUID   string
	Until  time.Time
}

// AddCredential stores a new passkey: its record, its owner index and (under a key of its own,
// as only [Store.AttestationObjectOf] reads it) its attestation object; it returns the
// Credential as given. Its user is the one the credential names (CommunityID, Username,
// UserHandle), and the registration that creates a user is the one that stores its first
// passkey, so that no user exists without one:
//
//   - the username is new to the community: the user is created with the credential's handle
//     and DisplayName;
//   - the user exists with the credential's handle: the passkey is added;
//   - the user exists with another handle (another first registration of the username
//     finished first): 409 conflict, nothing written.
//
// A credential id that exists anywhere in the store is refused, whoever owns it. The
// community's shape tally (shapes.go) counts the user's new shape in the same transaction.
type AddCredential struct {
	Credential Credential
	// DisplayName is the new user's display name; unused when the user exists.
	DisplayName string
}

// RecordSignIn stores what a verified assertion told about a credential. It re-reads the
// credential, so concurrent sign-ins of one passkey never lose an update, and refuses a counter
// that is not above the stored one (when either is non-zero): that refusal sets the credential's
// clone warning, the one write a refused sign-in makes.
type RecordSignIn struct {
	ID           []byte
	Counter      uint32
	UserVerified bool
	BackupState  bool
	At           time.Time
}

// LinkCredential links a user's passkey, named by its fidoKeyHash, to a DID; it returns the
// linked Credential. Linking again to the same DID changes nothing; a passkey linked to another
// DID is a conflict (unlink it first).
type LinkCredential struct {
	CommunityID string
	Username    string
	FidoKeyHash []byte
	DID         string
}

// UnlinkCredential removes the link of a user's passkey to a DID; it returns the Credential.
// A passkey that is not linked to that DID is not found.
type UnlinkCredential struct {
	CommunityID string
	Username    string
	FidoKeyHash []byte
	DID         string
}

// RemoveCredentials removes passkeys of a community: the one a fidoKeyHash names, or every
// passkey linked to a DID; with a Username, only that user's. It returns how many it removed;
// none is not found. Each passkey goes with all of its keys (record, attestation object, owner,
// fidoKeyHash and DID indexes) in the batch's one transaction, so a sign-in that races the
// removal either committed before it or finds no credential.
type RemoveCredentials struct {
	CommunityID string
	Username    string // optional
	FidoKeyHash []byte // or
	DID         string
}

// PutVendorMetadata creates a community's record for an AAGUID; it returns the stored
// VendorRecord. The community must exist; an AAGUID the community already has a record for is
// refused (409 conflict: change it with PatchVendorMetadata). An empty ID gets a fresh one, a
// zero UpdatedAt the time of the write.
type PutVendorMetadata struct {
	Record VendorRecord `json:"record"`
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

// Onto returns the PutCommunity that replaces c, the stored community, with the fields o sets:
// what every backend applies, after checking it, so that both merge a patch alike.
func (o PatchCommunity) Onto(c Community) PutCommunity {
	if o.TenantID != "" {
		c.TenantID = o.TenantID
	}
	if o.Name != "" {
		c.Name = o.Name
	}
	if o.RPIDs != nil {
		c.RPIDs = o.RPIDs
	}
	if o.Origins != nil {
		c.Origins = o.Origins
	}
	if o.TopOrigins != nil {
		c.TopOrigins = o.TopOrigins
	}
	if o.UserVerification != "" {
		c.UserVerification = o.UserVerification
	}
	if o.AttestationTrust != "" {
		c.AttestationTrust = o.AttestationTrust
	}
	if o.BlockClones != nil {
		c.BlockClones = *o.BlockClones
	}
	return PutCommunity{Community: c, TenantDNS: o.TenantDNS}
}

// Onto returns ring with o's key made current: the current key is retired at New.Created, and
// keys retired more than Keep before it are dropped. (OnlyIfAbsent is the backends' to honour:
// it needs to know whether the ring exists.)
func (o RotateKey) Onto(ring Keyring) Keyring {
	keys := []KeyRecord{o.New}
	for _, k := range ring.Keys {
		if k.Retired.IsZero() {
			k.Retired = o.New.Created
		}
		if o.New.Created.Sub(k.Retired) <= o.Keep {
			keys = append(keys, k)
		}
	}
	return Keyring{Keys: keys}
}

// Onto returns r, the stored record, with the members o sets, stamped with UpdatedBy and At (the
// time of the call when At is zero). The result still has to pass ValidateVendorRecord.
func (o PatchVendorMetadata) Onto(r VendorRecord) VendorRecord {
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
	return r
}

// Select picks, of the credentials found by o's fidoKeyHash or DID, those o removes (of its
// community and, when it names one, of its user): their owners in the order found, and their
// ids. No id means nothing to remove (ErrNothingToRemove).
func (o RemoveCredentials) Select(found []Credential) (owners []string, gone map[string]bool) {
	gone = map[string]bool{}
	for _, c := range found {
		if c.CommunityID != o.CommunityID || (o.Username != "" && c.Username != o.Username) {
			continue
		}
		if !slices.Contains(owners, c.Username) {
			owners = append(owners, c.Username)
		}
		gone[string(c.ID)] = true
	}
	return owners, gone
}
