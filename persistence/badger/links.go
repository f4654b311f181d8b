package persistence

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
)

// FidoKeyHash is how relying parties name a passkey: the SHA-256 of its raw credential id (its
// lowercase hex is the fidoKeyHash of registration results, tokens and link routes).
func FidoKeyHash(credentialID []byte) []byte {
	sum := sha256.Sum256(credentialID)
	return sum[:]
}

// ValidDID says whether s can be a DID here: "did:" and more, 5 to 512 bytes of UTF-8 without
// control characters. It can never be mistaken for a fidoKeyHash (64 hex digits).
func ValidDID(s string) bool {
	if len(s) < 5 || len(s) > 512 || !strings.HasPrefix(s, "did:") || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

func fidoKeyHashKey(hash []byte) []byte { return join("kh/", hash) }
func didPrefix(community, did string) []byte {
	return append(join("kd/", []byte(community), []byte(did)), 0)
}

var (
	errPasskeyNotFound = messages.Errorf(messages.CodeNotFound, "the user has no such passkey")
	errLinkNotFound    = messages.Errorf(messages.CodeNotFound, "that passkey is not linked to that DID")
	errNothingToRemove = messages.Errorf(messages.CodeNotFound, "no passkey matches that identifier")
)

// credentialByHash reads the credential a fidoKeyHash names.
func credentialByHash(txn *badger.Txn, hash []byte) (Credential, error) {
	item, err := txn.Get(fidoKeyHashKey(hash))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Credential{}, ErrNotFound
	} else if err != nil {
		return Credential{}, err
	}
	id, err := item.ValueCopy(nil)
	if err != nil {
		return Credential{}, err
	}
	return getStoredCredential(txn, id)
}

// usersPasskey reads the passkey a fidoKeyHash names when it is the given user's in the given
// community; any other passkey is errPasskeyNotFound.
func usersPasskey(txn *badger.Txn, community, username string, hash []byte) (Credential, error) {
	c, err := credentialByHash(txn, hash)
	switch {
	case errors.Is(err, ErrNotFound):
		return c, errPasskeyNotFound
	case err != nil:
		return c, errStoreInternal(err)
	case c.CommunityID != community || c.Username != username:
		return c, errPasskeyNotFound
	}
	return c, nil
}

// LinkCredential links a user's passkey, named by its fidoKeyHash, to a DID; it returns the
// linked Credential. Linking again to the same DID changes nothing; a passkey linked to another
// DID is a conflict (unlink it first).
type LinkCredential struct {
	CommunityID string
	Username    string
	FidoKeyHash []byte
	DID         string
}

func (o LinkCredential) apply(txn *badger.Txn) (any, error) {
	if !ValidDID(o.DID) {
		return nil, invalid("a DID starts with did: and is 5 to 512 bytes without control characters")
	}
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
		return nil, messages.Errorf(messages.CodeConflict, "the passkey is linked to another DID: unlink it first")
	}
	c.DID = o.DID
	if err := rewriteCredential(txn, &c); err != nil {
		return nil, errStoreInternal(err)
	}
	if err := txn.Set(append(didPrefix(c.CommunityID, c.DID), c.ID...), nil); err != nil {
		return nil, errStoreInternal(err)
	}
	return c, nil
}

// UnlinkCredential removes the link of a user's passkey to a DID; it returns the Credential.
// A passkey that is not linked to that DID is not found.
type UnlinkCredential struct {
	CommunityID string
	Username    string
	FidoKeyHash []byte
	DID         string
}

func (o UnlinkCredential) apply(txn *badger.Txn) (any, error) {
	c, err := usersPasskey(txn, o.CommunityID, o.Username, o.FidoKeyHash)
	if errors.Is(err, errPasskeyNotFound) || (err == nil && (c.DID == "" || c.DID != o.DID)) {
		return nil, errLinkNotFound
	} else if err != nil {
		return nil, err
	}
	if err := txn.Delete(append(didPrefix(c.CommunityID, c.DID), c.ID...)); err != nil {
		return nil, errStoreInternal(err)
	}
	c.DID = ""
	if err := rewriteCredential(txn, &c); err != nil {
		return nil, errStoreInternal(err)
	}
	return c, nil
}

