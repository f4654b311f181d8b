package postgres

import (
	"context"

	"github.com/webauthnd/webauthnd/persistence"
)

// CommonShape returns the shapes of the passkeys of the community's most common kind of user,
// as the tally kept by shape_move and shape_shrink (migrations/0001_init.sql) records it;
// ErrNotFound when no user of the community has a passkey.
func (s *Store) CommonShape(ctx context.Context, communityID string) ([]persistence.CredentialShape, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !textOK(communityID) {
		return nil, errNotFound
	}
	var (
		shape []byte
		users int64
	)
	if err := s.pool.QueryRow(ctx, `SELECT shape, users FROM shape_modes WHERE community_id = $1`, communityID).Scan(&shape, &users); err != nil {
		return nil, s.readErr(err)
	}
	if users == 0 || len(shape) == 0 {
		return nil, errNotFound
	}
	return persistence.DecodeUserShape(shape)
}
