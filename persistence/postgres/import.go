package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Import writes users, each with the credentials that name it, as AddCredential would (user,
// credentials, attestation objects, the community's shape tally) but in bulk: see
// [persistence.PlanImport] for what it accepts. Every user's community must exist; no user,
// user handle or credential may exist. Times are kept as given, but for a user's zero Created,
// which becomes now.
//
// The whole call is one transaction, written with COPY: it is stored whole or not at all (a
// stronger promise than the boundary's, which allows the users of earlier transactions to stay).
// Call it with batches of some ten thousand users.
func (s *Store) Import(ctx context.Context, users []persistence.User, creds []persistence.Credential) error {
	if err := ctx.Err(); err != nil {
		return persistence.StoreInternal(err)
	}
	plan, err := persistence.PlanImport(users, creds)
	if err != nil {
		return err
	}
	for i, u := range users {
		if !textOK(u.Username, u.DisplayName) {
			return messages.Errorf(messages.CodeInvalidRequest, fmt.Sprintf("user %d: a username and a display name are UTF-8 text without NUL", i))
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := checkAbsent(ctx, tx, plan); err != nil {
			return err
		}
		return writeImport(ctx, tx, plan)
	})
	var me *messages.Error
	var pe *pgconn.PgError
	switch {
	case err == nil || errors.As(err, &me):
		return err
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation
		return messages.Wrap(messages.CodeConflict, "a user, user handle or credential of the import was registered meanwhile: nothing was imported", err)
	case errors.As(err, &pe) && (pe.Code == "22021" || pe.Code == "22P05"):
		return messages.Wrap(messages.CodeInvalidRequest, "a text of the import is not valid UTF-8 or holds a NUL byte: nothing was imported", err)
	}
	return persistence.StoreInternal(s.secret.error(fmt.Errorf("import: %w", err)))
}

// checkAbsent refuses a plan when a community is missing or a user, handle or credential exists:
// the first such record in the order given, as the embedded store refuses it.
func checkAbsent(ctx context.Context, tx pgx.Tx, p *persistence.ImportPlan) error {
	var (
		communityIDs, userCommunities, usernames []string
		handles                                  [][]byte
		credIDs                                  [][]byte
		seenCommunity                            = map[string]bool{}
	)
	for _, u := range p.Users {
		if !seenCommunity[u.CommunityID] {
			seenCommunity[u.CommunityID] = true
			communityIDs = append(communityIDs, u.CommunityID)
		}
		userCommunities = append(userCommunities, u.CommunityID)
		usernames = append(usernames, u.Username)
		handles = append(handles, u.Handle)
	}
	for _, c := range p.Creds {
		credIDs = append(credIDs, c.ID)
	}
	var (
		communities = map[string]bool{}
		userTaken   = map[string]bool{}
		handleTaken = map[string]bool{}
		credTaken   = map[string]bool{}
	)
	b := &pgx.Batch{}
	b.Queue(`SELECT id FROM communities WHERE id = ANY($1)`, communityIDs).Query(collectText(communities))
	b.Queue(`SELECT u.community_id || chr(1) || u.username FROM users u
		JOIN unnest($1::text[], $2::text[]) AS x(c, n) ON u.community_id = x.c AND u.username = x.n`, userCommunities, usernames).
		Query(collectText(userTaken))
	b.Queue(`SELECT u.community_id || chr(1) || encode(u.handle, 'hex') FROM users u
		JOIN unnest($1::text[], $2::bytea[]) AS x(c, h) ON u.community_id = x.c AND u.handle = x.h`, userCommunities, handles).
		Query(collectText(handleTaken))
	b.Queue(`SELECT encode(id, 'hex') FROM credentials WHERE id = ANY($1)`, credIDs).Query(collectText(credTaken))
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	for _, u := range p.Users {
		if !communities[u.CommunityID] {
			return persistence.CommunityUnknown(u.CommunityID)
		}
		if userTaken[u.CommunityID+"\x01"+u.Username] {
			return messages.Errorf(messages.CodeConflict, fmt.Sprintf("user %q of community %q exists", u.Username, u.CommunityID))
		}
		if handleTaken[u.CommunityID+"\x01"+fmt.Sprintf("%x", u.Handle)] {
			return messages.Errorf(messages.CodeConflict, fmt.Sprintf("user %q: another user of community %q has its handle", u.Username, u.CommunityID))
		}
	}
	for k, c := range p.Creds {
		if credTaken[fmt.Sprintf("%x", c.ID)] {
			return messages.Errorf(messages.CodeCredentialExists, fmt.Sprintf("credential %d is already registered", k))
		}
	}
	return nil
}

// collectText reads a column of text into set.
func collectText(set map[string]bool) func(pgx.Rows) error {
	return forEach(func(rows pgx.Rows) error {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err
		}
		set[v] = true
		return nil
	})
}

// writeImport copies the users, their credentials and attestation objects, then counts each
// user's shape in the tally, in the order given (as a registration of each would).
func writeImport(ctx context.Context, tx pgx.Tx, p *persistence.ImportPlan) error {
	stamp := nanos(now())
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"community_id", "username", "display_name", "handle", "created"},
		pgx.CopyFromSlice(len(p.Users), func(i int) ([]any, error) {
			u := p.Users[i]
			created := nanos(u.Created)
			if created == 0 {
				created = stamp
			}
			return []any{u.CommunityID, u.Username, u.DisplayName, u.Handle, created}, nil
		})); err != nil {
		return err
	}
	columns := []string{"id", "community_id", "username", "user_handle", "rp_id", "public_key", "algorithm", "aaguid",
		"attestation_format", "attestation_type", "attestation_trusted", "transports", "attachment",
		"user_present", "user_verified", "backup_eligible", "backup_state", "sign_count", "clone_warning",
		"created", "last_used", "did"}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"credentials"}, columns,
		pgx.CopyFromSlice(len(p.Creds), func(i int) ([]any, error) { return credentialArgs(p.Creds[i]), nil })); err != nil {
		return err
	}
	var withAtt []persistence.Credential
	for _, c := range p.Creds {
		if len(c.AttestationObject) > 0 {
			withAtt = append(withAtt, c)
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"attestation_objects"}, []string{"credential_id", "object"},
		pgx.CopyFromSlice(len(withAtt), func(i int) ([]any, error) { return []any{withAtt[i].ID, withAtt[i].AttestationObject}, nil })); err != nil {
		return err
	}
	b := &pgx.Batch{}
	for i, u := range p.Users {
		var creds []persistence.Credential
		_ = p.UserCreds(i, func(c persistence.Credential) error {
			creds = append(creds, c)
			return nil
		})
		if len(creds) > 0 {
			b.Queue(`SELECT shape_move($1, NULL, $2)`, u.CommunityID, persistence.UserShape(creds))
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}
