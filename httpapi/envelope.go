package httpapi

import (
	"encoding/base64"
	"errors"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// EnvelopeKey is the service's secp256k1 key pair of the BlockID-compatible envelope. Its
// public half is published as the standard base64 of the raw 64-byte X‖Y point.
type EnvelopeKey struct {
	priv *secp256k1.PrivateKey
}

// NewEnvelopeKey generates a fresh envelope key.
func NewEnvelopeKey() (*EnvelopeKey, error) {
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	return &EnvelopeKey{priv: priv}, nil
}

// ParseEnvelopeKey reads a key from the 32-byte scalar that Bytes returns.
func ParseEnvelopeKey(b []byte) (*EnvelopeKey, error) {
	if len(b) != 32 {
		return nil, errors.New("envelope key: want a 32-byte secp256k1 scalar")
	}
	return &EnvelopeKey{priv: secp256k1.PrivKeyFromBytes(b)}, nil
}

// Bytes returns the private scalar, for storage only.
func (k *EnvelopeKey) Bytes() []byte { return k.priv.Serialize() }

// PublicKey returns the public point as standard base64 of X‖Y (no 0x04 prefix).
func (k *EnvelopeKey) PublicKey() string {
	return base64.StdEncoding.EncodeToString(k.priv.PubKey().SerializeUncompressed()[1:])
}

// CurveName is the OpenSSL name of the curve, as /environment reports it.
func (k *EnvelopeKey) CurveName() string { return "secp256k1" }
