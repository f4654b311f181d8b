package persistence

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/messages"
)

// KeyRecord is one of the service's own private keys.
type KeyRecord struct {
	// Kind says what the key is: the envelope curve's name, or "ES256" for token signing.
	Kind    string    `json:"kind"`
	Private []byte    `json:"private"`
	Created time.Time `json:"created"`
	// Retired is when a rotation replaced the key (zero for the current key).
	Retired time.Time `json:"retired,omitzero"`
}

// Keyring is a key with its retired predecessors, newest first: Keys[0] is current.
type Keyring struct {
	Keys []KeyRecord `json:"keys"`
}

// Keyrings reads the service's keyrings.
type Keyrings interface {
	Keyring(name string) (Keyring, error)
}

var _ Keyrings = (*Store)(nil)

func keyringKey(name string) []byte { return join("kr/", []byte(name)) }

// Keyring returns the keyring called name.
func (s *Store) Keyring(name string) (k Keyring, err error) { return k, s.view(keyringKey(name), &k) }

// RotateKey makes New the current key of the keyring Name: the current one is retired at
// New.Created, and keys retired more than Keep ago are dropped. With OnlyIfAbsent it only
// creates a keyring that does not exist yet (two first starts then agree on one key). It
// returns the stored Keyring.
type RotateKey struct {
	Name         string        `json:"name"`
	New          KeyRecord     `json:"new"`
	Keep         time.Duration `json:"keep"`
	OnlyIfAbsent bool          `json:"onlyIfAbsent"`
}

func (o RotateKey) apply(txn *badger.Txn) (any, error) {
	var ring Keyring
	err := getJSON(txn, keyringKey(o.Name), &ring)
	switch {
	case err == nil && o.OnlyIfAbsent:
		return ring, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return nil, errStoreInternal(err)
	}
	keys := []KeyRecord{o.New}
	for _, k := range ring.Keys {
		if k.Retired.IsZero() {
			k.Retired = o.New.Created
		}
		if o.New.Created.Sub(k.Retired) <= o.Keep {
			keys = append(keys, k)
		}
	}
	ring.Keys = keys
	if err := setJSON(txn, keyringKey(o.Name), ring); err != nil {
		return nil, errStoreInternal(err)
	}
	return ring, nil
}

// replayKey is where the uuid of a sealed request from one caller key is remembered.
func replayKey(caller []byte, uuid string) []byte {
	sum := sha256.Sum256(caller)
	return join("rq/", []byte(hex.EncodeToString(sum[:16])), []byte(uuid))
}

// ReplayPrefix is the key prefix of replay records (they expire on their own).
const ReplayPrefix = "rq/"

// RememberRequest records a sealed request's uuid from a caller key until Until (a Badger TTL,
// so the record expires on its own and survives a restart until then). A uuid already
// recorded for that caller is refused.
type RememberRequest struct {
	Caller []byte
	UUID   string
	Until  time.Time
}

func (o RememberRequest) apply(txn *badger.Txn) (any, error) {
	key := replayKey(o.Caller, o.UUID)
	if ok, err := exists(txn, key); err != nil {
		return nil, errStoreInternal(err)
	} else if ok {
		return nil, messages.Errorf(messages.CodeRequestReplayed, "this requestid was already used")
	}
	ttl := time.Until(o.Until)
	if ttl < time.Second {
		ttl = time.Second
	}
	if err := txn.SetEntry(badger.NewEntry(key, nil).WithTTL(ttl)); err != nil {
		return nil, errStoreInternal(err)
	}
	return nil, nil
}
