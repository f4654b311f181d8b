package persistence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CopyReport says what [Copy] copied, kind by kind, and what it left out.
type CopyReport struct {
	// Counts is how many records of each kind were copied (and, after [VerifyCopy], read back
	// identical): tenants, communities, licenses, secrets, keyrings, users, credentials,
	// vendor records, MDS entries.
	Counts map[string]int
	// Left says what was left out, and why: one line per record.
	Left []string
	// ReplaysUntil is when the last replay record of the source expires (zero when none is
	// live): no server may use the target before then (see [ExportedReplay]).
	ReplaysUntil time.Time
}

// Record kinds, as CopyReport counts them.
const (
	KindTenants      = "tenants"
	KindCommunities  = "communities"
	KindLicenses     = "licenses"
	KindSecrets      = "secrets"
	KindKeyrings     = "keyrings"
	KindUsers        = "users"
	KindCredentials  = "credentials"
	KindVendor       = "vendor records"
	KindMDSEntries   = "MDS entries"
	copyChunkOps     = 500  // ops per Apply batch of the small kinds
	copyChunkUsers   = 1000 // users per Import
	verifyWorkers    = 8    // users read back at once
	keepEveryRetired = 100 * 365 * 24 * time.Hour
)

// CopyKinds lists the kinds of CopyReport.Counts in the order of an export.
var CopyKinds = []string{KindTenants, KindCommunities, KindLicenses, KindSecrets, KindKeyrings, KindUsers,
	KindCredentials, KindVendor, KindMDSEntries}

// Copy writes every record that from exports into to, which must be empty: no community, no
// license, no vendor record, no MDS BLOB, and none of the tenants, secrets and keyrings that
// from holds. Those are checked before anything is written. Records go through the ops,
// [Importer.Import] and [MDSImporter.ReplaceMDS], so that the target checks each of them and
// derives its own indexes, shape tallies and generations; what ops cannot carry is said here:
//
//   - a community's Created and Updated become the time of the copy (PutCommunity sets them);
//   - the MDS BLOB gets the target's next Generation and the copy's time as Imported;
//   - a license that has expired is left out (PutLicense refuses one; it would answer 401
//     either way), and said so in Left;
//   - replay records are not copied (see [ExportedReplay]); ReplaysUntil says how long to wait.
//
// Everything else is copied as it is: times to the nanosecond, keyrings with their retired keys
// and retirement times, revoked licenses, users with their handles, credentials with their
// counters, clone warnings, links to DIDs and attestation objects. A failure after the first
// write leaves what was written: the target is no longer empty, so drop it and copy again.
// Run [VerifyCopy] afterwards. progress, when not nil, is told what is being done.
func Copy(ctx context.Context, from Exporter, to Store, progress func(string)) (CopyReport, error) {
	c := &copier{to: to, report: CopyReport{Counts: map[string]int{}}, progress: progress}
	err := from.Export(ctx, func(r Exported) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return c.add(ctx, r)
	})
	if err == nil {
		err = c.flush(ctx)
	}
	return c.report, err
}

// copier holds what Copy buffers: the small kinds until the first user (so that the target's
// emptiness is checked before anything is written), then users by the thousand.
type copier struct {
	to       Store
	report   CopyReport
	progress func(string)
	checked  bool // the target was found empty and the small kinds written
	tenants  []Tenant
	comms    []Community
	licenses []License
	secrets  []ExportedSecret
	keyrings []ExportedKeyring
	users    []User
	creds    []Credential
}

func (c *copier) say(format string, args ...any) {
	if c.progress != nil {
		c.progress(fmt.Sprintf(format, args...))
	}
}

