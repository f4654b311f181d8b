package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// fakeService is the service's side of the envelope, written apart from the harness's client
// (from README's "sealed routes"): it derives the shared key from the caller's publickey header.
type fakeService struct {
	curve  string
	public []byte // 0x04 ‖ X ‖ Y
	shared func(caller []byte) []byte
}

func newFakeService(t *testing.T, curve string) fakeService {
	t.Helper()
	switch curve {
	case curveSecp256k1:
		k, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		return fakeService{curve, k.PubKey().SerializeUncompressed(), func(caller []byte) []byte {
			pub, err := secp256k1.ParsePubKey(append([]byte{4}, caller...))
			if err != nil {
				t.Fatalf("caller key: %v", err)
			}
			return secp256k1.GenerateSharedSecret(k, pub)
		}}
	default:
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return fakeService{curve, k.PublicKey().Bytes(), func(caller []byte) []byte {
			pub, err := ecdh.P256().NewPublicKey(append([]byte{4}, caller...))
			if err != nil {
				t.Fatalf("caller key: %v", err)
			}
			s, err := k.ECDH(pub)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}}
	}
}

// aead is AES-256-GCM with BlockID's 16-byte IV.
func aead(t *testing.T, key []byte) cipher.AEAD {
	t.Helper()
	if len(key) != 32 {
		t.Fatalf("shared key of %d bytes, want 32 (AES-256)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, err := cipher.NewGCMWithNonceSize(block, 16)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// openToken opens a token as the service does: strict standard base64 of IV(16) ‖ ct ‖ tag.
func openToken(t *testing.T, g cipher.AEAD, token string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil {
		t.Fatalf("token %q is not strict standard base64: %v", token, err)
	}
	plain, err := g.Open(nil, raw[:16], raw[16:], nil)
	if err != nil {
		t.Fatalf("token does not open: %v", err)
	}
	return plain
}

func TestEnvelopeSpeaksTheServiceFormat(t *testing.T) {
	for _, curve := range []string{curveSecp256k1, curveP256} {
		t.Run(curve, func(t *testing.T) {
			svc := newFakeService(t, curve)
			env, err := newEnvelope(serviceKey{curve: curve, point: svc.public})
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			now := time.Unix(1_780_000_000, 0)
			env.headers(h, "the-license", now)
			caller, err := base64.StdEncoding.Strict().DecodeString(h.Get("publickey"))
			if err != nil || len(caller) != 64 {
				t.Fatalf("publickey header %q: want standard base64 of 64 bytes", h.Get("publickey"))
			}
			g := aead(t, svc.shared(caller))

			if got := openToken(t, g, h.Get("licensekey")); string(got) != "the-license" {
				t.Errorf("licensekey opens to %q", got)
			}
			var id struct {
				TS    *int64 `json:"ts"`
				AppID string `json:"appid"`
				UUID  string `json:"uuid"`
			}
			if err := json.Unmarshal(openToken(t, g, h.Get("requestid")), &id); err != nil || id.TS == nil || *id.TS != now.Unix() || id.AppID == "" || len(id.UUID) != 36 {
				t.Errorf("requestid opens to %+v (%v), want ts %d, an appid and a uuid", id, err, now.Unix())
			}
			again := http.Header{}
			env.headers(again, "the-license", now)
			if again.Get("requestid") == h.Get("requestid") || again.Get("licensekey") == h.Get("licensekey") {
				t.Error("two calls carry the same sealed headers: want a fresh IV and uuid per call")
			}

			var body struct {
				Data string `json:"data"`
			}
			if err := json.Unmarshal(env.body([]byte(`{"dns":"localhost"}`)), &body); err != nil {
				t.Fatal(err)
			}
			if got := openToken(t, g, body.Data); string(got) != `{"dns":"localhost"}` {
				t.Errorf("body opens to %q", got)
			}

			iv := make([]byte, 16)
			_, _ = rand.Read(iv)
			answer, _ := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(g.Seal(iv, iv, []byte(`{"ok":true}`), nil))})
			if plain, err := env.unwrap(answer); err != nil || !bytes.Equal(plain, []byte(`{"ok":true}`)) {
				t.Errorf("unwrap of the service's answer = %q, %v", plain, err)
			}
		})
	}
}

func TestEnvelopeRefusesBadAnswers(t *testing.T) {
	svc := newFakeService(t, curveSecp256k1)
	env, err := newEnvelope(serviceKey{curve: curveSecp256k1, point: svc.public})
	if err != nil {
		t.Fatal(err)
	}
	other, err := newEnvelope(serviceKey{curve: curveSecp256k1, point: svc.public})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		answer string
	}{
		{"plain JSON", `{"challenge":"abc"}`},
		{"data that is not base64", `{"data":"***"}`},
		{"data too short", `{"data":"AAAA"}`},
		{"data sealed for another caller", `{"data":"` + other.seal([]byte(`{}`)) + `"}`},
		{"not JSON", `<html>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if plain, err := env.unwrap([]byte(tc.answer)); err == nil {
				t.Errorf("unwrap(%s) = %q, want an error", tc.answer, plain)
			}
		})
	}
}

func TestNewEnvelopeRefusesBadServiceKeys(t *testing.T) {
	offCurve := append([]byte{4}, bytes.Repeat([]byte{1}, 64)...)
	for _, tc := range []struct {
		name string
		key  serviceKey
	}{
		{"secp256k1, a point off the curve", serviceKey{curve: curveSecp256k1, point: offCurve}},
		{"P-256, a point off the curve", serviceKey{curve: curveP256, point: offCurve}},
		{"an unknown curve", serviceKey{curve: "ed25519", point: newFakeService(t, curveP256).public}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := newEnvelope(tc.key); err == nil {
				t.Error("newEnvelope succeeded, want an error")
			}
		})
	}
}
