package badger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/webauthnd/webauthnd/persistence"
)

// The shape tally. A user's shape is the multiset of its passkeys' shapes, encoded canonically
// by [persistence.UserShape]. The tally counts the users of each shape, per community, and is
// changed in the transaction that adds or removes a passkey, so it is exactly as durable as the
// passkeys:
//
//	ds/<community>\x00<user shape>   uint64 (big endian): users of that shape
//	dm/<community>                   uint64 count, then the user shape: the most common shape
//	m/shapes                         present once the tally covers every passkey in the store
//
// The most common shape is kept up to date as users change shape: a shape that overtakes it
// replaces it. When the most common shape loses a user it stays the most common, possibly one
// user behind a shape that tied with it, until the next registration settles the tie; a decoy
// shape one registration stale is as good as an exact one. A removal, which can take many users
// from one shape, finds the most common shape again from the counts.
func shapeKey(community string, shape []byte) []byte {
	return join("ds/", []byte(community), shape)
}
func modeKey(community string) []byte { return join("dm/", []byte(community)) }

var shapesMigratedKey = []byte("m/shapes")

// readCount returns the uint64 at the start of the value under key, and the rest of the value;
// zero and nil when the key is absent.
func readCount(txn *bdb.Txn, key []byte) (uint64, []byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, bdb.ErrKeyNotFound) {
		return 0, nil, nil
	} else if err != nil {
		return 0, nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, nil, err
	}
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("tally value of %q is %d bytes", key, len(v))
	}
	return binary.BigEndian.Uint64(v), v[8:], nil
}

// moveUserShape records in the tally that a user of community went from shape from (nil: a new
// user, or one without passkeys) to shape to.
func moveUserShape(txn *bdb.Txn, community string, from, to []byte) error {
	var fromCount uint64
	if from != nil {
		n, _, err := readCount(txn, shapeKey(community, from))
		if err != nil {
			return err
		}
		if n > 0 {
			n--
		}
		fromCount = n
		if n == 0 {
			err = txn.Delete(shapeKey(community, from))
		} else {
			err = txn.Set(shapeKey(community, from), binary.BigEndian.AppendUint64(nil, n))
		}
		if err != nil {
			return err
		}
	}
	toCount, _, err := readCount(txn, shapeKey(community, to))
	if err != nil {
		return err
	}
	toCount++
	if err := txn.Set(shapeKey(community, to), binary.BigEndian.AppendUint64(nil, toCount)); err != nil {
		return err
	}
	modeCount, mode, err := readCount(txn, modeKey(community))
	if err != nil {
		return err
	}
	switch {
	case mode == nil || toCount > modeCount || bytes.Equal(mode, to):
		return setMode(txn, community, toCount, to)
	case from != nil && bytes.Equal(mode, from) && toCount > fromCount:
		// The user took the most common shape's lead with it (a community of one user, whose
		// count would otherwise drop to 0 and its decoys to the default shape).
		return setMode(txn, community, toCount, to)
	case from != nil && bytes.Equal(mode, from):
		return setMode(txn, community, fromCount, from)
	}
	return nil
}

// shrinkUserShape records in the tally that a user of community went from shape from to shape
// to (nil: no passkey left) because passkeys were removed. A removal can leave the most common
// shape behind another by more than one user, so the most common shape is found again from the
// community's counts (one key per distinct shape: a short scan).
func shrinkUserShape(txn *bdb.Txn, community string, from, to []byte) error {
	n, _, err := readCount(txn, shapeKey(community, from))
	if err != nil {
		return err
	}
	if n <= 1 {
		err = txn.Delete(shapeKey(community, from))
	} else {
		err = txn.Set(shapeKey(community, from), binary.BigEndian.AppendUint64(nil, n-1))
	}
	if err != nil {
		return err
	}
	if to != nil {
		n, _, err := readCount(txn, shapeKey(community, to))
		if err != nil {
			return err
		}
		if err := txn.Set(shapeKey(community, to), binary.BigEndian.AppendUint64(nil, n+1)); err != nil {
			return err
		}
	}
	prefix := shapeKey(community, nil) // ds/<community>\x00
	var (
		mode      []byte
		modeCount uint64
	)
	it := txn.NewIterator(bdb.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) < 8 {
			return fmt.Errorf("tally value of %q is %d bytes", it.Item().Key(), len(v))
		}
		if c := binary.BigEndian.Uint64(v); c > modeCount {
			mode, modeCount = bytes.Clone(it.Item().Key()[len(prefix):]), c
		}
	}
	if mode == nil {
		return txn.Delete(modeKey(community))
	}
	return setMode(txn, community, modeCount, mode)
}

