package postgres

// Users and credentials: the reads every ceremony makes and the ops that registrations,
// sign-ins and the link routes write.

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/webauthnd/webauthnd/persistence"
)

// readErr turns a read's error into the boundary's: no row is ErrNotFound.
func (s *Store) readErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return errNotFound
	}
	return s.storeErr(err)
}

// User returns the user of a community by username.
func (s *Store) User(ctx context.Context, communityID, username string) (persistence.User, error) {
	if err := ctx.Err(); err != nil {
		return persistence.User{}, err
	}
	if !textOK(communityID, username) {
		return persistence.User{}, errNotFound
	}
	var r userRow
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE community_id = $1 AND username = $2`,
		communityID, username).Scan(r.dest()...)
	if err != nil {
		return persistence.User{}, s.readErr(err)
	}
	return r.user(), nil
}

// UserByHandle returns the user of a community by WebAuthn user handle.
func (s *Store) UserByHandle(ctx context.Context, communityID string, handle []byte) (persistence.User, error) {
	if err := ctx.Err(); err != nil {
		return persistence.User{}, err
	}
	if !textOK(communityID) {
		return persistence.User{}, errNotFound
	}
	var r userRow
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE community_id = $1 AND handle = $2`,
		communityID, handle).Scan(r.dest()...)
	if err != nil {
		return persistence.User{}, s.readErr(err)
	}
	return r.user(), nil
}

// UserAndCredentials returns a user with its credentials (as CredentialsOf), both read in one
// round trip from one snapshot: what a sign-in's options need (see
// [persistence.UserCredentials]).
func (s *Store) UserAndCredentials(ctx context.Context, communityID, username string) (persistence.User, []persistence.Credential, error) {
	if err := ctx.Err(); err != nil {
		return persistence.User{}, nil, err
	}
	if !textOK(communityID, username) {
		return persistence.User{}, nil, errNotFound
	}
	var (
		r     userRow
		found bool
		creds []persistence.Credential
	)
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	b.Queue(`SELECT `+userColumns+` FROM users WHERE community_id = $1 AND username = $2`, communityID, username).
		Query(scanFirst(&found, r.dest()...))
	b.Queue(`SELECT `+credentialColumns+` FROM credentials WHERE community_id = $1 AND username = $2 ORDER BY id`,
		communityID, username).Query(appendCredentials(&creds))
	b.Queue(`COMMIT`)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return persistence.User{}, nil, s.storeErr(err)
	}
	if !found {
		return persistence.User{}, nil, errNotFound
	}
	return r.user(), creds, nil
}

// SignInSubject reads the user of a username with its credentials, and the community's most
// common shape, in one round trip from one snapshot (see [persistence.SignInSubjects]): the
// same statements whether or not the user exists, so that an unknown username costs what a
// known one does.
func (s *Store) SignInSubject(ctx context.Context, communityID, username string) (persistence.SignInSubject, error) {
	if err := ctx.Err(); err != nil {
		return persistence.SignInSubject{}, err
	}
	if !textOK(communityID) {
		return persistence.SignInSubject{}, nil // no community, so no user and no shape
	}
	var (
		out       persistence.SignInSubject
		r         userRow
		creds     []persistence.Credential
		shape     []byte
		shapeRead bool
	)
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	// A username that cannot be stored names no user; the shape is still read, as for any
	// unknown username.
	if textOK(username) {
		b.Queue(`SELECT `+userColumns+` FROM users WHERE community_id = $1 AND username = $2`, communityID, username).
			Query(scanFirst(&out.Found, r.dest()...))
		b.Queue(`SELECT `+credentialColumns+` FROM credentials WHERE community_id = $1 AND username = $2 ORDER BY id`,
			communityID, username).Query(appendCredentials(&creds))
	}
	b.Queue(`SELECT shape FROM shape_modes WHERE community_id = $1 AND users > 0`, communityID).
		Query(scanFirst(&shapeRead, &shape))
	b.Queue(`COMMIT`)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return persistence.SignInSubject{}, s.storeErr(err)
	}
	if out.Found {
		out.User, out.Credentials = r.user(), creds
	}
	if shapeRead && len(shape) > 0 {
		decoded, err := persistence.DecodeUserShape(shape)
		if err != nil {
			return persistence.SignInSubject{}, err
		}
		out.CommonShape = decoded
	}
	return out, nil
}

