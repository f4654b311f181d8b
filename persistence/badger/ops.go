package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
)

// Apply runs ops in one synced transaction and returns one Result per op, keeping the batch
// contract of [persistence.Op]: ops see the writes of the ops before them in the same batch, a
// refused op leaves nothing behind and does not stop the others, and when the commit itself
// fails, every op fails.
//
// Each op is first checked with [persistence.Check], then admitted by the free space (while it
// is below the reserve, the ops it does not admit, see space.go, are refused with storage_full
// and leave nothing behind), then applied in the transaction. A ctx that ended before the
// transaction started (while the batch waited for another one, say) fails every op with an
// internal error and writes nothing; a batch that started commits whatever ctx does next, as
// the commit cannot be taken back half-way.
func (s *Store) Apply(ctx context.Context, ops []persistence.Op) []persistence.Result {
	return s.apply(ctx, ops, applyOp)
}

// apply is Apply with the function that applies one op, which tests replace to make a batch
// conflict.
func (s *Store) apply(ctx context.Context, ops []persistence.Op, one func(*bdb.Txn, persistence.Op) (any, error)) []persistence.Result {
	results := make([]persistence.Result, len(ops))
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := ctx.Err(); err != nil {
		for i := range results {
			results[i] = persistence.Result{Err: persistence.StoreInternal(fmt.Errorf("batch not started: %w", err))}
		}
		return results
	}
	run := make([]int, 0, len(ops)) // the ops admitted, by index
	space := s.space.read()
	for i, op := range ops {
		switch err := persistence.Check(op); {
		case err != nil:
			results[i] = persistence.Result{Err: err}
		case !admits(space.level, op):
			results[i] = persistence.Result{Err: space.refusal()}
		default:
			run = append(run, i)
		}
	}
	if len(run) == 0 {
		return results
	}
	for attempt := 0; ; attempt++ {
		txn := s.db.NewTransaction(true)
		for _, i := range run {
			v, err := one(txn, ops[i])
			results[i] = persistence.Result{Value: v, Err: err}
		}
		err := txn.Commit()
		if errors.Is(err, bdb.ErrConflict) && attempt < 10 {
			continue
		}
		s.afterCommit(ops, run)
		if err != nil {
			for _, i := range run {
				results[i] = persistence.Result{Err: persistence.StoreInternal(fmt.Errorf("commit: %w", err))}
			}
		}
		return results
	}
}

// afterCommit invalidates what the store caches, or lets readers cache, of the records a batch
// ran (ops[i] for i in run): the config cache (communities, licenses), the vendor metadata
// generation and the keyring generation. It runs whether or not the commit succeeded: a
// needless invalidation costs one re-read.
func (s *Store) afterCommit(ops []persistence.Op, run []int) {
	var config, vendor, keyring bool
	for _, i := range run {
		_, rotate := ops[i].(persistence.RotateKey)
		config = config || persistence.ChangesConfig(ops[i])
		vendor = vendor || persistence.WritesVendorMetadata(ops[i])
		keyring = keyring || rotate
	}
	if config {
		s.configGen.Add(1)
		s.config.Clear()
	}
	if vendor {
		s.vendorGen.Add(1)
	}
	if keyring {
		s.keyringGen.Add(1)
	}
}

// applyOp applies one op, already checked with [persistence.Check], in txn.
func applyOp(txn *bdb.Txn, op persistence.Op) (any, error) {
	switch o := op.(type) {
	case persistence.PutTenant:
		return putTenant(txn, o)
	case persistence.PutCommunity:
		return putCommunity(txn, o)
	case persistence.PatchCommunity:
		return patchCommunity(txn, o)
	case persistence.PutLicense:
		return putLicense(txn, o)
	case persistence.RevokeLicense:
		return revokeLicense(txn, o)
	case persistence.PutSecretIfAbsent:
		return putSecretIfAbsent(txn, o)
	case persistence.RotateKey:
		return rotateKey(txn, o)
	case persistence.RememberRequest:
		return rememberRequest(txn, o)
	case persistence.AddCredential:
		return addCredential(txn, o)
	case persistence.RecordSignIn:
		return recordSignIn(txn, o)
	case persistence.LinkCredential:
		return linkCredential(txn, o)
	case persistence.UnlinkCredential:
		return unlinkCredential(txn, o)
	case persistence.RemoveCredentials:
		return removeCredentials(txn, o)
	case persistence.PutVendorMetadata:
		return putVendorMetadata(txn, o)
	case persistence.PatchVendorMetadata:
		return patchVendorMetadata(txn, o)
	}
	// Only an op added to persistence without a case here: TestApplyKnowsEveryOp fails first.
	return nil, persistence.StoreInternal(fmt.Errorf("the Badger store cannot apply a %T", op))
}