func setMode(txn *bdb.Txn, community string, count uint64, shape []byte) error {
	return txn.Set(modeKey(community), append(binary.BigEndian.AppendUint64(nil, count), shape...))
}

// CommonShape returns the passkey shapes of the community's most common kind of user (see
// [persistence.Shapes]).
func (s *Store) CommonShape(ctx context.Context, communityID string) (out []persistence.CredentialShape, err error) {
	err = s.view(ctx, func(txn *bdb.Txn) error {
		out, err = commonShape(txn, communityID)
		if err == nil && out == nil {
			return persistence.ErrNotFound
		}
		return err
	})
	return out, err
}

// commonShape reads the community's most common shape: nil when no user has a passkey.
func commonShape(txn *bdb.Txn, communityID string) ([]persistence.CredentialShape, error) {
	n, shape, err := readCount(txn, modeKey(communityID))
	if err != nil || n == 0 || len(shape) == 0 {
		return nil, err
	}
	return persistence.DecodeUserShape(shape)
}

// tallyShapes builds the shape tally of a store written by a version without one: it reads
// every passkey once (a few seconds for a million), then writes the counts and the marker. It
// runs when Open finds no marker, before anything else uses the store.
func (s *Store) tallyShapes() error {
	done, err := s.viewExists(shapesMigratedKey)
	if err != nil || done {
		return err
	}
	counts := map[string]map[string]uint64{} // community -> user shape -> users
	err = s.db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte("uk/")})
		defer it.Close()
		var (
			owner []byte // uk/<community>\x00<username>\x00 of the user being read
			creds []persistence.Credential
		)
		flush := func() {
			if owner == nil {
				return
			}
			community, _, _ := bytes.Cut(owner[len("uk/"):], []byte{0})
			if counts[string(community)] == nil {
				counts[string(community)] = map[string]uint64{}
			}
			counts[string(community)][string(persistence.UserShape(creds))]++
			owner, creds = nil, creds[:0]
		}
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			rest := key[len("uk/"):]
			i := bytes.IndexByte(rest, 0)
			j := -1
			if i >= 0 {
				j = bytes.IndexByte(rest[i+1:], 0)
			}
			if i < 0 || j < 0 {
				return fmt.Errorf("malformed credential index key %q", key)
			}
			prefix := key[:len("uk/")+i+1+j+1]
			if !bytes.Equal(prefix, owner) {
				flush()
				owner = append([]byte(nil), prefix...)
			}
			c, err := getCredential(txn, key[len(prefix):])
			if err != nil {
				return fmt.Errorf("credential index points at a missing credential: %w", err)
			}
			creds = append(creds, c)
		}
		flush()
		return nil
	})
	if err != nil {
		return fmt.Errorf("tally credential shapes: %w", err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for community, shapes := range counts {
		var mode string
		var modeCount uint64
		for shape, n := range shapes {
			if err := wb.Set(shapeKey(community, []byte(shape)), binary.BigEndian.AppendUint64(nil, n)); err != nil {
				return err
			}
			if n > modeCount || (n == modeCount && shape < mode) {
				mode, modeCount = shape, n
			}
		}
		if err := wb.Set(modeKey(community), append(binary.BigEndian.AppendUint64(nil, modeCount), mode...)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("tally credential shapes: %w", err)
	}
	return s.db.Update(func(txn *bdb.Txn) error { return txn.Set(shapesMigratedKey, []byte{1}) })
}

func (s *Store) viewExists(key []byte) (ok bool, err error) {
	err = s.db.View(func(txn *bdb.Txn) error {
		ok, err = exists(txn, key)
		return err
	})
	return ok, err
}