func (c *copier) add(ctx context.Context, r Exported) error {
	switch r := r.(type) {
	case ExportedTenant:
		c.tenants = append(c.tenants, r.Tenant)
		return nil
	case ExportedCommunity:
		c.comms = append(c.comms, r.Community)
		return nil
	case ExportedLicense:
		c.licenses = append(c.licenses, r.License)
		return nil
	case ExportedSecret:
		c.secrets = append(c.secrets, r)
		return nil
	case ExportedKeyring:
		c.keyrings = append(c.keyrings, r)
		return nil
	}
	if err := c.writeSmallKinds(ctx); err != nil {
		return err
	}
	switch r := r.(type) {
	case ExportedUser:
		c.users = append(c.users, r.User)
		c.creds = append(c.creds, r.Credentials...)
		if len(c.users) >= copyChunkUsers {
			return c.flushUsers(ctx)
		}
		return nil
	case ExportedVendorRecord:
		if err := c.flushUsers(ctx); err != nil {
			return err
		}
		return c.vendorRecord(ctx, r.Record)
	case ExportedMDS:
		if err := c.flushUsers(ctx); err != nil {
			return err
		}
		c.say("copying the MDS BLOB number %d with %d entries", r.Blob.Number, len(r.Entries))
		if _, err := c.to.ReplaceMDS(ctx, r.Blob, r.Entries, true); err != nil {
			return fmt.Errorf("copy the MDS BLOB number %d: %w", r.Blob.Number, err)
		}
		c.report.Counts[KindMDSEntries] += len(r.Entries)
		return nil
	case ExportedReplay:
		if r.Until.After(c.report.ReplaysUntil) {
			c.report.ReplaysUntil = r.Until
		}
		return nil
	}
	return fmt.Errorf("copy: a record of type %T is not known to this version", r)
}

func (c *copier) flush(ctx context.Context) error {
	if err := c.writeSmallKinds(ctx); err != nil {
		return err
	}
	return c.flushUsers(ctx)
}

// writeSmallKinds checks that the target is empty, then writes the tenants, communities,
// licenses, secrets and keyrings buffered so far; it runs once.
func (c *copier) writeSmallKinds(ctx context.Context) error {
	if c.checked {
		return nil
	}
	c.checked = true
	if err := c.checkEmpty(ctx); err != nil {
		return err
	}
	c.say("copying %d tenants, %d communities, %d licenses, %d secrets, %d keyrings",
		len(c.tenants), len(c.comms), len(c.licenses), len(c.secrets), len(c.keyrings))
	var ops []Op
	var what []string
	for _, t := range c.tenants {
		ops = append(ops, PutTenant{Tenant: t, DNS: t.DNS})
		what = append(what, fmt.Sprintf("tenant %q", t.ID))
	}
	if err := c.apply(ctx, ops, what, KindTenants); err != nil {
		return err
	}
	ops, what = ops[:0], what[:0]
	for _, cm := range c.comms {
		ops = append(ops, PutCommunity{Community: cm, Create: true})
		what = append(what, fmt.Sprintf("community %q", cm.ID))
	}
	if err := c.apply(ctx, ops, what, KindCommunities); err != nil {
		return err
	}
	ops, what = ops[:0], what[:0]
	now := time.Now()
	for _, l := range c.licenses {
		if !l.Expires.IsZero() && !l.Expires.After(now) {
			c.report.Left = append(c.report.Left, fmt.Sprintf("license %s: expired at %s (it answers 401 either way)",
				l.ID, l.Expires.UTC().Format(time.RFC3339)))
			continue
		}
		ops = append(ops, PutLicense{License: l})
		what = append(what, fmt.Sprintf("license %s", l.ID))
	}
	if err := c.apply(ctx, ops, what, KindLicenses); err != nil {
		return err
	}
	for _, s := range c.secrets {
		v, err := ApplyOne(ctx, c.to, PutSecretIfAbsent{Name: s.Name, Value: s.Value})
		if err != nil {
			return fmt.Errorf("copy secret %q: %w", s.Name, err)
		}
		if stored, _ := v.([]byte); string(stored) != string(s.Value) {
			return fmt.Errorf("copy secret %q: the target holds another value: it is not empty", s.Name)
		}
		c.report.Counts[KindSecrets]++
	}
	for _, k := range c.keyrings {
		if err := c.keyring(ctx, k); err != nil {
			return err
		}
		c.report.Counts[KindKeyrings]++
	}
	c.tenants, c.comms, c.licenses, c.secrets, c.keyrings = nil, nil, nil, nil, nil
	return nil
}

