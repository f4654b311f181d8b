package httpapi

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// memoryReplays is an in-memory Replays for unit tests and benchmarks.
type memoryReplays struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (m *memoryReplays) Remember(_ context.Context, caller []byte, uuid string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := string(caller) + "\x00" + uuid
	if m.seen[k] {
		return messages.Errorf(messages.CodeRequestReplayed, "replayed")
	}
	m.seen[k] = true
	return nil
}

// callerOf makes a caller key on the service key's curve and the key they share.
func callerOf(t testing.TB, service *EnvelopeKey) (public []byte, shared []byte) {
	t.Helper()
	server, _ := base64.StdEncoding.DecodeString(service.PublicKey())
	point := append([]byte{4}, server...)
	if service.Curve() == CurveSecp256k1 {
		priv, _ := secp256k1.GeneratePrivateKey()
		pub, _ := secp256k1.ParsePubKey(point)
		return priv.PubKey().SerializeUncompressed()[1:], secp256k1.GenerateSharedSecret(priv, pub)
	}
	priv, _ := ecdh.P256().GenerateKey(rand.Reader)
	pub, _ := ecdh.P256().NewPublicKey(point)
	s, _ := priv.ECDH(pub)
	return priv.PublicKey().Bytes()[1:], s
}

func TestEnvelopeSharedKeyAgrees(t *testing.T) {
	for _, curve := range []string{"secp256k1", "P-256", "prime256v1", "secp256r1"} {
		t.Run(curve, func(t *testing.T) {
			k, err := NewEnvelopeKey(curve)
			if err != nil {
				t.Fatal(err)
			}
			public, shared := callerOf(t, k)
			for _, form := range [][]byte{public, append([]byte{4}, public...)} {
				got, err := k.sharedKey(form)
				if err != nil || !bytes.Equal(got, shared) || len(got) != 32 {
					t.Fatalf("shared key of a %d-byte point: %x, %v; want %x", len(form), got, err, shared)
				}
			}
			if _, err := k.sharedKey(public[:63]); err == nil {
				t.Fatal("a 63-byte point was accepted")
			}
			off := append([]byte{}, public...)
			off[63] ^= 1
			if _, err := k.sharedKey(off); err == nil {
				t.Fatal("a point off the curve was accepted")
			}
			again, err := ParseEnvelopeKey(k.Curve(), k.Bytes())
			if err != nil || again.PublicKey() != k.PublicKey() {
				t.Fatalf("a stored key does not parse back: %v", err)
			}
			token, _ := seal(shared, []byte("hello"))
			if plain, err := open(shared, token); err != nil || string(plain) != "hello" {
				t.Fatalf("open(seal) = %q, %v", plain, err)
			}
		})
	}
	if _, err := NewEnvelopeKey("ed25519"); err == nil {
		t.Fatal("an unknown curve was accepted")
	}
}

// BenchmarkSealedRequest measures what the envelope costs a request: ECDH (or the cached shared
// key), three decryptions (licensekey, requestid, body), the freshness check, the replay record
// (in memory here) and sealing the answer. "one-caller" is a BlockID SDK, which keeps its key
// pair; "new-caller" gives every request a key never seen before, so each runs the ECDH.
func BenchmarkSealedRequest(b *testing.B) {
	for _, curve := range []string{CurveSecp256k1, CurveP256} {
		for _, fresh := range []bool{false, true} {
			name := curve + "/one-caller"
			if fresh {
				name = curve + "/new-caller"
			}
			b.Run(name, func(b *testing.B) {
				key, _ := NewEnvelopeKey(curve)
				lc, licenseKey := fuzzLicenses(b)
				type caller struct{ pub, license, body string }
				callers := make([]caller, 1)
				if fresh {
					callers = make([]caller, b.N)
				}
				shared := make([][]byte, len(callers))
				for i := range callers {
					public, s := callerOf(b, key)
					license, _ := seal(s, []byte(licenseKey))
					body, _ := seal(s, []byte(`{"dns":"localhost","username":"alice","communityId":"default"}`))
					raw, _ := json.Marshal(map[string]string{"data": body})
					callers[i], shared[i] = caller{base64.StdEncoding.EncodeToString(public), license, string(raw)}, s
				}
				inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					encode(w, http.StatusOK, map[string]string{"challenge": "x", "status": "success"})
				})
				h := sealed(NewKeyring(key), lc, &memoryReplays{seen: map[string]bool{}}, time.Minute, time.Now, zap.NewNop(), inner)
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					c, s := callers[i%len(callers)], shared[i%len(callers)]
					rid, _ := seal(s, []byte(`{"ts":`+strconv.FormatInt(time.Now().Unix(), 10)+`,"appid":"a","uuid":"`+strconv.Itoa(i)+`"}`))
					req := httptest.NewRequest("POST", "/webauthn/assertion/options", strings.NewReader(c.body))
					req.Header.Set("publickey", c.pub)
					req.Header.Set("licensekey", c.license)
					req.Header.Set("requestid", rid)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
				}
			})
		}
	}
}

