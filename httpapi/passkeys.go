package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Passkey import and export (`webauthnd passkeys export|import`): the line format, its strict
// parser, and the import's checks against a store, shared by the admin socket and the command
// run without a server.

// Admin paths of the passkey import and export. An import sends its chunks to
// AdminPasskeysImportPath, then, unless it was a dry run, what the run did to
// AdminPasskeysImportedPath, for the audit trail's one line per run.
const (
	AdminPasskeysExportPath   = "/admin/passkeys/export"
	AdminPasskeysImportPath   = "/admin/passkeys/import"
	AdminPasskeysImportedPath = "/admin/passkeys/imported"
)

const (
	// MaxPasskeyLineBytes bounds one line: the largest fields (a credential id of 1,023 bytes,
	// an RSA-4096 COSE key, a DID of 512 bytes, a username of 256 bytes, all escaped or
	// base64url) take some 5 KiB; the rest is room for a long display name.
	MaxPasskeyLineBytes = 16 << 10
	// MaxPasskeyImportLines bounds the lines of one import request (and one write): 5,000
	// passkeys are one Import call of about a megabyte, a few transactions of the embedded store.
	MaxPasskeyImportLines = 5000
	// adminPasskeysBodyLimit bounds an import request: MaxPasskeyImportLines lines of 4 KiB on
	// average, as JSON strings. The command cuts its chunks at 5,000 lines or 16 MiB.
	adminPasskeysBodyLimit = 24 << 20
)

// PasskeyLine is one line of an export, one passkey with its user: what a relying party needs
// to move its passkeys to another server. Binary values are base64url without padding, as
// WebAuthn writes them; the AAGUID is in its canonical UUID form, as the metadata routes and
// the FIDO MDS name it (empty when the authenticator gave none). Every field is always written.
type PasskeyLine struct {
	// CommunityID and RPID are the source's: RPID must be one of the target community's RP IDs
	// (an assertion's rpIdHash is checked against it); CommunityID is only informative.
	CommunityID  string `json:"communityId"`
	RPID         string `json:"rpId"`
	Username     string `json:"username"`
	DisplayName  string `json:"displayName"`
	UserHandle   string `json:"userHandle"`
	CredentialID string `json:"credentialId"`
	// PublicKey is the credential's COSE_Key, as the attested credential data carried it.
	PublicKey          string   `json:"publicKey"`
	Algorithm          int64    `json:"algorithm"`
	SignCount          uint32   `json:"signCount"`
	Transports         []string `json:"transports"`
	AAGUID             string   `json:"aaguid"`
	AttestationFormat  string   `json:"attestationFormat"`
	AttestationTrusted bool     `json:"attestationTrusted"`
	UserVerified       bool     `json:"userVerified"`
	BackupEligible     bool     `json:"backupEligible"`
	BackupState        bool     `json:"backupState"`
	CloneWarning       bool     `json:"cloneWarning"`
	// CreatedAt may be absent (null): the import then stamps its own time.
	CreatedAt *time.Time `json:"createdAt"`
	// LastUsedAt is null for a passkey that never signed in.
	LastUsedAt *time.Time `json:"lastUsedAt"`
	// DID is the decentralized identifier the passkey is linked to, or empty.
	DID string `json:"did"`
}

// PasskeyLineOf is the line of a stored passkey and its user.
func PasskeyLineOf(u persistence.User, c persistence.Credential) PasskeyLine {
	l := PasskeyLine{
		CommunityID: c.CommunityID, RPID: c.RPID, Username: c.Username, DisplayName: u.DisplayName,
		UserHandle: b64url(c.UserHandle), CredentialID: b64url(c.ID), PublicKey: b64url(c.PublicKey),
		Algorithm: c.Algorithm, SignCount: c.SignCount, Transports: c.Transports,
		AttestationFormat: c.AttestationFormat, AttestationTrusted: c.AttestationTrusted,
		UserVerified: c.UserVerified, BackupEligible: c.BackupEligible, BackupState: c.BackupState,
		CloneWarning: c.CloneWarning, DID: c.DID,
	}
	if l.Transports == nil {
		l.Transports = []string{}
	}
	if aaguid, err := persistence.FormatAAGUID(c.AAGUID); err == nil {
		l.AAGUID = aaguid
	}
	if !c.Created.IsZero() {
		t := c.Created.UTC()
		l.CreatedAt = &t
	}
	if !c.LastUsed.IsZero() {
		t := c.LastUsed.UTC()
		l.LastUsedAt = &t
	}
	return l
}

