package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
)

// Op is one write of a batch. An op checks its conditions before it writes, so an op that fails
// leaves nothing behind (but for the clone warning of a counter regression, which is the point
// of that refusal).
type Op interface {
	apply(txn *badger.Txn) (any, error)
}

// configOp marks the ops that change communities, tenants or licenses: after a batch with one,
// the store's cache of them is cleared.
type configOp interface{ changesConfig() }

func (PutTenant) changesConfig()      {}
func (PutCommunity) changesConfig()   {}
func (PatchCommunity) changesConfig() {}
func (PutLicense) changesConfig()     {}
func (RevokeLicense) changesConfig()  {}

// Result is the outcome of one Op: its value, or the reason it was refused.
type Result struct {
	Value any
	Err   error
}

// Apply runs ops in one synced transaction and returns one Result per op. Ops see the writes of
// the ops before them in the same batch. When the commit itself fails, every op fails.
//
// While the filesystem's free space is below the reserve, the ops it does not admit (see
// space.go) are refused with storage_full and leave nothing behind; the others still run.
func (s *Store) Apply(ops []Op) []Result {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	results := make([]Result, len(ops))
	run := make([]int, 0, len(ops)) // the ops admitted, by index
	space := s.space.read()
	for i, op := range ops {
		if admits(space.level, op) {
			run = append(run, i)
		} else {
			results[i] = Result{Err: space.refusal()}
		}
	}
	if len(run) == 0 {
		return results
	}
	for attempt := 0; ; attempt++ {
		txn := s.db.NewTransaction(true)
		for _, i := range run {
			v, err := ops[i].apply(txn)
			results[i] = Result{Value: v, Err: err}
		}
		err := txn.Commit()
		if errors.Is(err, badger.ErrConflict) && attempt < 10 {
			continue
		}
		s.afterCommit(ops, run)
		if err != nil {
			for _, i := range run {
				results[i] = Result{Err: errStoreInternal(fmt.Errorf("commit: %w", err))}
			}
		}
		return results
	}
}

// afterCommit invalidates what the store caches, or lets readers cache, of the records a batch
// ran (ops[i] for i in run): the config cache (communities, licenses) and the vendor metadata generation. It runs
// whether or not the commit succeeded: a needless invalidation costs one re-read.
func (s *Store) afterCommit(ops []Op, run []int) {
	var config, vendor bool
	for _, i := range run {
		_, c := ops[i].(configOp)
		_, v := ops[i].(vendorOp)
		config, vendor = config || c, vendor || v
	}
	if config {
		s.configGen.Add(1)
		s.config.Clear()
	}
	if vendor {
		s.vendorGen.Add(1)
	}
}

// ApplyOne runs a single op in its own synced transaction.
func (s *Store) ApplyOne(op Op) (any, error) {
	r := s.Apply([]Op{op})[0]
	return r.Value, r.Err
}

// PutTenant creates the tenant when it does not exist and gives it the host names in DNS
// (refusing a host that another tenant owns); it returns the stored Tenant.
type PutTenant struct {
	Tenant Tenant   `json:"tenant"`
	DNS    []string `json:"dns,omitempty"`
}

func (o PutTenant) apply(txn *badger.Txn) (any, error) {
	var t Tenant
	err := getJSON(txn, tenantKey(o.Tenant.ID), &t)
	switch {
	case errors.Is(err, ErrNotFound):
		t = o.Tenant
		t.DNS = nil
		if t.Created.IsZero() {
			t.Created = time.Now().UTC()
		}
	case err != nil:
		return nil, errStoreInternal(err)
	}
	// Check every host before writing any, so a refusal claims none.
	var claim []string
	for _, raw := range o.DNS {
		host, err := CanonicalHost(raw)
		if err != nil {
			return nil, err
		}
		item, err := txn.Get(tenantDNSKey(host))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if !slices.Contains(claim, host) {
				claim = append(claim, host)
			}
		case err != nil:
			return nil, errStoreInternal(err)
		default:
			owner, err := item.ValueCopy(nil)
			if err != nil {
				return nil, errStoreInternal(err)
			}
			if string(owner) != t.ID {
				return nil, messages.Errorf(messages.CodeConflict, fmt.Sprintf("host %q belongs to another tenant", host))
			}
		}
	}
	for _, host := range claim {
		if err := txn.Set(tenantDNSKey(host), []byte(t.ID)); err != nil {
			return nil, errStoreInternal(err)
		}
		t.DNS = append(t.DNS, host)
	}
	if err := setJSON(txn, tenantKey(t.ID), t); err != nil {
		return nil, errStoreInternal(err)
	}
	return t, nil
}

// PutCommunity creates (Create) or replaces (!Create) a community, creating its tenant when new.
// Creating one that exists, or updating one that does not, is refused.
type PutCommunity struct {
	Community Community `json:"community"`
	Create    bool      `json:"create"`
	// TenantDNS are host names to add to the community's tenant.
	TenantDNS []string `json:"tenantDns,omitempty"`
}

