package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// The harness's own client of the sealed ("encrypted") routes, written from the wire format as a
// BlockID SDK carries its own: the caller has a key pair on the service's curve; the AES-256-GCM
// key is the x-coordinate of the ECDH point of the caller's key and the service's (no KDF);
// a token is standard base64 of IV(16) ‖ ciphertext ‖ tag(16). A sealed call carries the
// caller's public point in the publickey header, token(license key) in licensekey,
// token({"ts","appid","uuid"}) in requestid, and {"data": token(u1 body)} as its body; a
// success answers {"data": token(u1 answer)}, an error plain JSON.

// The envelope curves, by the names /webauthn/environment gives them (OpenSSL's).
const (
	curveSecp256k1 = "secp256k1"
	curveP256      = "prime256v1"
)

// envelopeIVSize is the IV length of BlockID's AES-GCM tokens (not Go's default 12).
const envelopeIVSize = 16

// benchAppID is the appid of every sealed request of the harness.
const benchAppID = "com.webauthnd.bench"

// serviceKey is the service's envelope public key, as a client learns it once per run.
type serviceKey struct {
	curve string // curveSecp256k1 or curveP256
	point []byte // uncompressed: 0x04 ‖ X ‖ Y
}

// fetchServiceKey reads the envelope curve from /webauthn/environment and the service's public
// point from /webauthn/publickeys.
func fetchServiceKey(ctx context.Context, hc *http.Client, baseURL string) (serviceKey, error) {
	var env struct {
		Curve string `json:"ec_curve_name"`
	}
	if err := getJSON(ctx, hc, baseURL+"/webauthn/environment", &env); err != nil {
		return serviceKey{}, err
	}
	var keys struct {
		PublicKey string `json:"publicKey"`
	}
	if err := getJSON(ctx, hc, baseURL+"/webauthn/publickeys", &keys); err != nil {
		return serviceKey{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(keys.PublicKey)
	if err != nil || len(raw) != 64 {
		return serviceKey{}, fmt.Errorf("/webauthn/publickeys: publicKey %q is not the base64 of a 64-byte X‖Y point", keys.PublicKey)
	}
	switch env.Curve {
	case curveSecp256k1, curveP256:
	default:
		return serviceKey{}, fmt.Errorf("/webauthn/environment: ec_curve_name %q: the harness knows secp256k1 and prime256v1", env.Curve)
	}
	return serviceKey{curve: env.Curve, point: append([]byte{4}, raw...)}, nil
}

// getJSON GETs url and decodes a 200 answer into v.
func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %.200s", url, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// envelope is one caller's session with the service: its public point and the AES-GCM cipher of
// the key it shares with the service. A virtual user makes one, as an SDK does per session, so
// that the ECDH is paid once and every call only encrypts. It is safe for concurrent use.
type envelope struct {
	public string // standard base64 of the caller's X‖Y
	aead   cipher.AEAD
}

// newEnvelope makes a fresh caller key pair on the service's curve and the key it shares with
// the service.
func newEnvelope(svc serviceKey) (*envelope, error) {
	var public, shared []byte
	switch svc.curve {
	case curveSecp256k1:
		peer, err := secp256k1.ParsePubKey(svc.point)
		if err != nil {
			return nil, fmt.Errorf("service key: %w", err)
		}
		priv, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			return nil, err
		}
		public, shared = priv.PubKey().SerializeUncompressed(), secp256k1.GenerateSharedSecret(priv, peer)
	case curveP256:
		peer, err := ecdh.P256().NewPublicKey(svc.point)
		if err != nil {
			return nil, fmt.Errorf("service key: %w", err)
		}
		priv, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if shared, err = priv.ECDH(peer); err != nil {
			return nil, err
		}
		public = priv.PublicKey().Bytes()
	default:
		return nil, fmt.Errorf("envelope curve %q: the harness knows secp256k1 and prime256v1", svc.curve)
	}
	block, err := aes.NewCipher(shared)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithNonceSize(block, envelopeIVSize)
	if err != nil {
		return nil, err
	}
	return &envelope{public: base64.StdEncoding.EncodeToString(public[1:]), aead: aead}, nil
}

// seal encrypts plaintext into a token: standard base64 of a fresh IV ‖ ciphertext ‖ tag.
func (e *envelope) seal(plaintext []byte) string {
	iv := make([]byte, envelopeIVSize, envelopeIVSize+len(plaintext)+e.aead.Overhead())
	_, _ = rand.Read(iv) // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(e.aead.Seal(iv, iv, plaintext, nil))
}

// open decrypts a token that the service sealed.
func (e *envelope) open(token string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return nil, fmt.Errorf("not standard base64: %w", err)
	}
	if len(raw) < envelopeIVSize+e.aead.Overhead() {
		return nil, errors.New("token too short")
	}
	return e.aead.Open(nil, raw[:envelopeIVSize], raw[envelopeIVSize:], nil)
}

// headers sets the envelope's headers of one call: the caller's key, the sealed license key and
// a sealed request id with the time now and a fresh uuid (the service accepts each uuid once).
func (e *envelope) headers(h http.Header, license string, now time.Time) {
	id, _ := json.Marshal(struct {
		TS    int64  `json:"ts"`
		AppID string `json:"appid"`
		UUID  string `json:"uuid"`
	}{now.Unix(), benchAppID, newUUID()})
	h.Set("publickey", e.public)
	h.Set("licensekey", e.seal([]byte(license)))
	h.Set("requestid", e.seal(id))
}

// body is the sealed body of a call: {"data": token(plain)}.
func (e *envelope) body(plain []byte) []byte {
	b, _ := json.Marshal(struct {
		Data string `json:"data"`
	}{e.seal(plain)})
	return b
}

// unwrap returns the plaintext of a sealed success answer {"data": token}.
func (e *envelope) unwrap(answer []byte) ([]byte, error) {
	var sealed struct {
		Data *string `json:"data"`
	}
	if err := json.Unmarshal(answer, &sealed); err != nil || sealed.Data == nil {
		return nil, fmt.Errorf("a sealed answer is {\"data\": token}, not %.200s", answer)
	}
	plain, err := e.open(*sealed.Data)
	if err != nil {
		return nil, fmt.Errorf("the answer's data does not decrypt: %w", err)
	}
	return plain, nil
}

// newUUID returns a random version 4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