// checkEmpty refuses a target that holds any community, license, vendor record or MDS BLOB, or
// one of the tenants, secrets and keyrings to copy.
func (c *copier) checkEmpty(ctx context.Context) error {
	notEmpty := func(what string) error {
		return fmt.Errorf("the target store is not empty (it holds %s): copy only into an empty one", what)
	}
	if empty, err := c.to.Empty(ctx); err != nil {
		return err
	} else if !empty {
		return notEmpty("a community")
	}
	if l, err := c.to.AllLicenses(ctx); err != nil {
		return err
	} else if len(l) > 0 {
		return notEmpty("a license")
	}
	if v, err := c.to.AllVendorRecords(ctx, nil); err != nil {
		return err
	} else if len(v) > 0 {
		return notEmpty("a vendor metadata record")
	}
	if _, err := c.to.CurrentMDSBlob(ctx); err == nil {
		return notEmpty("an MDS BLOB")
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	for _, t := range c.tenants {
		if _, err := c.to.Tenant(ctx, t.ID); err == nil {
			return notEmpty(fmt.Sprintf("tenant %q", t.ID))
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	for _, s := range c.secrets {
		if _, err := c.to.Secret(ctx, s.Name); err == nil {
			return notEmpty(fmt.Sprintf("secret %q", s.Name))
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	for _, k := range c.keyrings {
		if _, err := c.to.Keyring(ctx, k.Name); err == nil {
			return notEmpty(fmt.Sprintf("keyring %q", k.Name))
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// apply writes ops in batches of copyChunkOps and counts them under kind; what names each op
// in an error.
func (c *copier) apply(ctx context.Context, ops []Op, what []string, kind string) error {
	for len(ops) > 0 {
		n := min(len(ops), copyChunkOps)
		for i, r := range c.to.Apply(ctx, ops[:n]) {
			if r.Err != nil {
				return fmt.Errorf("copy %s: %w", what[i], r.Err)
			}
		}
		c.report.Counts[kind] += n
		ops, what = ops[n:], what[n:]
	}
	return nil
}

// keyring writes a keyring as it is, retired keys included: its oldest key first (on a new
// keyring), then each newer one as a rotation, which retires the one before at the newer
// one's creation, as the rotation that made it did. A keyring whose retirement times do not
// follow that rule is refused rather than changed.
func (c *copier) keyring(ctx context.Context, k ExportedKeyring) error {
	keys := k.Keyring.Keys
	if len(keys) == 0 {
		return fmt.Errorf("copy keyring %q: it holds no key", k.Name)
	}
	for i := 1; i < len(keys); i++ {
		if !keys[i].Retired.Equal(keys[i-1].Created) {
			return fmt.Errorf("copy keyring %q: key %d was retired at %s, not when the key after it was created (%s): it cannot be rotated into place",
				k.Name, i, keys[i].Retired.UTC().Format(time.RFC3339Nano), keys[i-1].Created.UTC().Format(time.RFC3339Nano))
		}
	}
	for i := len(keys) - 1; i >= 0; i-- {
		rec := keys[i]
		rec.Retired = time.Time{}
		op := RotateKey{Name: k.Name, New: rec, Keep: keepEveryRetired, OnlyIfAbsent: i == len(keys)-1}
		v, err := ApplyOne(ctx, c.to, op)
		if err != nil {
			return fmt.Errorf("copy keyring %q: %w", k.Name, err)
		}
		if ring, _ := v.(Keyring); len(ring.Keys) == 0 || string(ring.Keys[0].Private) != string(rec.Private) {
			return fmt.Errorf("copy keyring %q: the target holds another: it is not empty", k.Name)
		}
	}
	return nil
}

func (c *copier) flushUsers(ctx context.Context) error {
	if len(c.users) == 0 {
		return nil
	}
	if err := c.to.Import(ctx, c.users, c.creds); err != nil {
		return fmt.Errorf("copy users %q to %q of community %q: %w",
			c.users[0].Username, c.users[len(c.users)-1].Username, c.users[0].CommunityID, err)
	}
	c.report.Counts[KindUsers] += len(c.users)
	c.report.Counts[KindCredentials] += len(c.creds)
	c.say("copied %d users with %d credentials", c.report.Counts[KindUsers], c.report.Counts[KindCredentials])
	c.users, c.creds = c.users[:0], c.creds[:0]
	return nil
}

// vendorRecord writes a record with its id, creation and last change: created as it was
// (PutVendorMetadata stamps Created with UpdatedAt), then, when it changed since, patched with
// its last change.
func (c *copier) vendorRecord(ctx context.Context, r VendorRecord) error {
	put := r
	changed := !r.UpdatedAt.Equal(r.Created)
	if changed {
		put.UpdatedAt = r.Created
	}
	if _, err := ApplyOne(ctx, c.to, PutVendorMetadata{Record: put}); err != nil {
		return fmt.Errorf("copy the vendor record of community %q for AAGUID %s: %w", r.CommunityID, r.AAGUID, err)
	}
	if changed {
		disabled := r.Disabled
		patch := PatchVendorMetadata{CommunityID: r.CommunityID, AAGUID: r.AAGUID, Disabled: &disabled, UpdatedBy: r.UpdatedBy, At: r.UpdatedAt}
		if _, err := ApplyOne(ctx, c.to, patch); err != nil {
			return fmt.Errorf("copy the vendor record of community %q for AAGUID %s: %w", r.CommunityID, r.AAGUID, err)
		}
	}
	c.report.Counts[KindVendor]++
	return nil
}

// VerifyCopy reads every record that from exports back from to, through the read interfaces
// that servers use, and checks that it is there with the same fields (but for what [Copy] says
// it cannot carry), and that as many of each kind were found as report counts. Every
// credential is read by id and by owner, with its attestation object. It returns the counts it
// verified.
func VerifyCopy(ctx context.Context, from Exporter, to Store, report CopyReport) (map[string]int, error) {
	v := &verifier{to: to, counts: map[string]int{}}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	users := make(chan ExportedUser, verifyWorkers)
	var wg sync.WaitGroup
	var nUsers, nCreds atomic.Int64
	for range verifyWorkers {
		wg.Go(func() {
			for u := range users {
				if err := v.user(ctx, u); err != nil {
					cancel(err)
					continue
				}
				nUsers.Add(1)
				nCreds.Add(int64(len(u.Credentials)))
			}
		})
	}
	err := from.Export(ctx, func(r Exported) error {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		if u, ok := r.(ExportedUser); ok {
			select {
			case users <- u:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		return v.record(ctx, r)
	})
	close(users)
	wg.Wait()
	v.counts[KindUsers], v.counts[KindCredentials] = int(nUsers.Load()), int(nCreds.Load())
	if cause := context.Cause(ctx); err == nil && cause != nil {
		err = cause
	}
	if err != nil {
		return v.counts, fmt.Errorf("verify: %w", err)
	}
	for _, kind := range CopyKinds {
		if v.counts[kind] != report.Counts[kind] {
			return v.counts, fmt.Errorf("verify: %d %s copied, %d read back", report.Counts[kind], kind, v.counts[kind])
		}
	}
	return v.counts, nil
}

type verifier struct {
	to       Store
	counts   map[string]int     // but users and credentials, which the workers count
	licenses map[string]License // the target's, by id, read once
}

// record checks one record of the small kinds, vendor records and MDS entries.
func (v *verifier) record(ctx context.Context, r Exported) error {
	switch r := r.(type) {
	case ExportedTenant:
		got, err := v.to.Tenant(ctx, r.Tenant.ID)
		if err != nil {
			return fmt.Errorf("tenant %q: %w", r.Tenant.ID, err)
		}
		if d := diffRecords(sortedDNS(r.Tenant), sortedDNS(got)); d != "" {
			return fmt.Errorf("tenant %q differs in %s", r.Tenant.ID, d)
		}
		v.counts[KindTenants]++
	case ExportedCommunity:
		got, err := v.to.Community(ctx, r.Community.ID)
		if err != nil {
			return fmt.Errorf("community %q: %w", r.Community.ID, err)
		}
		if d := diffRecords(r.Community, got, "Created", "Updated"); d != "" {
			return fmt.Errorf("community %q differs in %s", r.Community.ID, d)
		}
		v.counts[KindCommunities]++
	case ExportedLicense:
		if v.licenses == nil {
			all, err := v.to.AllLicenses(ctx)
			if err != nil {
				return err
			}
			v.licenses = make(map[string]License, len(all))
			for _, l := range all {
				v.licenses[l.ID] = l
			}
		}
		got, ok := v.licenses[r.License.ID]
		switch {
		case !ok && !r.License.Expires.IsZero() && !r.License.Expires.After(time.Now()):
			return nil // expired: Copy leaves it out
		case !ok:
			return fmt.Errorf("license %s: %w", r.License.ID, ErrNotFound)
		}
		if d := diffRecords(r.License, got); d != "" {
			return fmt.Errorf("license %s differs in %s", r.License.ID, d)
		}
		v.counts[KindLicenses]++
	case ExportedSecret:
		got, err := v.to.Secret(ctx, r.Name)
		if err != nil {
			return fmt.Errorf("secret %q: %w", r.Name, err)
		}
		if string(got) != string(r.Value) {
			return fmt.Errorf("secret %q differs", r.Name)
		}
		v.counts[KindSecrets]++
	case ExportedKeyring:
		got, err := v.to.Keyring(ctx, r.Name)
		if err != nil {
			return fmt.Errorf("keyring %q: %w", r.Name, err)
		}
		if d := diffRecords(r.Keyring, got); d != "" {
			return fmt.Errorf("keyring %q differs in %s", r.Name, d)
		}
		v.counts[KindKeyrings]++
	case ExportedVendorRecord:
		got, err := v.to.VendorRecord(ctx, r.Record.CommunityID, r.Record.AAGUID)
		if err != nil {
			return fmt.Errorf("vendor record of community %q for AAGUID %s: %w", r.Record.CommunityID, r.Record.AAGUID, err)
		}
		if d := diffRecords(r.Record, got); d != "" {
			return fmt.Errorf("vendor record of community %q for AAGUID %s differs in %s", r.Record.CommunityID, r.Record.AAGUID, d)
		}
		v.counts[KindVendor]++
	case ExportedMDS:
		blob, entries, err := v.to.MDSEntries(ctx)
		if err != nil {
			return fmt.Errorf("MDS entries: %w", err)
		}
		if d := diffRecords(r.Blob, blob, "Generation", "Imported"); d != "" {
			return fmt.Errorf("the MDS BLOB differs in %s", d)
		}
		if len(entries) != len(r.Entries) {
			return fmt.Errorf("the MDS BLOB has %d entries, not %d", len(entries), len(r.Entries))
		}
		for i := range entries {
			if d := diffRecords(r.Entries[i], entries[i], "Source"); d != "" {
				return fmt.Errorf("MDS entry %d (%s) differs in %s", i, r.Entries[i].Description, d)
			}
		}
		v.counts[KindMDSEntries] += len(entries)
	case ExportedReplay:
	default:
		return fmt.Errorf("a record of type %T is not known to this version", r)
	}
	return nil
}

// user checks a user and each of its credentials, read by id and by owner, with its
// attestation object.
func (v *verifier) user(ctx context.Context, e ExportedUser) error {
	u := e.User
	name := fmt.Sprintf("user %q of community %q", u.Username, u.CommunityID)
	got, err := v.to.User(ctx, u.CommunityID, u.Username)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if d := diffRecords(u, got); d != "" {
		return fmt.Errorf("%s differs in %s", name, d)
	}
	owned, err := v.to.CredentialsOf(ctx, u.CommunityID, u.Username)
	if err != nil {
		return fmt.Errorf("%s: credentials: %w", name, err)
	}
	if len(owned) != len(e.Credentials) {
		return fmt.Errorf("%s owns %d credentials, not %d", name, len(owned), len(e.Credentials))
	}
	for i, want := range e.Credentials {
		att := want.AttestationObject
		want.AttestationObject = nil
		if d := diffRecords(want, owned[i]); d != "" {
			return fmt.Errorf("%s: credential %d, read by owner, differs in %s", name, i, d)
		}
		byID, err := v.to.Credential(ctx, want.ID)
		if err != nil {
			return fmt.Errorf("%s: credential %d: %w", name, i, err)
		}
		if d := diffRecords(want, byID); d != "" {
			return fmt.Errorf("%s: credential %d, read by id, differs in %s", name, i, d)
		}
		gotAtt, err := v.to.AttestationObjectOf(ctx, want.ID)
		if err != nil {
			return fmt.Errorf("%s: credential %d: attestation object: %w", name, i, err)
		}
		if string(gotAtt) != string(att) {
			return fmt.Errorf("%s: credential %d: its attestation object differs", name, i)
		}
	}
	return nil
}

// sortedDNS is t with its host names in order: a tenant's host names are a set.
func sortedDNS(t Tenant) Tenant {
	t.DNS = slices.Sorted(slices.Values(t.DNS))
	return t
}