func putTenant(txn *bdb.Txn, o persistence.PutTenant) (any, error) {
	var t persistence.Tenant
	err := getJSON(txn, tenantKey(o.Tenant.ID), &t)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		t = o.Tenant
		t.DNS = nil
		if t.Created.IsZero() {
			t.Created = time.Now().UTC()
		}
	case err != nil:
		return nil, persistence.StoreInternal(err)
	}
	// Check every host before writing any, so a refusal claims none.
	var claim []string
	for _, raw := range o.DNS {
		host, err := persistence.CanonicalHost(raw)
		if err != nil {
			return nil, err
		}
		item, err := txn.Get(tenantDNSKey(host))
		switch {
		case errors.Is(err, bdb.ErrKeyNotFound):
			if !slices.Contains(claim, host) {
				claim = append(claim, host)
			}
		case err != nil:
			return nil, persistence.StoreInternal(err)
		default:
			owner, err := item.ValueCopy(nil)
			if err != nil {
				return nil, persistence.StoreInternal(err)
			}
			if string(owner) != t.ID {
				return nil, persistence.HostTaken(host)
			}
		}
	}
	for _, host := range claim {
		if err := txn.Set(tenantDNSKey(host), []byte(t.ID)); err != nil {
			return nil, persistence.StoreInternal(err)
		}
		t.DNS = append(t.DNS, host)
	}
	if err := setJSON(txn, tenantKey(t.ID), t); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return t, nil
}

func putCommunity(txn *bdb.Txn, o persistence.PutCommunity) (any, error) {
	c := o.Community
	var old persistence.Community
	err := getJSON(txn, communityKey(c.ID), &old)
	switch {
	case err == nil && o.Create:
		return nil, persistence.CommunityExists(c.ID)
	case errors.Is(err, persistence.ErrNotFound) && !o.Create:
		return nil, persistence.CommunityMissing(c.ID)
	case err != nil && !errors.Is(err, persistence.ErrNotFound):
		return nil, persistence.StoreInternal(err)
	}
	now := time.Now().UTC()
	c.Created, c.Updated = now, now
	if !o.Create {
		c.Created = old.Created
	}
	if _, err := putTenant(txn, persistence.PutTenant{Tenant: persistence.Tenant{ID: c.TenantID, Name: c.TenantID}, DNS: o.TenantDNS}); err != nil {
		return nil, err
	}
	if err := setJSON(txn, communityKey(c.ID), c); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return c, nil
}

func patchCommunity(txn *bdb.Txn, o persistence.PatchCommunity) (any, error) {
	var c persistence.Community
	if err := getJSON(txn, communityKey(o.ID), &c); errors.Is(err, persistence.ErrNotFound) {
		return nil, persistence.CommunityMissing(o.ID)
	} else if err != nil {
		return nil, persistence.StoreInternal(err)
	}
	put := o.Onto(c)
	if err := persistence.Check(put); err != nil {
		return nil, err
	}
	return putCommunity(txn, put)
}

func putLicense(txn *bdb.Txn, o persistence.PutLicense) (any, error) {
	l := o.License
	if l.CommunityID != "" {
		if ok, err := exists(txn, communityKey(l.CommunityID)); err != nil {
			return nil, persistence.StoreInternal(err)
		} else if !ok {
			return nil, persistence.CommunityUnknown(l.CommunityID)
		}
	}
	if l.TenantID != "" {
		if ok, err := exists(txn, tenantKey(l.TenantID)); err != nil {
			return nil, persistence.StoreInternal(err)
		} else if !ok {
			return nil, persistence.TenantMissing(l.TenantID)
		}
	}
	item, err := txn.Get(licenseIDKey(l.ID))
	switch {
	case err == nil && !o.Rekey:
		return nil, persistence.ErrLicenseIDExists
	case err == nil:
		old, err := item.ValueCopy(nil)
		if err != nil {
			return nil, persistence.StoreInternal(err)
		}
		if err := txn.Delete(licenseKey(old)); err != nil {
			return nil, persistence.StoreInternal(err)
		}
	case !errors.Is(err, bdb.ErrKeyNotFound):
		return nil, persistence.StoreInternal(err)
	}
	if err := setJSON(txn, licenseKey(l.KeyHash), l); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	if err := txn.Set(licenseIDKey(l.ID), l.KeyHash); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return l, nil
}

func revokeLicense(txn *bdb.Txn, o persistence.RevokeLicense) (any, error) {
	item, err := txn.Get(licenseIDKey(o.ID))
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return nil, persistence.LicenseMissing(o.ID)
	} else if err != nil {
		return nil, persistence.StoreInternal(err)
	}
	hash, err := item.ValueCopy(nil)
	if err != nil {
		return nil, persistence.StoreInternal(err)
	}
	var l persistence.License
	if err := getJSON(txn, licenseKey(hash), &l); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	l.Disabled = true
	if err := setJSON(txn, licenseKey(hash), l); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return l, nil
}