func (o PutCommunity) apply(txn *badger.Txn) (any, error) {
	c := o.Community
	if err := ValidateCommunity(c); err != nil {
		return nil, err
	}
	if o.Create && strings.EqualFold(c.ID, AnyCommunity) {
		// Only at creation: a community of that name made before it was reserved keeps working.
		return nil, invalid("community id %q is reserved: the vendor metadata routes read %q as every community of the license", c.ID, AnyCommunity)
	}
	var old Community
	err := getJSON(txn, communityKey(c.ID), &old)
	switch {
	case err == nil && o.Create:
		return nil, messages.Errorf(messages.CodeConflict, fmt.Sprintf("community %q exists", c.ID))
	case errors.Is(err, ErrNotFound) && !o.Create:
		return nil, messages.Errorf(messages.CodeNotFound, fmt.Sprintf("community %q does not exist", c.ID))
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, errStoreInternal(err)
	}
	now := time.Now().UTC()
	c.Created, c.Updated = now, now
	if !o.Create {
		c.Created = old.Created
	}
	if _, err := (PutTenant{Tenant: Tenant{ID: c.TenantID, Name: c.TenantID}, DNS: o.TenantDNS}).apply(txn); err != nil {
		return nil, err
	}
	if err := setJSON(txn, communityKey(c.ID), c); err != nil {
		return nil, errStoreInternal(err)
	}
	return c, nil
}

// PutLicense stores a new license (by the hash of its key).
type PutLicense struct {
	License License `json:"license"`
	// Rekey replaces the license of the same id, if there is one, instead of refusing it: its
	// old key stops working in the same transaction. The demo's license (id "demo") is re-keyed
	// so at every start, its key kept in memory only.
	Rekey bool `json:"rekey,omitempty"`
}

func (o PutLicense) apply(txn *badger.Txn) (any, error) {
	l := o.License
	if err := ValidateLicense(l); err != nil {
		return nil, err
	}
	if l.CommunityID != "" {
		if ok, err := exists(txn, communityKey(l.CommunityID)); err != nil || !ok {
			return nil, messages.Errorf(messages.CodeCommunityUnknown, fmt.Sprintf("community %q does not exist", l.CommunityID))
		}
	}
	if l.TenantID != "" {
		if ok, err := exists(txn, tenantKey(l.TenantID)); err != nil || !ok {
			return nil, messages.Errorf(messages.CodeNotFound, fmt.Sprintf("tenant %q does not exist", l.TenantID))
		}
	}
	item, err := txn.Get(licenseIDKey(l.ID))
	switch {
	case err == nil && !o.Rekey:
		return nil, messages.Errorf(messages.CodeConflict, "license id exists")
	case err == nil:
		old, err := item.ValueCopy(nil)
		if err != nil {
			return nil, errStoreInternal(err)
		}
		if err := txn.Delete(licenseKey(old)); err != nil {
			return nil, errStoreInternal(err)
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return nil, errStoreInternal(err)
	}
	if err := setJSON(txn, licenseKey(l.KeyHash), l); err != nil {
		return nil, errStoreInternal(err)
	}
	if err := txn.Set(licenseIDKey(l.ID), l.KeyHash); err != nil {
		return nil, errStoreInternal(err)
	}
	return l, nil
}

// PutSecretIfAbsent stores a service secret unless one exists; it returns the stored value,
// so two starts that race both end with the same key.
type PutSecretIfAbsent struct {
	Name  string
	Value []byte
}

func (o PutSecretIfAbsent) apply(txn *badger.Txn) (any, error) {
	item, err := txn.Get(secretKey(o.Name))
	if err == nil {
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, errStoreInternal(err)
		}
		return v, nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errStoreInternal(err)
	}
	if err := txn.Set(secretKey(o.Name), o.Value); err != nil {
		return nil, errStoreInternal(err)
	}
	return o.Value, nil
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

// errStartAgain refuses a first registration that another one of the same username overtook.
var errStartAgain = messages.Errorf(messages.CodeConflict,
	"another registration of this username finished first; start the registration again")

func (o AddCredential) apply(txn *badger.Txn) (any, error) {
	c := o.Credential
	if c.Username == "" || len(c.Username) > 256 || strings.ContainsRune(c.Username, 0) || !ValidID(c.CommunityID) {
		return nil, invalid("a username is 1 to 256 bytes without NUL, in a valid community")
	}
	if len(c.UserHandle) == 0 || len(c.UserHandle) > maxHandleLength || len(c.ID) == 0 || len(c.ID) > maxCredentialIDLength {
		return nil, invalid("a user handle is 1 to %d bytes and a credential id 1 to %d", maxHandleLength, maxCredentialIDLength)
	}
	if ok, err := exists(txn, credKey(c.ID)); err != nil {
		return nil, errStoreInternal(err)
	} else if ok {
		return nil, messages.Errorf(messages.CodeCredentialExists, "this credential is already registered")
	}
	var before []Credential // the user's passkeys before this one
	u, err := getUser(txn, userKey(c.CommunityID, c.Username))
	switch {
	case errors.Is(err, ErrNotFound):
		if ok, err := exists(txn, handleKey(c.CommunityID, c.UserHandle)); err != nil {
			return nil, errStoreInternal(err)
		} else if ok {
			// Another user holds the handle: only imported data can do that (ceremonies draw
			// 32 random bytes).
			return nil, errStartAgain
		}
		u = User{CommunityID: c.CommunityID, Username: c.Username, DisplayName: o.DisplayName,
			Handle: c.UserHandle, Created: time.Now().UTC()}
		if err := setUser(txn, u); err != nil {
			return nil, errStoreInternal(err)
		}
		if err := txn.Set(handleKey(c.CommunityID, c.UserHandle), []byte(c.Username)); err != nil {
			return nil, errStoreInternal(err)
		}
	case err != nil:
		return nil, errStoreInternal(err)
	case !bytes.Equal(u.Handle, c.UserHandle):
		return nil, errStartAgain
	default:
		if before, err = credentialsOf(txn, c.CommunityID, c.Username); err != nil {
			return nil, errStoreInternal(err)
		}
	}
	if err := writeCredential(txn, c); err != nil {
		return nil, errStoreInternal(err)
	}
	var from []byte
	if len(before) > 0 {
		from = userShape(before)
	}
	if err := moveUserShape(txn, c.CommunityID, from, userShape(append(before, c))); err != nil {
		return nil, errStoreInternal(err)
	}
	return c, nil
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

// ErrCounterRegression refuses a sign-in whose counter did not move forward.
var ErrCounterRegression = messages.Errorf(messages.CodeCounterRegression,
	"the authenticator's signature counter went backwards: the credential may be cloned")

func (o RecordSignIn) apply(txn *badger.Txn) (any, error) {
	c, err := getStoredCredential(txn, o.ID)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, messages.Errorf(messages.CodeCredentialUnknown, "the credential is not registered")
		}
		return nil, errStoreInternal(err)
	}
	if (o.Counter != 0 || c.SignCount != 0) && o.Counter <= c.SignCount {
		if !c.CloneWarning {
			c.CloneWarning = true
			if err := rewriteCredential(txn, &c); err != nil {
				return nil, errStoreInternal(err)
			}
		}
		c.AttestationObject = nil
		return c, ErrCounterRegression
	}
	c.SignCount = o.Counter
	c.UserVerified = c.UserVerified || o.UserVerified
	c.BackupState = o.BackupState
	c.LastUsed = o.At
	if err := rewriteCredential(txn, &c); err != nil {
		return nil, errStoreInternal(err)
	}
	c.AttestationObject = nil
	return c, nil
}

