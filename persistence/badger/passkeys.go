package badger

import (
	"context"
	"errors"
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

var _ persistence.PasskeyLookups = (*Store)(nil)

// CredentialsByID reads the stored credentials among ids in one read transaction.
func (s *Store) CredentialsByID(ctx context.Context, ids [][]byte) (out []persistence.Credential, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		for i, id := range ids {
			if err := alive(ctx, i); err != nil {
				return err
			}
			c, err := getCredential(txn, id)
			if errors.Is(err, persistence.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// UsersByNameOrHandle reads the community's users of usernames and of handles in one read
// transaction (a handle's index entry names its user).
func (s *Store) UsersByNameOrHandle(ctx context.Context, communityID string, usernames []string, handles [][]byte) (out []persistence.User, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		seen := make(map[string]bool)
		add := func(name string) error {
			if seen[name] {
				return nil
			}
			seen[name] = true
			u, err := getUser(txn, userKey(communityID, name))
			if errors.Is(err, persistence.ErrNotFound) {
				return nil
			}
			if err == nil {
				out = append(out, u)
			}
			return err
		}
		for i, name := range usernames {
			if err := alive(ctx, i); err != nil {
				return err
			}
			if err := add(name); err != nil {
				return err
			}
		}
		for i, h := range handles {
			if err := alive(ctx, i); err != nil {
				return err
			}
			item, err := txn.Get(handleKey(communityID, h))
			if errors.Is(err, bdb.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			name, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := add(string(name)); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