// TestSharedKeyCache: a caller's shared key is the same whether derived or cached, in either
// point form; a point off the curve is refused every time, never cached; the cache never
// holds more than its bound.
func TestSharedKeyCache(t *testing.T) {
	for _, curve := range []string{CurveSecp256k1, CurveP256} {
		t.Run(curve, func(t *testing.T) {
			key, _ := NewEnvelopeKey(curve)
			public, want := callerOf(t, key)
			for i, form := range [][]byte{public, append([]byte{4}, public...), public} {
				got, err := key.sharedKey(form)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("call %d: shared key %x, %v; want %x", i, got, err, want)
				}
			}
			off := bytes.Clone(public)
			off[63] ^= 1
			for i := range 2 {
				if _, err := key.sharedKey(off); err == nil {
					t.Fatalf("call %d: an off-curve point was accepted", i)
				}
			}
			for i := range sharedKeyCacheSize + 10 {
				var peer [65]byte
				binary.BigEndian.PutUint32(peer[1:], uint32(i))
				key.shared.put(peer[:], want)
			}
			if n := len(key.shared.keys); n > sharedKeyCacheSize {
				t.Fatalf("cache holds %d entries, bound %d", n, sharedKeyCacheSize)
			}
		})
	}
}

// FuzzSealedRequest feeds the envelope hostile headers and bodies (publickey, licensekey,
// requestid, the sealed body): none may panic, and every refusal is a 4xx.
func FuzzSealedRequest(f *testing.F) {
	key, _ := NewEnvelopeKey(CurveSecp256k1)
	public, shared := callerOf(f, key)
	lc, licenseKey := fuzzLicenses(f)
	license, _ := seal(shared, []byte(licenseKey))
	rid, _ := seal(shared, []byte(`{"ts":`+strconv.FormatInt(time.Now().Unix(), 10)+`,"appid":"a","uuid":"u-1"}`))
	body, _ := seal(shared, []byte(`{"dns":"localhost","username":"alice"}`))
	pub := base64.StdEncoding.EncodeToString(public)
	f.Add(pub, license, rid, `{"data":"`+body+`"}`)
	f.Add(pub, licenseKey, rid, `{"data":"`+body+`"}`)
	f.Add(pub, license, "7d444840-9dc0-11d1-b245-5ffdce74fad2", `{"data":"`+body+`"}`)
	f.Add(base64.StdEncoding.EncodeToString(append([]byte{4}, public...)), license, rid, `{"data":""}`)
	f.Add("", "", "", "")
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "success"})
	})
	h := sealed(NewKeyring(key), lc, &memoryReplays{seen: map[string]bool{}}, time.Minute, time.Now, zap.NewNop(), inner)
	f.Fuzz(func(t *testing.T, publickey, licensekey, requestid, raw string) {
		req := httptest.NewRequest("POST", "/webauthn/assertion/options", bytes.NewReader([]byte(raw)))
		req.Header.Set("publickey", publickey)
		req.Header.Set("licensekey", licensekey)
		req.Header.Set("requestid", requestid)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK && (w.Code < 400 || w.Code >= 500) {
			t.Fatalf("answered %d: %s", w.Code, w.Body)
		}
		if w.Code == http.StatusOK {
			var out struct{ Data string }
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Data == "" {
				t.Fatalf("a success must be sealed: %s", w.Body)
			}
		}
	})
}