func putSecretIfAbsent(txn *bdb.Txn, o persistence.PutSecretIfAbsent) (any, error) {
	item, err := txn.Get(secretKey(o.Name))
	if err == nil {
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, persistence.StoreInternal(err)
		}
		return v, nil
	}
	if !errors.Is(err, bdb.ErrKeyNotFound) {
		return nil, persistence.StoreInternal(err)
	}
	if err := txn.Set(secretKey(o.Name), o.Value); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return o.Value, nil
}

func addCredential(txn *bdb.Txn, o persistence.AddCredential) (any, error) {
	c := o.Credential
	if ok, err := exists(txn, credKey(c.ID)); err != nil {
		return nil, persistence.StoreInternal(err)
	} else if ok {
		return nil, persistence.ErrCredentialExists
	}
	var before []persistence.Credential // the user's passkeys before this one
	u, err := getUser(txn, userKey(c.CommunityID, c.Username))
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		if ok, err := exists(txn, handleKey(c.CommunityID, c.UserHandle)); err != nil {
			return nil, persistence.StoreInternal(err)
		} else if ok {
			// Another user holds the handle: only imported data can do that (ceremonies draw
			// 32 random bytes).
			return nil, persistence.ErrStartAgain
		}
		u = persistence.User{CommunityID: c.CommunityID, Username: c.Username, DisplayName: o.DisplayName,
			Handle: c.UserHandle, Created: time.Now().UTC()}
		if err := setUser(txn, u); err != nil {
			return nil, persistence.StoreInternal(err)
		}
		if err := txn.Set(handleKey(c.CommunityID, c.UserHandle), []byte(c.Username)); err != nil {
			return nil, persistence.StoreInternal(err)
		}
	case err != nil:
		return nil, persistence.StoreInternal(err)
	case !bytes.Equal(u.Handle, c.UserHandle):
		return nil, persistence.ErrStartAgain
	default:
		if before, err = credentialsOf(txn, c.CommunityID, c.Username); err != nil {
			return nil, persistence.StoreInternal(err)
		}
	}
	if err := writeCredential(txn, c); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	var from []byte
	if len(before) > 0 {
		from = persistence.UserShape(before)
	}
	if err := moveUserShape(txn, c.CommunityID, from, persistence.UserShape(append(before, c))); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return c, nil
}

func recordSignIn(txn *bdb.Txn, o persistence.RecordSignIn) (any, error) {
	c, err := getStoredCredential(txn, o.ID)
	if err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			return nil, persistence.ErrCredentialUnknown
		}
		return nil, persistence.StoreInternal(err)
	}
	if (o.Counter != 0 || c.SignCount != 0) && o.Counter <= c.SignCount {
		if !c.CloneWarning {
			c.CloneWarning = true
			if err := rewriteCredential(txn, &c); err != nil {
				return nil, persistence.StoreInternal(err)
			}
		}
		c.AttestationObject = nil
		return c, persistence.ErrCounterRegression
	}
	c.SignCount = o.Counter
	c.UserVerified = c.UserVerified || o.UserVerified
	c.BackupState = o.BackupState
	c.LastUsed = o.At
	if err := rewriteCredential(txn, &c); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	c.AttestationObject = nil
	return c, nil
}

// writeCredential writes the keys of a new credential: its record, its attestation object when
// it has one, its fidoKeyHash index and its owner index.
func writeCredential(txn *bdb.Txn, c persistence.Credential) error {
	if err := setCredential(txn, c); err != nil {
		return err
	}
	if len(c.AttestationObject) > 0 {
		if err := txn.Set(attestationKey(c.ID), c.AttestationObject); err != nil {
			return err
		}
	}
	if err := txn.Set(fidoKeyHashKey(persistence.FidoKeyHash(c.ID)), c.ID); err != nil {
		return err
	}
	return txn.Set(append(userCredPrefix(c.CommunityID, c.Username), c.ID...), nil)
}

// rewriteCredential writes a changed credential read with getStoredCredential. A JSON record of
// an earlier version carries its attestation object inline: it moves to its own key, and the
// record becomes CBOR.
func rewriteCredential(txn *bdb.Txn, c *persistence.Credential) error {
	if len(c.AttestationObject) > 0 {
		if err := txn.Set(attestationKey(c.ID), c.AttestationObject); err != nil {
			return err
		}
		c.AttestationObject = nil
	}
	return setCredential(txn, *c)
}
