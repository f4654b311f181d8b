package postgres

// The live ceremonies of the cluster (an UNLOGGED table: see doc.go).

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// errCeremonyExists refuses a second ceremony under one id.
var errCeremonyExists = messages.Errorf(messages.CodeConflict, "a ceremony with this id is stored already")

// PutCeremony stores a ceremony when its options are issued: one statement, one round trip. An
// id that is stored already (and not expired) is refused with a conflict.
func (s *Store) PutCeremony(ctx context.Context, c persistence.Ceremony) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !textOK(c.ID, c.CommunityID) {
		return messages.Errorf(messages.CodeInvalidRequest, "a ceremony id and community are UTF-8 text without NUL")
	}
	if c.State == nil {
		c.State = []byte{} // a state of no bytes, which the column keeps apart from none
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO ceremonies (id, community_id, state, expires) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET community_id = excluded.community_id, state = excluded.state, expires = excluded.expires
		WHERE ceremonies.expires <= now()`, c.ID, c.CommunityID, c.State, c.Expires)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return errCeremonyExists
		}
		return s.secret.error(err)
	}
	if tag.RowsAffected() == 0 {
		return errCeremonyExists
	}
	return nil
}

// TakeCeremony removes the ceremony with id and returns it, in one statement: of any number of
// concurrent takes, on any nodes, the one whose DELETE PostgreSQL runs first gets the row, and
// the others find it gone. An expired ceremony is not found (the sweep deletes it).
func (s *Store) TakeCeremony(ctx context.Context, id string) (persistence.Ceremony, error) {
	if err := ctx.Err(); err != nil {
		return persistence.Ceremony{}, err
	}
	c := persistence.Ceremony{ID: id}
	if !textOK(id) {
		return c, errNotFound
	}
	err := s.pool.QueryRow(ctx, `DELETE FROM ceremonies WHERE id = $1 AND expires > now()
		RETURNING community_id, state, expires`, id).Scan(&c.CommunityID, &c.State, &c.Expires)
	if err != nil {
		return persistence.Ceremony{}, s.readErr(err)
	}
	c.Expires = c.Expires.UTC()
	return c, nil
}

// CeremonyExists reports whether the ceremony with id is still stored (not taken, not expired).
func (s *Store) CeremonyExists(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if !textOK(id) {
		return false, nil
	}
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ceremonies WHERE id = $1 AND expires > now())`, id).Scan(&ok)
	return ok, s.secret.error(err)
}
