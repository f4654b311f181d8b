package actors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webauthnd/webauthnd/messages"
)

// Signer issues the signature_token of a successful sign-in: a compact ES256 JWS whose kid is
// the RFC 7638 thumbprint of the signing key.
type Signer struct {
	key    *ecdsa.PrivateKey
	kid    string
	jwk    JWK
	issuer string
	ttl    time.Duration
}

// JWK is a public P-256 key as a JSON Web Key.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// NewSigner makes a Signer for a P-256 key.
func NewSigner(key *ecdsa.PrivateKey, issuer string, ttl time.Duration) (*Signer, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("the token signing key must be a P-256 key")
	}
	if ttl <= 0 {
		return nil, errors.New("the token lifetime must be positive")
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	raw := pub.Bytes() // 0x04 || X || Y
	x := base64.RawURLEncoding.EncodeToString(raw[1:33])
	y := base64.RawURLEncoding.EncodeToString(raw[33:65])
	// RFC 7638: the required members in lexicographic order, no whitespace.
	sum := sha256.Sum256([]byte(fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, x, y)))
	kid := base64.RawURLEncoding.EncodeToString(sum[:])
	return &Signer{key: key, kid: kid, issuer: issuer, ttl: ttl,
		jwk: JWK{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: kid, Use: "sig", Alg: "ES256"}}, nil
}

// TTL is the lifetime of the tokens.
func (s *Signer) TTL() time.Duration { return s.ttl }

// JWKS returns the verification keys.
func (s *Signer) JWKS() []JWK { return []JWK{s.jwk} }

// Public returns the verification key.
func (s *Signer) Public() *ecdsa.PublicKey { return &s.key.PublicKey }

// Sign issues the token of a sign-in.
func (s *Signer) Sign(r messages.SignedIn, scope messages.Scope) (string, error) {
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	keyHash := sha256.Sum256(r.CredentialID)
	claims := jwt.MapClaims{
		"iss":         s.issuer,
		"sub":         r.Username,
		"aud":         scope.CommunityID,
		"iat":         now.Unix(),
		"exp":         now.Add(s.ttl).Unix(),
		"jti":         base64.RawURLEncoding.EncodeToString(jti),
		"fidoKeyHash": hex.EncodeToString(keyHash[:]),
		"uv":          r.UserVerified,
		"rpId":        scope.RPID,
	}
	if r.CloneWarning {
		claims["cloneWarning"] = true
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = s.kid
	return t.SignedString(s.key)
}