// maxTransports bounds a line's transports (WebAuthn names six).
const maxTransports = 16

// ParsePasskeyLine reads one line with the API's strict rules (see unmarshalStrict), and more:
// a name that is not a field of PasskeyLine is refused too, since a field this server does not
// know would be silently lost in the move. It returns the user and the passkey the line gives,
// in community communityID, checked as a registration's records are (persistence.Check); the
// COSE key and the RP ID are the importer's to check.
func ParsePasskeyLine(raw []byte, communityID string) (persistence.User, persistence.Credential, error) {
	var l PasskeyLine
	if len(raw) > MaxPasskeyLineBytes {
		return persistence.User{}, persistence.Credential{}, lineError("the line is longer than %d KiB", MaxPasskeyLineBytes>>10)
	}
	if err := unmarshalKnown(raw, &l); err != nil {
		return persistence.User{}, persistence.Credential{}, err
	}
	return l.records(communityID)
}

// unmarshalKnown is unmarshalStrict for a passkey line, whose every name must be a field: the
// same name checks (one scan), then one decode that refuses an unknown name.
func unmarshalKnown(raw []byte, l *PasskeyLine) error {
	if !utf8.Valid(raw) {
		return lineError("the line is not valid UTF-8")
	}
	sc := nameScanner{b: raw}
	if err := sc.value(shapeOf(reflect.TypeOf(l)), 0); err != nil {
		var e *messages.Error
		if errors.As(err, &e) {
			return lineError("%s", strings.Replace(e.Message, "the request body", "the line", 1))
		}
		return err
	}
	if sc.skipSpace(); sc.i < len(sc.b) {
		return lineError("the line has data after its JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(l); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return lineError("the line is not valid JSON")
		case errors.As(err, &typ):
			return lineError("%s: a JSON %s where the line needs %s", typ.Field, typ.Value, typ.Type)
		}
		// What is left is a name that is no field, or a time that is not RFC 3339.
		return lineError("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// records checks the fields of l and returns its user and passkey in communityID.
func (l PasskeyLine) records(communityID string) (persistence.User, persistence.Credential, error) {
	var u persistence.User
	var c persistence.Credential
	handle, err := strictB64url("userHandle", l.UserHandle)
	if err != nil {
		return u, c, err
	}
	id, err := strictB64url("credentialId", l.CredentialID)
	if err != nil {
		return u, c, err
	}
	key, err := strictB64url("publicKey", l.PublicKey)
	if err != nil {
		return u, c, err
	}
	var aaguid []byte
	if l.AAGUID != "" {
		canonical, err := persistence.CanonicalAAGUID(l.AAGUID)
		if err != nil {
			return u, c, lineError("aaguid: a UUID, 8-4-4-4-12 hex digits (or empty)")
		}
		aaguid, _ = hex.DecodeString(strings.ReplaceAll(canonical, "-", ""))
	}
	switch {
	case l.RPID == "":
		return u, c, lineError("rpId is missing")
	case len(l.Transports) > maxTransports:
		return u, c, lineError("transports: at most %d", maxTransports)
	case slices.Contains(l.Transports, ""):
		return u, c, lineError("transports: a transport is a name, not empty")
	case l.DID != "" && !persistence.ValidDID(l.DID):
		return u, c, lineError("did: a DID starts with did: and is 5 to 512 bytes without control characters")
	}
	c = persistence.Credential{
		ID: id, CommunityID: communityID, Username: l.Username, UserHandle: handle, RPID: l.RPID,
		PublicKey: key, Algorithm: l.Algorithm, AAGUID: aaguid, AttestationFormat: l.AttestationFormat,
		AttestationTrusted: l.AttestationTrusted, Transports: l.Transports, UserPresent: true,
		UserVerified: l.UserVerified, BackupEligible: l.BackupEligible, BackupState: l.BackupState,
		SignCount: l.SignCount, CloneWarning: l.CloneWarning, DID: l.DID,
	}
	if len(c.Transports) == 0 {
		c.Transports = nil
	}
	if l.CreatedAt != nil {
		c.Created = l.CreatedAt.UTC()
	}
	if l.LastUsedAt != nil {
		c.LastUsed = l.LastUsedAt.UTC()
	}
	if !persistence.StorableTime(c.Created) || !persistence.StorableTime(c.LastUsed) {
		return u, c, lineError("createdAt and lastUsedAt must lie between the years 1678 and 2262")
	}
	if err := persistence.Check(persistence.AddCredential{Credential: c, DisplayName: l.DisplayName}); err != nil {
		var e *messages.Error
		if errors.As(err, &e) {
			return u, c, lineError("%s", e.Message)
		}
		return u, c, err
	}
	u = persistence.User{CommunityID: communityID, Username: l.Username, DisplayName: l.DisplayName, Handle: handle, Created: c.Created}
	return u, c, nil
}

// strictB64url decodes a required binary field: base64url without padding, as WebAuthn writes it.
func strictB64url(field, s string) ([]byte, error) {
	if s == "" {
		return nil, lineError("%s is missing", field)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, lineError("%s is not base64url without padding", field)
	}
	return b, nil
}

// lineError is the refusal of a line.
func lineError(format string, a ...any) error {
	return messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf(format, a...))
}

// ExportPasskeys writes the passkeys of a community as lines to w, a user at a time, and
// returns how many it wrote. A community that does not exist is not_found.
func ExportPasskeys(ctx context.Context, store interface {
	persistence.Communities
	persistence.CommunityPasskeys
}, communityID string, w io.Writer) (int, error) {
	if _, err := store.Community(ctx, communityID); errors.Is(err, persistence.ErrNotFound) {
		return 0, messages.Errorf(messages.CodeNotFound, fmt.Sprintf("community %q does not exist", communityID))
	} else if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	err := store.PasskeysOf(ctx, communityID, func(u persistence.User, creds []persistence.Credential) error {
		for _, c := range creds {
			if err := enc.Encode(PasskeyLineOf(u, c)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// PasskeyImport is the body of POST /admin/passkeys/import: a chunk of a file's lines, checked
// and, unless DryRun, written.
type PasskeyImport struct {
	CommunityID string `json:"communityId"`
	// FirstLine is the number in the file of Lines[0] (from 1), for the report.
	FirstLine int `json:"firstLine"`
	// Lines are the lines as read, without their line ends; blank ones are passed over.
	Lines  []string `json:"lines"`
	DryRun bool     `json:"dryRun,omitempty"`
}

// RefusedLine is a line an import refused, and why.
type RefusedLine struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// PasskeyImportReport answers an import of a chunk.
type PasskeyImportReport struct {
	// Imported counts the passkeys written (on a dry run: that would be written).
	Imported int `json:"imported"`
	// Skipped counts the lines identical to a stored passkey (see SamePasskey).
	Skipped int `json:"skipped"`
	// Users counts the users that the written passkeys created.
	Users int `json:"users"`
	// Refused are the lines refused, in order; when there is one, nothing was written.
	Refused []RefusedLine `json:"refused"`
}

// PasskeyImportRun is what an import run did, over all its chunks: the body of POST
// /admin/passkeys/imported, which the command sends once a run that could write has ended.
type PasskeyImportRun struct {
	CommunityID string `json:"communityId"`
	Imported    int    `json:"imported"`
	Skipped     int    `json:"skipped"`
	Refused     int    `json:"refused"`
	Users       int    `json:"users"`
	// Outcome is ok, or the code of the error that ended the run (invalid_request when lines
	// were refused).
	Outcome string `json:"outcome"`
}

// AuditOfPasskeyImport is the audit event of an import run, whether the server (through the
// admin socket) or the command (straight to a store) records it.
func AuditOfPasskeyImport(run PasskeyImportRun) messages.AuditEvent {
	return messages.AuditEvent{Event: messages.AuditPasskeysImported, Outcome: run.Outcome, Community: run.CommunityID,
		RemoteAddr: LocalOperator, Counts: map[string]int{
			"imported": run.Imported, "skipped": run.Skipped, "refused": run.Refused, "users": run.Users,
		}}
}

// handlePasskeysImported writes the audit line of an import run that went through the socket
// (each of its chunks was a request of its own: only the command knows where the run ends).
// The socket's peer is the operator, who could write the audit file directly: its counts are
// taken as given, only checked to be counts.
func handlePasskeysImported(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		var run PasskeyImportRun
		if err := decode(r, &run); err != nil {
			return err
		}
		if run.Imported < 0 || run.Skipped < 0 || run.Refused < 0 || run.Users < 0 || !ValidOutcome(run.Outcome) {
			return messages.Errorf(messages.CodeInvalidRequest, "counts are not negative, and the outcome is ok or an error code")
		}
		a.record(r, AuditOfPasskeyImport(run))
		encode(w, http.StatusOK, map[string]any{"recorded": true})
		return nil
	})
}

// ValidOutcome reports whether s can be an audit line's outcome: ok or an error code (lower
// case letters and underscores), so that no free text reaches the audit trail.
func ValidOutcome(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '_' {
			return false
		}
	}
	return true
}

// PasskeyStore is what an import reads and writes without the writer: the target community,
// users and passkeys as they are, and the bulk import of new users with their passkeys.
type PasskeyStore interface {
	persistence.Communities
	persistence.Users
	persistence.Credentials
	persistence.Importer
}

// PasskeyImporter checks chunks of lines against a store and writes them: new users with their
// passkeys in one Import, passkeys of users that exist with AddCredential through Write (the
// engine's writer when a server runs, so that they queue with its registrations).
type PasskeyImporter struct {
	Store PasskeyStore
	Write func(ctx context.Context, op persistence.Op) (any, error)
	// CheckKey checks a COSE key and the algorithm the line names (actors.CheckPublicKey).
	CheckKey func(cose []byte, alg int64) error
	Now      func() time.Time
}

// pending is an accepted line: its number, user and passkey.
type pending struct {
	line int
	user persistence.User
	cred persistence.Credential
}

// Import checks every line of req and, when none is refused and req is no dry run, writes the
// passkeys that are not stored yet. All or nothing per chunk: one refused line, and the chunk
// writes nothing (the command checks the whole file first, so a refusal here means the store
// changed between its check and its write). Checks per line: the line's own (ParsePasskeyLine);
// its rpId is one of the community's; its COSE key (CheckKey); its credential id appears once
// in the chunk, and is either not stored or stored as the same passkey (then the line is
// skipped); its username has one user handle in the chunk and in the store, and its handle one
// username. An error is returned only when the import cannot run at all (no such community,
// too many lines, the store failing).
func (p PasskeyImporter) Import(ctx context.Context, req PasskeyImport) (PasskeyImportReport, error) {
	rep := PasskeyImportReport{Refused: []RefusedLine{}}
	if len(req.Lines) > MaxPasskeyImportLines {
		return rep, messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf("at most %d lines per request", MaxPasskeyImportLines))
	}
	if req.FirstLine < 1 {
		req.FirstLine = 1
	}
	community, err := p.Store.Community(ctx, req.CommunityID)
	if errors.Is(err, persistence.ErrNotFound) {
		return rep, messages.Errorf(messages.CodeNotFound, fmt.Sprintf("community %q does not exist", req.CommunityID))
	} else if err != nil {
		return rep, err
	}
	refuse := func(line int, reason string) {
		rep.Refused = append(rep.Refused, RefusedLine{Line: line, Reason: reason})
	}
	checks, err := p.checkLines(ctx, community, req.Lines)
	if err != nil {
		return rep, err
	}
	var (
		accepted []pending
		ids      = map[string]int{}    // credential id → its line
		handleOf = map[string][]byte{} // username → its handle in this chunk
		userOf   = map[string]string{} // handle → its username in this chunk
		known    = map[string]bool{}   // username → whether the store has the user
	)
	// What depends on the lines before is decided in the lines' order.
	for i, lc := range checks {
		n, u, c := req.FirstLine+i, lc.user, lc.cred
		switch {
		case lc.blank:
			continue
		case lc.reason != "":
			refuse(n, lc.reason)
			continue
		}
		if first, dup := ids[string(c.ID)]; dup {
			refuse(n, fmt.Sprintf("credentialId is also on line %d", first))
			continue
		}
		if h, seen := handleOf[u.Username]; seen && !bytes.Equal(h, u.Handle) {
			refuse(n, fmt.Sprintf("user %q has another userHandle on an earlier line", u.Username))
			continue
		}
		if name, seen := userOf[string(u.Handle)]; seen && name != u.Username {
			refuse(n, fmt.Sprintf("userHandle is user %q's on an earlier line", name))
			continue
		}
		switch {
		case lc.stored != nil && SamePasskey(*lc.stored, c):
			ids[string(c.ID)] = n
			handleOf[u.Username], userOf[string(u.Handle)] = u.Handle, u.Username
			rep.Skipped++
			continue
		case lc.stored != nil:
			refuse(n, "credentialId is stored already, as another passkey (another user, key or community)")
			continue
		case lc.storedUser != nil && !bytes.Equal(lc.storedUser.Handle, u.Handle):
			refuse(n, fmt.Sprintf("user %q exists with another userHandle", u.Username))
			continue
		case lc.handleUser != nil && lc.handleUser.Username != u.Username:
			refuse(n, fmt.Sprintf("userHandle belongs to user %q", lc.handleUser.Username))
			continue
		}
		known[u.Username] = lc.storedUser != nil
		ids[string(c.ID)] = n
		handleOf[u.Username], userOf[string(u.Handle)] = u.Handle, u.Username
		accepted = append(accepted, pending{line: n, user: u, cred: c})
	}
	rep.Imported = len(accepted)
	if len(rep.Refused) > 0 {
		rep.Imported = 0
		return rep, nil
	}
	newUsers := map[string]int{}
	for _, a := range accepted {
		if !known[a.user.Username] {
			newUsers[a.user.Username]++
		}
	}
	rep.Users = len(newUsers)
	if req.DryRun || len(accepted) == 0 {
		return rep, nil
	}
	return rep, p.write(ctx, accepted, known)
}

// lineCheck is what a line says, and what the store holds of it, before the line is judged
// against the lines before it.
type lineCheck struct {
	blank  bool
	reason string // why the line is refused on its own, or ""
	user   persistence.User
	cred   persistence.Credential
	// stored is the passkey stored under the line's credential id; storedUser the user of its
	// username; handleUser the user of its handle (each nil when there is none).
	stored                 *persistence.Credential
	storedUser, handleUser *persistence.User
}

// checkWorkers is how many lines are checked at once: parsing and the COSE check use the cores,
// and the store's reads, over PostgreSQL round trips of a fraction of a millisecond each, are
// waited on together rather than one after another.
const checkWorkers = 16

// checkLines checks each line on its own (ParsePasskeyLine, the RP ID, the COSE key) and reads
// what the store holds of it: lines in parallel, and the reads in three for the whole chunk
// when the store offers persistence.PasskeyLookups (else three per line, in parallel too). An
// error means the store could not answer.
func (p PasskeyImporter) checkLines(ctx context.Context, community persistence.Community, lines []string) ([]lineCheck, error) {
	checks := make([]lineCheck, len(lines))
	lookups, batched := p.Store.(persistence.PasskeyLookups)
	err := parallel(ctx, len(lines), func(i int) error {
		lc := &checks[i]
		p.checkOwn(community, lines[i], lc)
		if batched || lc.blank || lc.reason != "" {
			return nil
		}
		return p.readOne(ctx, community.ID, lc)
	})
	if err != nil || !batched {
		return checks, err
	}
	var (
		ids       [][]byte
		usernames []string
		handles   [][]byte
	)
	for _, lc := range checks {
		if !lc.blank && lc.reason == "" {
			ids, usernames, handles = append(ids, lc.cred.ID), append(usernames, lc.user.Username), append(handles, lc.user.Handle)
		}
	}
	if len(ids) == 0 {
		return checks, nil
	}
	creds, err := lookups.CredentialsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	users, err := lookups.UsersByNameOrHandle(ctx, community.ID, usernames, handles)
	if err != nil {
		return nil, err
	}
	storedByID := make(map[string]*persistence.Credential, len(creds))
	for i := range creds {
		storedByID[string(creds[i].ID)] = &creds[i]
	}
	byName := make(map[string]*persistence.User, len(users))
	byHandle := make(map[string]*persistence.User, len(users))
	for i := range users {
		byName[users[i].Username], byHandle[string(users[i].Handle)] = &users[i], &users[i]
	}
	for i := range checks {
		lc := &checks[i]
		if lc.blank || lc.reason != "" {
			continue
		}
		if lc.stored = storedByID[string(lc.cred.ID)]; lc.stored == nil {
			lc.storedUser, lc.handleUser = byName[lc.user.Username], byHandle[string(lc.user.Handle)]
		}
	}
	return checks, nil
}

// parallel runs do(0) … do(n-1) on checkWorkers goroutines and returns the first error, or
// ctx's once it ended.
func parallel(ctx context.Context, n int, do func(i int) error) error {
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range min(checkWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := do(i); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// checkOwn fills lc with what one line says, or why it is refused on its own.
func (p PasskeyImporter) checkOwn(community persistence.Community, text string, lc *lineCheck) {
	if strings.TrimSpace(text) == "" {
		lc.blank = true
		return
	}
	u, c, err := ParsePasskeyLine([]byte(text), community.ID)
	if err != nil {
		lc.reason = reasonOf(err)
		return
	}
	if !slices.Contains(community.RPIDs, c.RPID) {
		lc.reason = fmt.Sprintf("rpId %q is not one of community %q's RP IDs (%s)", c.RPID, community.ID, strings.Join(community.RPIDs, ", "))
		return
	}
	if err := p.CheckKey(c.PublicKey, c.Algorithm); err != nil {
		lc.reason = reasonOf(err)
		return
	}
	lc.user, lc.cred = u, c
}

// readOne reads what the store holds of one checked line, three reads; an error means the
// store could not answer.
func (p PasskeyImporter) readOne(ctx context.Context, communityID string, lc *lineCheck) error {
	stored, err := p.Store.Credential(ctx, lc.cred.ID)
	switch {
	case err == nil:
		lc.stored = &stored
		return nil // judged by the stored passkey: its user is the stored one or not
	case !errors.Is(err, persistence.ErrNotFound):
		return err
	}
	su, err := p.Store.User(ctx, communityID, lc.user.Username)
	switch {
	case err == nil:
		lc.storedUser = &su
	case !errors.Is(err, persistence.ErrNotFound):
		return err
	}
	hu, err := p.Store.UserByHandle(ctx, communityID, lc.user.Handle)
	switch {
	case err == nil:
		lc.handleUser = &hu
	case !errors.Is(err, persistence.ErrNotFound):
		return err
	}
	return nil
}

// write stores accepted lines: the passkeys of new users in one Import (each user created at
// its earliest passkey's time), those of users that exist one AddCredential each.
func (p PasskeyImporter) write(ctx context.Context, accepted []pending, known map[string]bool) error {
	now := time.Now().UTC()
	if p.Now != nil {
		now = p.Now().UTC()
	}
	var (
		users  []persistence.User
		index  = map[string]int{}
		creds  []persistence.Credential
		adding []persistence.Op
	)
	for _, a := range accepted {
		c := a.cred
		if c.Created.IsZero() {
			c.Created = now
		}
		if known[a.user.Username] {
			adding = append(adding, persistence.AddCredential{Credential: c, DisplayName: a.user.DisplayName})
			continue
		}
		i, ok := index[a.user.Username]
		if !ok {
			i = len(users)
			index[a.user.Username] = i
			u := a.user
			u.Created = c.Created
			users = append(users, u)
		}
		if c.Created.Before(users[i].Created) {
			users[i].Created = c.Created
		}
		creds = append(creds, c)
	}
	if len(users) > 0 {
		if err := p.Store.Import(ctx, users, creds); err != nil {
			return err
		}
	}
	for _, op := range adding {
		if _, err := p.Write(ctx, op); err != nil {
			return err
		}
	}
	return nil
}

// SamePasskey reports whether a stored passkey is the one a line gives, so that an import run
// again skips it: the same community, RP ID, user (username and handle), key and algorithm,
// AAGUID and attestation format, and creation time when the line gives one. What sign-ins and
// links change later (counter, last use, flags, clone warning, DID) is not compared, so that an
// import run again after its users signed in still skips their passkeys.
func SamePasskey(stored, line persistence.Credential) bool {
	return stored.CommunityID == line.CommunityID && stored.RPID == line.RPID &&
		stored.Username == line.Username && bytes.Equal(stored.UserHandle, line.UserHandle) &&
		bytes.Equal(stored.PublicKey, line.PublicKey) && stored.Algorithm == line.Algorithm &&
		bytes.Equal(stored.AAGUID, line.AAGUID) && stored.AttestationFormat == line.AttestationFormat &&
		(line.Created.IsZero() || stored.Created.Equal(line.Created))
}

// reasonOf is what a refused line's report says: a refusal's client-safe message.
func reasonOf(err error) string {
	var e *messages.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "the line cannot be checked"
}

// handleExportPasskeys streams a community's passkeys as JSON Lines. An error after the first
// line aborts the response, so that the client sees a broken stream, never a short file that
// looks whole.
func handleExportPasskeys(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		if a.Passkeys == nil {
			return messages.Errorf(messages.CodeNotFound, "passkey exports are not available here")
		}
		community := r.URL.Query().Get("community")
		if _, err := a.Passkeys.Community(r.Context(), community); errors.Is(err, persistence.ErrNotFound) {
			return messages.Errorf(messages.CodeNotFound, fmt.Sprintf("community %q does not exist", community))
		} else if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/jsonl")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		if _, err := ExportPasskeys(r.Context(), a.Passkeys, community, w); err != nil {
			a.Log.Warn("passkey export stopped", zap.Error(err))
			panic(http.ErrAbortHandler)
		}
		return nil
	})
}

func handleImportPasskeys(a AdminDeps) http.Handler {
	return handle(a.Log, func(w http.ResponseWriter, r *http.Request) error {
		if a.ImportPasskeys == nil {
			return messages.Errorf(messages.CodeNotFound, "passkey imports are not available here")
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return messages.Errorf(messages.CodeBodyTooLarge, fmt.Sprintf("the request body is larger than %d MiB", adminPasskeysBodyLimit>>20))
			}
			return messages.Wrap(messages.CodeInvalidRequest, "the request body could not be read", err)
		}
		var req PasskeyImport
		if err := unmarshalStrict(raw, &req); err != nil {
			return err
		}
		rep, err := a.ImportPasskeys(r.Context(), req)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, rep)
		return nil
	})
}
