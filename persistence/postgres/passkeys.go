package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/webauthnd/webauthnd/persistence"
)

var _ persistence.CommunityPasskeys = (*Store)(nil)

// passkeysPage is how many users PasskeysOf reads per round trip: large enough that a million
// users take a thousand round trips, small enough that one page stays a few megabytes.
const passkeysPage = 1000

// PasskeysOf yields the community's users in username order, each with its credentials, from
// one snapshot: a read-only REPEATABLE READ transaction in which users are read a page at a
// time (keyset on username), each page with its users' credentials, so that memory holds one
// page, not the community.
func (s *Store) PasskeysOf(ctx context.Context, communityID string, yield func(persistence.User, []persistence.Credential) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !textOK(communityID) {
		return nil
	}
	var yieldErr error
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		after, first := "", true
		for {
			var users []persistence.User
			rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM users WHERE community_id = $1 AND ($2 OR username > $3)
				ORDER BY username LIMIT $4`, communityID, first, after, passkeysPage)
			if err != nil {
				return err
			}
			if err := forEach(func(rows pgx.Rows) error {
				var r userRow
				if err := rows.Scan(r.dest()...); err != nil {
					return err
				}
				users = append(users, r.user())
				return nil
			})(rows); err != nil {
				return err
			}
			if len(users) == 0 {
				return nil
			}
			names := make([]string, len(users))
			for i, u := range users {
				names[i] = u.Username
			}
			byUser := make(map[string][]persistence.Credential, len(users))
			rows, err = tx.Query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE community_id = $1 AND username = ANY($2)
				ORDER BY username, id`, communityID, names)
			if err != nil {
				return err
			}
			if err := forEach(func(rows pgx.Rows) error {
				var r credentialRow
				if err := rows.Scan(r.dest()...); err != nil {
					return err
				}
				c := r.credential()
				byUser[c.Username] = append(byUser[c.Username], c)
				return nil
			})(rows); err != nil {
				return err
			}
			for _, u := range users {
				if err := yield(u, byUser[u.Username]); err != nil {
					yieldErr = err
					return err
				}
			}
			if len(users) < passkeysPage {
				return nil
			}
			after, first = users[len(users)-1].Username, false
		}
	})
	if yieldErr != nil {
		return yieldErr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.storeErr(err)
	}
	return nil
}

var _ persistence.PasskeyLookups = (*Store)(nil)

// CredentialsByID reads the stored credentials among ids in one statement.
func (s *Store) CredentialsByID(ctx context.Context, ids [][]byte) ([]persistence.Credential, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []persistence.Credential
	// Planned at each call (QueryExecModeExec), not once: a plan cached while an import's first
	// chunk met an empty table scans the whole table at every later chunk.
	rows, err := s.pool.Query(ctx, `SELECT `+credentialColumns+` FROM credentials WHERE id = ANY($1)`, pgx.QueryExecModeExec, ids)
	if err == nil {
		err = forEach(collectCredentials(&out))(rows)
	}
	if err != nil {
		return nil, s.storeErr(err)
	}
	return out, nil
}

// UsersByNameOrHandle reads the community's users of usernames and of handles in one
// statement (UNION: a user found both ways is returned once). A username that is no valid text names no user (as User answers it).
func (s *Store) UsersByNameOrHandle(ctx context.Context, communityID string, usernames []string, handles [][]byte) ([]persistence.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !textOK(communityID) {
		return nil, nil
	}
	names := make([]string, 0, len(usernames))
	for _, n := range usernames {
		if textOK(n) {
			names = append(names, n)
		}
	}
	var out []persistence.User
	// Two index look-ups, not one OR: with OR the planner scans the whole table.
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE community_id = $1 AND username = ANY($2)
		UNION SELECT `+userColumns+` FROM users WHERE community_id = $1 AND handle = ANY($3)`,
		pgx.QueryExecModeExec, communityID, names, handles)
	if err == nil {
		err = forEach(func(rows pgx.Rows) error {
			var r userRow
			if err := rows.Scan(r.dest()...); err != nil {
				return err
			}
			out = append(out, r.user())
			return nil
		})(rows)
	}
	if err != nil {
		return nil, s.storeErr(err)
	}
	return out, nil
}
