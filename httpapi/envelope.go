package httpapi

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// The envelope curves, by the OpenSSL names that /environment reports (BlockID's Node SDK hands
// ec_curve_name straight to crypto.createECDH, which knows no "P-256").
const (
	CurveSecp256k1 = "secp256k1"
	CurveP256      = "prime256v1"
)

// CanonicalCurve maps the accepted spellings of a curve to its OpenSSL name.
func CanonicalCurve(name string) (string, error) {
	switch strings.ToLower(name) {
	case "secp256k1":
		return CurveSecp256k1, nil
	case "p-256", "p256", "prime256v1", "secp256r1":
		return CurveP256, nil
	}
	return "", fmt.Errorf("curve %q: use secp256k1 or P-256 (prime256v1, secp256r1)", name)
}

// EnvelopeKey is a private key of the BlockID-compatible envelope, on secp256k1 or P-256. Its
// public half is published as the standard base64 of the raw 64-byte X‖Y point.
type EnvelopeKey struct {
	curve string
	k1    *secp256k1.PrivateKey
	p256  *ecdh.PrivateKey
	// shared caches the keys shared with recent callers, by their public point: BlockID SDKs
	// keep one key pair per process, and the ECDH that derives the key is most of what the
	// envelope costs. Bounded; a rotation makes a new EnvelopeKey and so a new cache.
	shared sharedKeyCache
}

// sharedKeyCacheSize bounds the cache: about 200 bytes an entry, ~3 MB when full.
const sharedKeyCacheSize = 1 << 14

// sharedKeyCache maps a caller's 65-byte public point to the 32-byte shared key. When full it
// starts over: callers with unique keys per request get no hits, but cost no more than without
// it, and memory stays bounded.
type sharedKeyCache struct {
	mu   sync.Mutex
	keys map[string][]byte
}

func (c *sharedKeyCache) get(peer []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[string(peer)]
	return k, ok
}

func (c *sharedKeyCache) put(peer, key []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) >= sharedKeyCacheSize {
		c.keys = make(map[string][]byte)
	}
	c.keys[string(peer)] = key
}

// NewEnvelopeKey generates a key on a curve (any name CanonicalCurve accepts).
func NewEnvelopeKey(curve string) (*EnvelopeKey, error) {
	curve, err := CanonicalCurve(curve)
	if err != nil {
		return nil, err
	}
	if curve == CurveSecp256k1 {
		k, err := secp256k1.GeneratePrivateKey()
		return &EnvelopeKey{curve: curve, k1: k}, err
	}
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	return &EnvelopeKey{curve: curve, p256: k}, err
}

// ParseEnvelopeKey reads a key from its curve and the 32-byte scalar that Bytes returns.
func ParseEnvelopeKey(curve string, scalar []byte) (*EnvelopeKey, error) {
	curve, err := CanonicalCurve(curve)
	if err != nil {
		return nil, err
	}
	if len(scalar) != 32 {
		return nil, errors.New("envelope key: want a 32-byte scalar")
	}
	if curve == CurveSecp256k1 {
		return &EnvelopeKey{curve: curve, k1: secp256k1.PrivKeyFromBytes(scalar)}, nil
	}
	k, err := ecdh.P256().NewPrivateKey(scalar)
	return &EnvelopeKey{curve: curve, p256: k}, err
}

// Curve is the key's curve by its OpenSSL name.
func (k *EnvelopeKey) Curve() string { return k.curve }

// Bytes returns the private scalar, for storage only.
func (k *EnvelopeKey) Bytes() []byte {
	if k.k1 != nil {
		return k.k1.Serialize()
	}
	return k.p256.Bytes()
}

// PublicKey returns the public point as standard base64 of X‖Y (no 0x04 prefix).
func (k *EnvelopeKey) PublicKey() string {
	var point []byte
	if k.k1 != nil {
		point = k.k1.PubKey().SerializeUncompressed()
	} else {
		point = k.p256.PublicKey().Bytes()
	}
	return base64.StdEncoding.EncodeToString(point[1:])
}