// appendCredentials reads rows of credentialColumns into out.
func appendCredentials(out *[]persistence.Credential) func(pgx.Rows) error {
	return forEach(func(rows pgx.Rows) error {
		var r credentialRow
		if err := rows.Scan(r.dest()...); err != nil {
			return err
		}
		*out = append(*out, r.credential())
		return nil
	})
}

// Credential returns the credential with a raw id, without its AttestationObject.
func (s *Store) Credential(ctx context.Context, id []byte) (persistence.Credential, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Credential{}, err
	}
	var r credentialRow
	err := s.pool.QueryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = $1`, id).Scan(r.dest()...)
	if err != nil {
		return persistence.Credential{}, s.readErr(err)
	}
	return r.credential(), nil
}

// CredentialsOf returns a user's credentials in the order of their ids, each without its
// AttestationObject.
func (s *Store) CredentialsOf(ctx context.Context, communityID, username string) ([]persistence.Credential, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !textOK(communityID, username) {
		return nil, nil
	}
	var out []persistence.Credential
	rows, err := s.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE community_id = $1 AND username = $2 ORDER BY id`,
		communityID, username)
	if err == nil {
		err = appendCredentials(&out)(rows)
		rows.Close()
	}
	if err != nil {
		return nil, s.storeErr(err)
	}
	return out, nil
}

// AttestationObjectOf returns the attestation object that the registration of credential id
// stored: nil when it stored none, ErrNotFound when there is no such credential.
func (s *Store) AttestationObjectOf(ctx context.Context, id []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var att []byte
	err := s.pool.QueryRow(ctx, `SELECT a.object FROM credentials c LEFT JOIN attestation_objects a ON a.credential_id = c.id
		WHERE c.id = $1`, id).Scan(&att)
	if err != nil {
		return nil, s.readErr(err)
	}
	return nilIfEmpty(att), nil
}

// addCredential: see [persistence.AddCredential]. The user's row is locked before its passkeys
// are read, so that two registrations of one user's passkeys, on any nodes, tally its shape one
// after the other. Three round trips for a user who exists, four for a new one.
func addCredential(ctx context.Context, t *txn, o persistence.AddCredential) (any, error) {
	c := o.Credential
	var (
		exists, userFound bool
		handle            []byte
		before            []persistence.Credential // the user's passkeys before this one
	)
	lockUser := `SELECT handle FROM users WHERE community_id = $1 AND username = $2 FOR UPDATE`
	readCredentials := `SELECT ` + credentialColumns + ` FROM credentials WHERE community_id = $1 AND username = $2 ORDER BY id`
	t.queue(scanFirst(&exists, new(bool)), `SELECT true FROM credentials WHERE id = $1`, c.ID)
	t.queue(scanFirst(&userFound, &handle), lockUser, c.CommunityID, c.Username)
	// After the lock, in the same round trip: the passkeys as they are once no other
	// registration of the user can add one.
	t.queue(forEach(collectCredentials(&before)), readCredentials, c.CommunityID, c.Username)
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	switch {
	case exists:
		return nil, persistence.ErrCredentialExists
	case userFound && !bytes.Equal(handle, c.UserHandle):
		return nil, persistence.ErrStartAgain
	case !userFound:
		n, err := t.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
			c.CommunityID, c.Username, o.DisplayName, c.UserHandle, nanos(now()))
		if err != nil {
			return nil, err
		}
		if n == 0 {
			// Another user holds the handle (only imported data can do that: ceremonies draw 32
			// random bytes), or another registration created the username since: this one
			// lost, unless it registers a passkey of the very user that won.
			before = nil
			t.queue(scanFirst(&userFound, &handle), lockUser, c.CommunityID, c.Username)
			t.queue(forEach(collectCredentials(&before)), readCredentials, c.CommunityID, c.Username)
			if err := t.flush(ctx); err != nil {
				return nil, err
			}
			if !userFound || !bytes.Equal(handle, c.UserHandle) {
				return nil, persistence.ErrStartAgain
			}
		}
	}
	// The passkey, its attestation object and the tally in one round trip. Should another node
	// have registered the id since the check, the insert does nothing, the op refuses, and its
	// savepoint takes back whatever the statements after it did.
	var ran, inserted bool
	t.queue(func(rows pgx.Rows) error {
		inserted = rows.Next()
		rows.Close()
		ran = rows.Err() == nil
		return rows.Err()
	}, `INSERT INTO credentials (`+credentialColumns+`) VALUES (`+placeholders(1, 22)+`)
		ON CONFLICT DO NOTHING RETURNING true`, credentialArgs(c)...)
	if len(c.AttestationObject) > 0 {
		t.queue(nil, `INSERT INTO attestation_objects (credential_id, object) VALUES ($1, $2)`, c.ID, c.AttestationObject)
	}
	var from []byte
	if len(before) > 0 {
		from = persistence.UserShape(before)
	}
	t.queue(nil, `SELECT shape_move($1, $2, $3)`, c.CommunityID, from, persistence.UserShape(append(slices.Clone(before), c)))
	err := t.flush(ctx)
	if ran && !inserted && (err == nil || abortedByServer(err)) {
		return nil, persistence.ErrCredentialExists
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// collectCredentials is forEach appending each credential row to out.
func collectCredentials(out *[]persistence.Credential) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		var r credentialRow
		if err := rows.Scan(r.dest()...); err != nil {
			return err
		}
		*out = append(*out, r.credential())
		return nil
	}
}

