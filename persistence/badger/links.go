package badger

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
)

func fidoKeyHashKey(hash []byte) []byte { return join("kh/", hash) }
func didPrefix(community, did string) []byte {
	return append(join("kd/", []byte(community), []byte(did)), 0)
}

// credentialByHash reads the credential a fidoKeyHash names.
func credentialByHash(txn *bdb.Txn, hash []byte) (persistence.Credential, error) {
	item, err := txn.Get(fidoKeyHashKey(hash))
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return persistence.Credential{}, persistence.ErrNotFound
	} else if err != nil {
		return persistence.Credential{}, err
	}
	id, err := item.ValueCopy(nil)
	if err != nil {
		return persistence.Credential{}, err
	}
	return getStoredCredential(txn, id)
}

// usersPasskey reads the passkey a fidoKeyHash names when it is the given user's in the given
// community; any other passkey is [persistence.ErrPasskeyNotFound].
func usersPasskey(txn *bdb.Txn, community, username string, hash []byte) (persistence.Credential, error) {
	c, err := credentialByHash(txn, hash)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return c, persistence.ErrPasskeyNotFound
	case err != nil:
		return c, persistence.StoreInternal(err)
	case c.CommunityID != community || c.Username != username:
		return c, persistence.ErrPasskeyNotFound
	}
	return c, nil
}

func linkCredential(txn *bdb.Txn, o persistence.LinkCredential) (any, error) {
	c, err := usersPasskey(txn, o.CommunityID, o.Username, o.FidoKeyHash)
	if err != nil {
		return nil, err
	}
	switch c.DID {
	case o.DID:
		c.AttestationObject = nil
		return c, nil
	case "":
	default:
		return nil, persistence.ErrLinkedElsewhere
	}
	c.DID = o.DID
	if err := rewriteCredential(txn, &c); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	if err := txn.Set(append(didPrefix(c.CommunityID, c.DID), c.ID...), nil); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return c, nil
}

func unlinkCredential(txn *bdb.Txn, o persistence.UnlinkCredential) (any, error) {
	c, err := usersPasskey(txn, o.CommunityID, o.Username, o.FidoKeyHash)
	if errors.Is(err, persistence.ErrPasskeyNotFound) || (err == nil && (c.DID == "" || c.DID != o.DID)) {
		return nil, persistence.ErrLinkNotFound
	} else if err != nil {
		return nil, err
	}
	if err := txn.Delete(append(didPrefix(c.CommunityID, c.DID), c.ID...)); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	c.DID = ""
	if err := rewriteCredential(txn, &c); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return c, nil
}

func removeCredentials(txn *bdb.Txn, o persistence.RemoveCredentials) (any, error) {
	var found []persistence.Credential // by the fidoKeyHash, or else by the DID (Check saw one)
	switch {
	case len(o.FidoKeyHash) > 0:
		c, err := credentialByHash(txn, o.FidoKeyHash)
		if errors.Is(err, persistence.ErrNotFound) {
			return nil, persistence.ErrNothingToRemove
		} else if err != nil {
			return nil, persistence.StoreInternal(err)
		}
		found = append(found, c)
	default:
		prefix := didPrefix(o.CommunityID, o.DID)
		var ids [][]byte
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: prefix})
		for it.Rewind(); it.Valid(); it.Next() {
			ids = append(ids, bytes.Clone(bytes.TrimPrefix(it.Item().Key(), prefix)))
		}
		it.Close()
		for _, id := range ids {
			c, err := getStoredCredential(txn, id)
			if err != nil {
				return nil, persistence.StoreInternal(fmt.Errorf("DID index points at a missing credential: %w", err))
			}
			found = append(found, c)
		}
	}
	owners, gone := o.Select(found)
	if len(gone) == 0 {
		return nil, persistence.ErrNothingToRemove
	}
	// The shape tally follows a removal in its transaction, as it follows a registration, so
	// that decoys keep the shape of the users who still have passkeys.
	for _, username := range owners {
		before, err := credentialsOf(txn, o.CommunityID, username)
		if err != nil {
			return nil, persistence.StoreInternal(err)
		}
		after := slices.DeleteFunc(slices.Clone(before), func(c persistence.Credential) bool { return gone[string(c.ID)] })
		if len(before) == 0 || len(after) == len(before) {
			continue
		}
		var to []byte
		if len(after) > 0 {
			to = persistence.UserShape(after)
		}
		if err := shrinkUserShape(txn, o.CommunityID, persistence.UserShape(before), to); err != nil {
			return nil, persistence.StoreInternal(err)
		}
	}
	for _, c := range found {
		if gone[string(c.ID)] {
			if err := deleteCredential(txn, c); err != nil {
				return nil, persistence.StoreInternal(err)
			}
		}
	}
	return len(gone), nil
}

// deleteCredential deletes every key of a stored credential.
func deleteCredential(txn *bdb.Txn, c persistence.Credential) error {
	keys := [][]byte{credKey(c.ID), attestationKey(c.ID), fidoKeyHashKey(persistence.FidoKeyHash(c.ID)),
		append(userCredPrefix(c.CommunityID, c.Username), c.ID...)}
	if c.DID != "" {
		keys = append(keys, append(didPrefix(c.CommunityID, c.DID), c.ID...))
	}
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// indexFidoKeyHashes writes the fidoKeyHash index of credentials stored by versions that had
// none, once (a marker records that it ran). It runs at Open, before any other write.
func (s *Store) indexFidoKeyHashes() error {
	marker := []byte("m/index/kh")
	if err := s.db.View(func(txn *bdb.Txn) error {
		_, err := txn.Get(marker)
		return err
	}); err == nil {
		return nil
	} else if !errors.Is(err, bdb.ErrKeyNotFound) {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *bdb.Txn) error {
		prefix := []byte("k/")
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := bytes.Clone(bytes.TrimPrefix(it.Item().Key(), prefix))
			if err := wb.Set(fidoKeyHashKey(persistence.FidoKeyHash(id)), id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index fidoKeyHashes: %w", err)
	}
	if err := wb.Set(marker, nil); err != nil {
		return fmt.Errorf("index fidoKeyHashes: %w", err)
	}
	return wb.Flush()
}
