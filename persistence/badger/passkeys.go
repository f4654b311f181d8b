package badger

import (
	"context"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
)

var _ persistence.CommunityPasskeys = (*Store)(nil)

// PasskeysOf yields the community's users in username order, each with its credentials, from
// one read transaction (one snapshot): the user records lie under u/<community>\x00, sorted by
// username, and each user's credential ids under its uk/ prefix. Only one user's records are
// held at a time.
func (s *Store) PasskeysOf(ctx context.Context, communityID string, yield func(persistence.User, []persistence.Credential) error) error {
	return s.view(ctx, func(txn *bdb.Txn) error {
		prefix := append(join("u/", []byte(communityID)), 0)
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if err := alive(ctx, n); err != nil {
				return err
			}
			n++
			value, err := it.Item().ValueCopy(nil)
			if err != nil {
				return persistence.StoreInternal(err)
			}
			u, err := decodeUser(value)
			if err != nil {
				return persistence.StoreInternal(fmt.Errorf("passkeys of community %q: a user record: %w", communityID, err))
			}
			creds, err := credentialsOf(txn, u.CommunityID, u.Username)
			if err != nil {
				return persistence.StoreInternal(fmt.Errorf("passkeys of user %q of community %q: %w", u.Username, communityID, err))
			}
			if err := yield(u, creds); err != nil {
				return err
			}
		}
		return nil
	})
}