// recordSignIn: see [persistence.RecordSignIn]. One statement: the subquery locks the
// credential's latest row (waiting for a concurrent sign-in of it to commit) and decides on its
// counter; the update writes either the sign-in or, refused, the clone warning. So concurrent
// sign-ins of one passkey, on any nodes, leave the highest counter accepted.
func recordSignIn(o persistence.RecordSignIn, res *persistence.Result) stmt {
	return stmt{
		sql: `UPDATE credentials c SET
			sign_count    = CASE WHEN r.refused THEN c.sign_count ELSE $2 END,
			user_verified = CASE WHEN r.refused THEN c.user_verified ELSE c.user_verified OR $3 END,
			backup_state  = CASE WHEN r.refused THEN c.backup_state ELSE $4 END,
			last_used     = CASE WHEN r.refused THEN c.last_used ELSE $5 END,
			clone_warning = c.clone_warning OR r.refused
		FROM (SELECT ($2::bigint <> 0 OR sign_count <> 0) AND $2::bigint <= sign_count AS refused
			FROM credentials WHERE id = $1 FOR UPDATE) r
		WHERE c.id = $1
		RETURNING r.refused, ` + prefixed("c", credentialColumns),
		args: []any{o.ID, int64(o.Counter), o.UserVerified, o.BackupState, nanos(o.At)},
		read: func(rows pgx.Rows) error {
			*res = persistence.Result{Err: persistence.ErrCredentialUnknown}
			if !rows.Next() {
				return rows.Err()
			}
			var (
				refused bool
				r       credentialRow
			)
			if err := rows.Scan(append([]any{&refused}, r.dest()...)...); err != nil {
				return err
			}
			*res = persistence.Result{Value: r.credential()}
			if refused {
				res.Err = persistence.ErrCounterRegression
			}
			return nil
		},
	}
}