// RemoveCredentials removes passkeys of a community: the one a fidoKeyHash names, or every
// passkey linked to a DID; with a Username, only that user's. It returns how many it removed;
// none is not found. Each passkey goes with all of its keys (record, attestation object, owner,
// fidoKeyHash and DID indexes) in the batch's one transaction, so a sign-in that races the
// removal either committed before it or finds no credential.
type RemoveCredentials struct {
	CommunityID string
	Username    string // optional
	FidoKeyHash []byte // or
	DID         string
}

func (o RemoveCredentials) apply(txn *badger.Txn) (any, error) {
	var found []Credential
	switch {
	case len(o.FidoKeyHash) > 0 && o.DID == "":
		c, err := credentialByHash(txn, o.FidoKeyHash)
		if errors.Is(err, ErrNotFound) {
			return nil, errNothingToRemove
		} else if err != nil {
			return nil, errStoreInternal(err)
		}
		found = append(found, c)
	case len(o.FidoKeyHash) == 0 && ValidDID(o.DID):
		prefix := didPrefix(o.CommunityID, o.DID)
		var ids [][]byte
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		for it.Rewind(); it.Valid(); it.Next() {
			ids = append(ids, bytes.Clone(bytes.TrimPrefix(it.Item().Key(), prefix)))
		}
		it.Close()
		for _, id := range ids {
			c, err := getStoredCredential(txn, id)
			if err != nil {
				return nil, errStoreInternal(fmt.Errorf("DID index points at a missing credential: %w", err))
			}
			found = append(found, c)
		}
	default:
		return nil, invalid("name the passkeys by a fidoKeyHash or a DID")
	}
	var (
		owners []string            // the owners of the passkeys to remove, in the order found
		gone   = map[string]bool{} // the ids of the passkeys to remove
	)
	for _, c := range found {
		if c.CommunityID != o.CommunityID || (o.Username != "" && c.Username != o.Username) {
			continue
		}
		if !slices.Contains(owners, c.Username) {
			owners = append(owners, c.Username)
		}
		gone[string(c.ID)] = true
	}
	if len(gone) == 0 {
		return nil, errNothingToRemove
	}
	// The shape tally follows a removal in its transaction, as it follows a registration, so
	// that decoys keep the shape of the users who still have passkeys.
	for _, username := range owners {
		before, err := credentialsOf(txn, o.CommunityID, username)
		if err != nil {
			return nil, errStoreInternal(err)
		}
		after := slices.DeleteFunc(slices.Clone(before), func(c Credential) bool { return gone[string(c.ID)] })
		if len(before) == 0 || len(after) == len(before) {
			continue
		}
		var to []byte
		if len(after) > 0 {
			to = userShape(after)
		}
		if err := shrinkUserShape(txn, o.CommunityID, userShape(before), to); err != nil {
			return nil, errStoreInternal(err)
		}
	}
	for _, c := range found {
		if gone[string(c.ID)] {
			if err := deleteCredential(txn, c); err != nil {
				return nil, errStoreInternal(err)
			}
		}
	}
	return len(gone), nil
}

// deleteCredential deletes every key of a stored credential.
func deleteCredential(txn *badger.Txn, c Credential) error {
	keys := [][]byte{credKey(c.ID), attestationKey(c.ID), fidoKeyHashKey(FidoKeyHash(c.ID)),
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
	if err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(marker)
		return err
	}); err == nil {
		return nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := []byte("k/")
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id := bytes.Clone(bytes.TrimPrefix(it.Item().Key(), prefix))
			if err := wb.Set(fidoKeyHashKey(FidoKeyHash(id)), id); err != nil {
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
