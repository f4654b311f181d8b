package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// CredentialShape is what a sign-in's allowCredentials shows of a passkey to anyone who asks:
// the length of its id and its transports, in their stored order.
type CredentialShape struct {
	IDLength   int
	Transports []string
}

// Shapes reads what a community's users look like from outside, so that the sign-in options of
// an unknown username can look the same.
type Shapes interface {
	// CommonShape returns the shapes of the passkeys of the community's most common kind of
	// user (how many passkeys, which id lengths and transports), in no particular order;
	// ErrNotFound when no user of the community has a passkey.
	CommonShape(communityID string) ([]CredentialShape, error)
}

var _ Shapes = (*Store)(nil)

// The shape tally. A user's shape is the multiset of its passkeys' shapes, encoded canonically
// (each passkey's shape encoded, the encodings sorted and concatenated). The tally counts the
// users of each shape, per community, and is changed in the transaction that adds or removes a
// passkey, so it is exactly as durable as the passkeys:
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

// encodeCredentialShape is one passkey's shape: uvarint id length, uvarint transport count, and
// each transport as uvarint length and bytes.
func encodeCredentialShape(c Credential) []byte {
	b := binary.AppendUvarint(nil, uint64(len(c.ID)))
	b = binary.AppendUvarint(b, uint64(len(c.Transports)))
	for _, t := range c.Transports {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return b
}

// userShape is the canonical encoding of the shape of a user with creds.
func userShape(creds []Credential) []byte {
	parts := make([][]byte, len(creds))
	for i, c := range creds {
		parts[i] = encodeCredentialShape(c)
	}
	slices.SortFunc(parts, bytes.Compare)
	return bytes.Join(parts, nil)
}

// decodeUserShape reverses userShape.
func decodeUserShape(b []byte) ([]CredentialShape, error) {
	var out []CredentialShape
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("truncated shape")
		}
		b = b[n:]
		return v, nil
	}
	for len(b) > 0 {
		idLen, err := next()
		if err != nil {
			return nil, err
		}
		count, err := next()
		if err != nil || count > uint64(len(b)) {
			return nil, errors.New("truncated shape")
		}
		s := CredentialShape{IDLength: int(idLen)}
		for range count {
			l, err := next()
			if err != nil || l > uint64(len(b)) {
				return nil, errors.New("truncated shape")
			}
			s.Transports = append(s.Transports, string(b[:l]))
			b = b[l:]
		}
		out = append(out, s)
	}
	return out, nil
}

// readCount returns the uint64 at the start of the value under key, and the rest of the value;
// zero and nil when the key is absent.
func readCount(txn *badger.Txn, key []byte) (uint64, []byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
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
func moveUserShape(txn *badger.Txn, community string, from, to []byte) error {
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
func shrinkUserShape(txn *badger.Txn, community string, from, to []byte) error {
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
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
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

func setMode(txn *badger.Txn, community string, count uint64, shape []byte) error {
	return txn.Set(modeKey(community), append(binary.BigEndian.AppendUint64(nil, count), shape...))
}

// CommonShape implements [Shapes].
func (s *Store) CommonShape(communityID string) (out []CredentialShape, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		n, shape, err := readCount(txn, modeKey(communityID))
		if err != nil {
			return err
		}
		if n == 0 || len(shape) == 0 {
			return ErrNotFound
		}
		out, err = decodeUserShape(shape)
		return err
	})
	return out, err
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
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("uk/")})
		defer it.Close()
		var (
			owner []byte // uk/<community>\x00<username>\x00 of the user being read
			creds []Credential
		)
		flush := func() {
			if owner == nil {
				return
			}
			community, _, _ := bytes.Cut(owner[len("uk/"):], []byte{0})
			if counts[string(community)] == nil {
				counts[string(community)] = map[string]uint64{}
			}
			counts[string(community)][string(userShape(creds))]++
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
	return s.db.Update(func(txn *badger.Txn) error { return txn.Set(shapesMigratedKey, []byte{1}) })
}

func (s *Store) viewExists(key []byte) (ok bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		ok, err = exists(txn, key)
		return err
	})
	return ok, err
}