// writeCredential writes the keys of a new credential: its record, its attestation object when
// it has one, and its owner index.
func writeCredential(txn *badger.Txn, c Credential) error {
	if err := setCredential(txn, c); err != nil {
		return err
	}
	if len(c.AttestationObject) > 0 {
		if err := txn.Set(attestationKey(c.ID), c.AttestationObject); err != nil {
			return err
		}
	}
	if err := txn.Set(fidoKeyHashKey(FidoKeyHash(c.ID)), c.ID); err != nil {
		return err
	}
	return txn.Set(append(userCredPrefix(c.CommunityID, c.Username), c.ID...), nil)
}

// rewriteCredential writes a changed credential read with getStoredCredential. A JSON record of
// an earlier version carries its attestation object inline: it moves to its own key, and the
// record becomes CBOR.
func rewriteCredential(txn *badger.Txn, c *Credential) error {
	if len(c.AttestationObject) > 0 {
		if err := txn.Set(attestationKey(c.ID), c.AttestationObject); err != nil {
			return err
		}
		c.AttestationObject = nil
	}
	return setCredential(txn, *c)
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

func (o PatchCommunity) apply(txn *badger.Txn) (any, error) {
	var c Community
	if err := getJSON(txn, communityKey(o.ID), &c); errors.Is(err, ErrNotFound) {
		return nil, messages.Errorf(messages.CodeNotFound, fmt.Sprintf("community %q does not exist", o.ID))
	} else if err != nil {
		return nil, errStoreInternal(err)
	}
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
	return PutCommunity{Community: c, TenantDNS: o.TenantDNS}.apply(txn)
}

// RevokeLicense disables a license by id; a disabled license answers 401 from then on.
type RevokeLicense struct {
	ID string `json:"id"`
}

func (o RevokeLicense) apply(txn *badger.Txn) (any, error) {
	item, err := txn.Get(licenseIDKey(o.ID))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, messages.Errorf(messages.CodeNotFound, fmt.Sprintf("no license %q", o.ID))
	} else if err != nil {
		return nil, errStoreInternal(err)
	}
	hash, err := item.ValueCopy(nil)
	if err != nil {
		return nil, errStoreInternal(err)
	}
	var l License
	if err := getJSON(txn, licenseKey(hash), &l); err != nil {
		return nil, errStoreInternal(err)
	}
	l.Disabled = true
	if err := setJSON(txn, licenseKey(hash), l); err != nil {
		return nil, errStoreInternal(err)
	}
	return l, nil
}
