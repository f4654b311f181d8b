package actors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/webauthnd/webauthnd/messages"
)

// TestSignerTokens: a token is an ES256 JWS whose kid names the current key, that golang-jwt
// verifies with that key, with the sign-in's claims; its iss and tid name the tenant, so a token
// of one tenant does not pass another's issuer check; cloneWarning appears only when set.
func TestSignerTokens(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := NewSigner(key, "https://id.example/webauthn", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	scope := messages.Scope{TenantID: "t1", CommunityID: "c1", RPID: "id.example"}
	for _, tc := range []struct {
		name   string
		signed messages.SignedIn
		want   map[string]any
	}{
		{"verified user", messages.SignedIn{Username: "alice", CredentialID: []byte{1, 2}, UserVerified: true},
			map[string]any{"sub": "alice", "uv": true}},
		{"clone warning", messages.SignedIn{Username: "bob", CredentialID: []byte{3}, CloneWarning: true},
			map[string]any{"sub": "bob", "uv": false, "cloneWarning": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, err := s.Sign(tc.signed, scope)
			if err != nil {
				t.Fatal(err)
			}
			claims := jwt.MapClaims{}
			parsed, err := jwt.ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) { return &key.PublicKey, nil },
				jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer("https://id.example/webauthn/tenants/t1"),
				jwt.WithAudience("c1"), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
			if err != nil {
				t.Fatalf("token does not verify: %v", err)
			}
			if parsed.Header["kid"] != s.JWKS()[0].Kid || parsed.Header["typ"] != "JWT" {
				t.Fatalf("header %v, want kid %s", parsed.Header, s.JWKS()[0].Kid)
			}
			sum := sha256.Sum256(tc.signed.CredentialID)
			tc.want["fidoKeyHash"], tc.want["rpId"], tc.want["tid"] = hex.EncodeToString(sum[:]), "id.example", "t1"
			for k, v := range tc.want {
				if claims[k] != v {
					t.Errorf("claim %s = %v, want %v", k, claims[k], v)
				}
			}
			if _, ok := claims["cloneWarning"]; ok != tc.signed.CloneWarning {
				t.Errorf("cloneWarning present = %v, want %v", ok, tc.signed.CloneWarning)
			}
			other := scope
			other.TenantID = "t2"
			token2, err := s.Sign(tc.signed, other)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jwt.Parse(token2, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
				jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer("https://id.example/webauthn/tenants/t1")); err == nil {
				t.Fatal("another tenant's token passed this tenant's issuer check")
			}
			if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 60 || claims["jti"] == "" {
				t.Errorf("exp - iat = %v, jti %v", exp-iat, claims["jti"])
			}
		})
	}
	if _, err := s.Sign(messages.SignedIn{Username: "alice"}, messages.Scope{CommunityID: "c1"}); err == nil {
		t.Fatal("a token without a tenant was signed")
	}
}

// BenchmarkSignToken measures issuing one signature token: claims, ES256 signature, encoding.
func BenchmarkSignToken(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := NewSigner(key, "https://id.example/webauthn", time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	r := messages.SignedIn{Username: "alice", CredentialID: make([]byte, 32), UserVerified: true}
	scope := messages.Scope{TenantID: "t1", CommunityID: "c1", RPID: "id.example"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(r, scope); err != nil {
			b.Fatal(err)
		}
	}
}
