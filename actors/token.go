package actors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webauthnd/webauthnd/messages"
)

// Signer issues the signature_token of a successful sign-in: a compact ES256 JWS whose kid is
// the RFC 7638 thumbprint of the signing key. Its iss names the tenant
// (<issuer>/tenants/<tenant id>) and tid repeats the tenant id, so that a relying party that
// checks iss (but not aud) still refuses another tenant's token: all tenants share the key. After a rotation, the retired key's JWK stays
// published until every token it signed has expired.
type Signer struct {
	issuer string
	ttl    time.Duration
	keys   atomic.Pointer[signerKeys]
}

type signerKeys struct {
	current *ecdsa.PrivateKey
	kid     string
	header  string // the encoded JWS header naming kid, the same for every token
	jwks    []publishedKey
}

// tokenClaims are a signature token's claims, marshalled without a map.
type tokenClaims struct {
	Issuer       string `json:"iss"`
	TenantID     string `json:"tid"`
	Subject      string `json:"sub"`
	Audience     string `json:"aud"`
	IssuedAt     int64  `json:"iat"`
	Expires      int64  `json:"exp"`
	ID           string `json:"jti"`
	FidoKeyHash  string `json:"fidoKeyHash"`
	UserVerified bool   `json:"uv"`
	RPID         string `json:"rpId"`
	CloneWarning bool   `json:"cloneWarning,omitempty"`
	DID          string `json:"did,omitempty"`
}

type publishedKey struct {
	jwk   JWK
	until time.Time // zero for the current key
}

// RetiredKey is a signing key replaced at Retired; its tokens live until Retired + TTL.
type RetiredKey struct {
	Public  *ecdsa.PublicKey
	Retired time.Time
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

// NewSigner makes a Signer for a P-256 key; issuer is the service's, <public-url>/webauthn.
func NewSigner(key *ecdsa.PrivateKey, issuer string, ttl time.Duration) (*Signer, error) {
	if ttl <= 0 {
		return nil, errors.New("the token lifetime must be positive")
	}
	s := &Signer{issuer: issuer, ttl: ttl}
	return s, s.SetKeys(key, nil)
}

// SetKeys installs a new current key and the retired ones still to publish.
func (s *Signer) SetKeys(current *ecdsa.PrivateKey, retired []RetiredKey) error {
	if current == nil || current.Curve != elliptic.P256() {
		return errors.New("the token signing key must be a P-256 key")
	}
	jwk, err := toJWK(&current.PublicKey)
	if err != nil {
		return err
	}
	header, err := json.Marshal(map[string]string{"alg": jwt.SigningMethodES256.Alg(), "kid": jwk.Kid, "typ": "JWT"})
	if err != nil {
		return err
	}
	keys := &signerKeys{current: current, kid: jwk.Kid, header: base64.RawURLEncoding.EncodeToString(header),
		jwks: []publishedKey{{jwk: jwk}}}
	for _, r := range retired {
		j, err := toJWK(r.Public)
		if err != nil {
			return err
		}
		keys.jwks = append(keys.jwks, publishedKey{jwk: j, until: r.Retired.Add(s.ttl)})
	}
	s.keys.Store(keys)
	return nil
}

func toJWK(pub *ecdsa.PublicKey) (JWK, error) {
	p, err := pub.ECDH()
	if err != nil {
		return JWK{}, err
	}
	raw := p.Bytes() // 0x04 || X || Y
	x := base64.RawURLEncoding.EncodeToString(raw[1:33])
	y := base64.RawURLEncoding.EncodeToString(raw[33:65])
	// RFC 7638: the required members in lexicographic order, no whitespace.
	sum := sha256.Sum256([]byte(fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, x, y)))
	return JWK{Kty: "EC", Crv: "P-256", X: x, Y: y, Kid: base64.RawURLEncoding.EncodeToString(sum[:]), Use: "sig", Alg: "ES256"}, nil
}

// TTL is the lifetime of the tokens.
func (s *Signer) TTL() time.Duration { return s.ttl }

// JWKS returns the verification keys: the current one and the retired ones whose tokens may
// still be alive.
func (s *Signer) JWKS() []JWK {
	now := time.Now()
	var out []JWK
	for _, k := range s.keys.Load().jwks {
		if k.until.IsZero() || now.Before(k.until) {
			out = append(out, k.jwk)
		}
	}
	return out
}

// Sign issues the token of a sign-in with the current key. The header is encoded once per key
// and the claims are a struct: the JWS is assembled as jwt.Token.SignedString does, and
// golang-jwt computes and encodes the signature.
func (s *Signer) Sign(r messages.SignedIn, scope messages.Scope) (string, error) {
	if scope.TenantID == "" {
		return "", errors.New("a token must name its tenant")
	}
	keys := s.keys.Load()
	now := time.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	keyHash := sha256.Sum256(r.CredentialID)
	claims, err := json.Marshal(tokenClaims{
		Issuer:       s.issuer + "/tenants/" + url.PathEscape(scope.TenantID),
		TenantID:     scope.TenantID,
		Subject:      r.Username,
		Audience:     scope.CommunityID,
		IssuedAt:     now.Unix(),
		Expires:      now.Add(s.ttl).Unix(),
		ID:           base64.RawURLEncoding.EncodeToString(jti),
		FidoKeyHash:  hex.EncodeToString(keyHash[:]),
		UserVerified: r.UserVerified,
		RPID:         scope.RPID,
		CloneWarning: r.CloneWarning,
		DID:          r.DID,
	})
	if err != nil {
		return "", err
	}
	signing := keys.header + "." + base64.RawURLEncoding.EncodeToString(claims)
	sig, err := jwt.SigningMethodES256.Sign(signing, keys.current)
	if err != nil {
		return "", err
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