// usersPasskey reads, and locks, the passkey a fidoKeyHash names when it is the given user's in
// the given community; found is false for any other.
func usersPasskey(ctx context.Context, t *txn, community, username string, hash []byte) (persistence.Credential, bool, error) {
	if !textOK(community, username) {
		return persistence.Credential{}, false, nil
	}
	var r credentialRow
	found, err := t.queryRow(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE fido_key_hash = $1 FOR UPDATE`,
		[]any{hash}, r.dest()...)
	if err != nil || !found {
		return persistence.Credential{}, false, err
	}
	c := r.credential()
	return c, c.CommunityID == community && c.Username == username, nil
}

// linkCredential: see [persistence.LinkCredential].
func linkCredential(ctx context.Context, t *txn, o persistence.LinkCredential) (any, error) {
	c, found, err := usersPasskey(ctx, t, o.CommunityID, o.Username, o.FidoKeyHash)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, persistence.ErrPasskeyNotFound
	case c.DID == o.DID:
		return c, nil
	case c.DID != "":
		return nil, persistence.ErrLinkedElsewhere
	}
	if _, err := t.exec(ctx, `UPDATE credentials SET did = $2 WHERE id = $1`, c.ID, o.DID); err != nil {
		return nil, err
	}
	c.DID = o.DID
	return c, nil
}

// unlinkCredential: see [persistence.UnlinkCredential].
func unlinkCredential(ctx context.Context, t *txn, o persistence.UnlinkCredential) (any, error) {
	c, found, err := usersPasskey(ctx, t, o.CommunityID, o.Username, o.FidoKeyHash)
	switch {
	case err != nil:
		return nil, err
	case !found || c.DID == "" || c.DID != o.DID:
		return nil, persistence.ErrLinkNotFound
	}
	if _, err := t.exec(ctx, `UPDATE credentials SET did = NULL WHERE id = $1`, c.ID); err != nil {
		return nil, err
	}
	c.DID = ""
	return c, nil
}

// removeCredentials: see [persistence.RemoveCredentials]. The owners' rows are locked (in
// username order, so that two removals never wait for each other in a circle) before their
// passkeys are read again for the shape tally.
func removeCredentials(ctx context.Context, t *txn, o persistence.RemoveCredentials) (any, error) {
	if !textOK(o.CommunityID, o.Username) {
		return nil, persistence.ErrNothingToRemove
	}
	var found []persistence.Credential
	var err error
	if len(o.FidoKeyHash) > 0 {
		err = t.query(ctx, collectCredentials(&found), `SELECT `+credentialColumns+` FROM credentials WHERE fido_key_hash = $1`,
			o.FidoKeyHash)
	} else {
		err = t.query(ctx, collectCredentials(&found), `SELECT `+credentialColumns+` FROM credentials
			WHERE community_id = $1 AND did = $2 ORDER BY id`, o.CommunityID, o.DID)
	}
	if err != nil {
		return nil, err
	}
	owners, gone := o.Select(found)
	if len(gone) == 0 {
		return nil, persistence.ErrNothingToRemove
	}
	sorted := slices.Sorted(slices.Values(owners))
	t.queue(nil, `SELECT 1 FROM users WHERE community_id = $1 AND username = ANY($2) ORDER BY username FOR UPDATE`,
		o.CommunityID, sorted)
	var current []persistence.Credential
	t.queue(forEach(collectCredentials(&current)), `SELECT `+credentialColumns+` FROM credentials
		WHERE community_id = $1 AND username = ANY($2) ORDER BY username, id`, o.CommunityID, sorted)
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	// A removal that committed since the first read may have taken some of the passkeys.
	var ids [][]byte
	for _, c := range current {
		if gone[string(c.ID)] {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return nil, persistence.ErrNothingToRemove
	}
	removed := map[string]bool{}
	for _, id := range ids {
		removed[string(id)] = true
	}
	// The shape tally follows a removal in its transaction, as it follows a registration, so
	// that decoys keep the shape of the users who still have passkeys.
	for _, username := range owners {
		var before []persistence.Credential
		for _, c := range current {
			if c.Username == username {
				before = append(before, c)
			}
		}
		after := slices.DeleteFunc(slices.Clone(before), func(c persistence.Credential) bool { return removed[string(c.ID)] })
		if len(before) == 0 || len(after) == len(before) {
			continue
		}
		var to []byte
		if len(after) > 0 {
			to = persistence.UserShape(after)
		}
		t.queue(nil, `SELECT shape_shrink($1, $2, $3)`, o.CommunityID, persistence.UserShape(before), to)
	}
	t.queue(nil, `DELETE FROM credentials WHERE id = ANY($1)`, ids)
	return len(ids), t.flush(ctx)
}
