package postgres

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/webauthnd/webauthnd/persistence"
)

// errNotFound is the boundary's ErrNotFound.
var errNotFound = persistence.ErrNotFound

// Record times are Unix nanoseconds, 0 for the zero time, read back in UTC: exact for the years
// 1678 to 2262 (see persistence.StorableTime), as in the embedded store.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// nilIfEmpty stores an empty byte string as NULL and reads NULL back as nil, as the embedded
// store reads an empty one.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nilIfNone(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// textOK says whether every s can be a text value (UTF-8 without NUL): a key that cannot be
// stored names no record, so a look-up by it finds nothing without asking the database.
func textOK(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// The columns of users and credentials, in the order scanUser and credentialRow read them.
const (
	userColumns       = `community_id, username, display_name, handle, created`
	credentialColumns = `id, community_id, username, user_handle, rp_id, public_key, algorithm, aaguid,
		attestation_format, attestation_type, attestation_trusted, transports, attachment,
		user_present, user_verified, backup_eligible, backup_state, sign_count, clone_warning,
		created, last_used, did`
)

// prefixed is columns with each qualified by alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// userRow scans a row of userColumns.
type userRow struct {
	u       persistence.User
	created int64
}

func (r *userRow) dest() []any {
	return []any{&r.u.CommunityID, &r.u.Username, &r.u.DisplayName, &r.u.Handle, &r.created}
}

func (r *userRow) user() persistence.User {
	u := r.u
	u.Handle = nilIfEmpty(u.Handle)
	u.Created = fromNanos(r.created)
	return u
}

// credentialRow scans a row of credentialColumns.
type credentialRow struct {
	c                 persistence.Credential
	signCount         int64
	created, lastUsed int64
	did               *string
}

func (r *credentialRow) dest() []any {
	c := &r.c
	return []any{&c.ID, &c.CommunityID, &c.Username, &c.UserHandle, &c.RPID, &c.PublicKey, &c.Algorithm, &c.AAGUID,
		&c.AttestationFormat, &c.AttestationType, &c.AttestationTrusted, &c.Transports, &c.Attachment,
		&c.UserPresent, &c.UserVerified, &c.BackupEligible, &c.BackupState, &r.signCount, &c.CloneWarning,
		&r.created, &r.lastUsed, &r.did}
}

// credential is the scanned credential, as reads return it: without its attestation object.
func (r *credentialRow) credential() persistence.Credential {
	c := r.c
	c.ID, c.UserHandle = nilIfEmpty(c.ID), nilIfEmpty(c.UserHandle)
	c.PublicKey, c.AAGUID = nilIfEmpty(c.PublicKey), nilIfEmpty(c.AAGUID)
	c.Transports = nilIfNone(c.Transports)
	c.SignCount = uint32(r.signCount)
	c.Created, c.LastUsed = fromNanos(r.created), fromNanos(r.lastUsed)
	c.DID = ""
	if r.did != nil {
		c.DID = *r.did
	}
	c.AttestationObject = nil
	return c
}

// credentialArgs are the values of credentialColumns for c.
func credentialArgs(c persistence.Credential) []any {
	var did *string
	if c.DID != "" {
		did = &c.DID
	}
	return []any{c.ID, c.CommunityID, c.Username, c.UserHandle, c.RPID, nilIfEmpty(c.PublicKey), c.Algorithm, nilIfEmpty(c.AAGUID),
		c.AttestationFormat, c.AttestationType, c.AttestationTrusted, nilIfNone(c.Transports), c.Attachment,
		c.UserPresent, c.UserVerified, c.BackupEligible, c.BackupState, int64(c.SignCount), c.CloneWarning,
		nanos(c.Created), nanos(c.LastUsed), did}
}

// placeholders is $from, ..., $(from+n-1).
func placeholders(from, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(ps, ", ")
}