// sharedKey is the AES-256 key shared with a caller: the x-coordinate of the ECDH point of this
// key and the caller's public point (as callerPoint spells it), 32 bytes, no KDF, as BlockID's
// SDKs derive it. A point that is not on the curve is an error. Keys derived for valid points
// are cached; the returned slice must not be changed.
func (k *EnvelopeKey) sharedKey(peer []byte) ([]byte, error) {
	peer, err := callerPoint(peer)
	if err != nil {
		return nil, err
	}
	if key, ok := k.shared.get(peer); ok {
		return key, nil
	}
	key, err := k.ecdh(peer)
	if err == nil {
		k.shared.put(peer, key)
	}
	return key, err
}

// errPointSpelling says which spellings of a public point are accepted.
var errPointSpelling = errors.New("a public key is 64 bytes (X‖Y) or 65 bytes (0x04‖X‖Y)")

// callerPoint spells a caller's point one way, the 65-byte 0x04‖X‖Y. Exactly two spellings are
// accepted, 64 bytes X‖Y and 65 bytes 0x04‖X‖Y; the compressed (0x02/0x03) and hybrid
// (0x06/0x07) forms that secp256k1 parsers also take are refused, so that one point is one
// caller for everything keyed by it (the shared-key cache, the replay records): a captured
// request cannot be replayed by respelling its key.
func callerPoint(p []byte) ([]byte, error) {
	switch {
	case len(p) == 64:
		return append([]byte{4}, p...), nil
	case len(p) == 65 && p[0] == 4:
		return p, nil
	}
	return nil, errPointSpelling
}

func (k *EnvelopeKey) ecdh(peer []byte) ([]byte, error) {
	if k.k1 != nil {
		pub, err := secp256k1.ParsePubKey(peer)
		if err != nil {
			return nil, err
		}
		return secp256k1.GenerateSharedSecret(k.k1, pub), nil
	}
	pub, err := ecdh.P256().NewPublicKey(peer)
	if err != nil {
		return nil, err
	}
	return k.p256.ECDH(pub)
}

// Keyring holds the current envelope key and, for a grace period after a rotation, the previous
// one (clients cache /publickeys for up to 10 minutes). It is safe for concurrent use; Set
// replaces both at once.
type Keyring struct {
	keys atomic.Pointer[keyringState]
}

type keyringState struct {
	current       *EnvelopeKey
	previous      *EnvelopeKey
	previousUntil time.Time
}

// NewKeyring makes a keyring with a current key only.
func NewKeyring(current *EnvelopeKey) *Keyring {
	r := &Keyring{}
	r.Set(current, nil, time.Time{})
	return r
}

// Set installs the current key and the previous one, accepted until previousUntil.
func (r *Keyring) Set(current, previous *EnvelopeKey, previousUntil time.Time) {
	r.keys.Store(&keyringState{current: current, previous: previous, previousUntil: previousUntil})
}

// Current returns the current key.
func (r *Keyring) Current() *EnvelopeKey { return r.keys.Load().current }

// candidates are the keys to try for a request at now, current first.
func (r *Keyring) candidates(now time.Time) []*EnvelopeKey {
	s := r.keys.Load()
	if s.previous != nil && now.Before(s.previousUntil) {
		return []*EnvelopeKey{s.current, s.previous}
	}
	return []*EnvelopeKey{s.current}
}

// gcmIVSize is the IV length BlockID's SDKs use with AES-GCM (not Go's default 12).
const gcmIVSize = 16

// seal encrypts plaintext as standard base64 of IV ‖ ciphertext ‖ tag.
func seal(key, plaintext []byte) (string, error) {
	aead, err := newGCM(key)
	if err != nil {
		return "", err
	}
	iv := make([]byte, gcmIVSize)
	if _, err := rand.Read(iv); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(aead.Seal(iv, iv, plaintext, nil)), nil
}

// open decrypts a token that seal made. The token is strict, padded standard base64.
func open(key []byte, token string) ([]byte, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("not standard base64: %w", err)
	}
	if len(raw) < gcmIVSize+16 {
		return nil, errors.New("too short")
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, raw[:gcmIVSize], raw[gcmIVSize:], nil)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithNonceSize(block, gcmIVSize)
}
