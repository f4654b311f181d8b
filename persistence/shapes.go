package persistence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
)

// A user's shape is the multiset of its passkeys' shapes, encoded canonically: each passkey's
// shape encoded (uvarint id length, uvarint transport count, and each transport as uvarint
// length and bytes), the encodings sorted and concatenated. Backends tally the users of each
// shape per community, in the transaction that adds or removes a passkey, to answer
// [Shapes.CommonShape].

// encodeCredentialShape is one passkey's shape.
func encodeCredentialShape(c Credential) []byte {
	b := binary.AppendUvarint(nil, uint64(len(c.ID)))
	b = binary.AppendUvarint(b, uint64(len(c.Transports)))
	for _, t := range c.Transports {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return b
}

// UserShape is the canonical encoding of the shape of a user with creds.
func UserShape(creds []Credential) []byte {
	parts := make([][]byte, len(creds))
	for i, c := range creds {
		parts[i] = encodeCredentialShape(c)
	}
	slices.SortFunc(parts, bytes.Compare)
	return bytes.Join(parts, nil)
}

// DecodeUserShape reverses UserShape.
func DecodeUserShape(b []byte) ([]CredentialShape, error) {
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
