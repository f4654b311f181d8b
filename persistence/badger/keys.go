package badger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
)

func keyringKey(name string) []byte { return join("kr/", []byte(name)) }

// Keyring returns the keyring called name.
func (s *Store) Keyring(ctx context.Context, name string) (k persistence.Keyring, err error) {
	return k, s.viewJSON(ctx, keyringKey(name), &k)
}

// KeyringGeneration changes after every batch that rotated a key (it moves on after the
// commit, so a cache that loaded a keyring under the old generation is invalidated either way).
// Only this process writes the store (Badger's directory lock), so an in-memory counter sees
// every rotation; it starts again at 0 when the store is opened, with every cache of the
// process empty.
func (s *Store) KeyringGeneration() uint64 { return s.keyringGen.Load() }

func rotateKey(txn *bdb.Txn, o persistence.RotateKey) (any, error) {
	var ring persistence.Keyring
	err := getJSON(txn, keyringKey(o.Name), &ring)
	switch {
	case err == nil && o.OnlyIfAbsent:
		return ring, nil
	case err != nil && !errors.Is(err, persistence.ErrNotFound):
		return nil, persistence.StoreInternal(err)
	}
	ring = o.Onto(ring)
	if err := setJSON(txn, keyringKey(o.Name), ring); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return ring, nil
}

// replayKey is where the uuid of a sealed request from one caller key is remembered.
func replayKey(caller []byte, uuid string) []byte {
	sum := sha256.Sum256(caller)
	return join("rq/", []byte(hex.EncodeToString(sum[:16])), []byte(uuid))
}

// ReplayPrefix is the key prefix of replay records (they expire on their own), for
// [Store.Digest] to leave out.
const ReplayPrefix = "rq/"

// rememberRequest writes the replay record with a Badger TTL, so that it expires on its own and
// survives a restart until then.
func rememberRequest(txn *bdb.Txn, o persistence.RememberRequest) (any, error) {
	key := replayKey(o.Caller, o.UUID)
	if ok, err := exists(txn, key); err != nil {
		return nil, persistence.StoreInternal(err)
	} else if ok {
		return nil, persistence.ErrRequestReplayed
	}
	ttl := time.Until(o.Until)
	if ttl < time.Second {
		ttl = time.Second
	}
	if err := txn.SetEntry(bdb.NewEntry(key, nil).WithTTL(ttl)); err != nil {
		return nil, persistence.StoreInternal(err)
	}
	return nil, nil
}
