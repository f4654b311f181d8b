package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/actors"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// BenchmarkSignInHTTP measures a whole sign-in by username through the service's HTTP handler
// and the real engine over Badger (options, verification, the synced counter write, the
// token), one at a time, without metrics and with them: the two sub-benchmarks differ only in
// Deps.Metrics and Config.Observer. Its purpose is the cost of metrics, counted in
// instructions under callgrind (docs/performance.md says how); the client's signing
// (virtualwebauthn, in benchSignIn's signAssertion) runs in the same process.
func BenchmarkSignInHTTP(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "metrics=off", true: "metrics=on"}[on]
		b.Run(name, func(b *testing.B) {
			c := newBenchClient(b, on)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.signIn(b)
			}
		})
	}
}

// benchClient is a relying party's backend with one registered passkey, calling the handler
// in-process.
type benchClient struct {
	handler  http.Handler
	license  string
	username string
	auth     virtualwebauthn.Authenticator
	cred     virtualwebauthn.Credential
}

var benchRP = virtualwebauthn.RelyingParty{ID: "localhost", Name: "c1", Origin: "http://localhost:8080"}

func newBenchClient(b *testing.B, metricsOn bool) *benchClient {
	b.Helper()
	ctx := context.Background()
	store, err := badger.Open(b.TempDir(), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	lic, key, err := persistence.NewLicense(persistence.LevelCommunity, "c1", "", 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, op := range []persistence.Op{
		persistence.PutCommunity{Create: true, Community: persistence.Community{ID: "c1", TenantID: "t1", Name: "c1",
			RPIDs: []string{"localhost"}, Origins: []string{"http://localhost:8080"}, UserVerification: persistence.VerificationPreferred}},
		persistence.PutLicense{License: lic},
	} {
		if _, err := persistence.ApplyOne(ctx, store, op); err != nil {
			b.Fatal(err)
		}
	}
	var metrics *Metrics
	var observer actors.Observer
	signing, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var engine *actors.Engine
	if metricsOn {
		metrics = NewMetrics(func(ctx context.Context) map[string]int { return engine.LiveByCommunity(ctx) })
		observer = metrics
	}
	engine, err = actors.NewEngine(actors.Config{CeremonyTimeout: time.Minute, MaxCeremonies: 100_000,
		Issuer: "http://localhost:8080/webauthn", TokenTTL: time.Minute, SigningKey: signing, DecoySecret: []byte("decoy"),
		Observer: observer}, store, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(engine.Stop)
	envelope, err := NewEnvelopeKey(CurveSecp256k1)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchClient{license: key, username: "bench-user", auth: virtualwebauthn.NewAuthenticator(), cred: benchCredential()}
	c.handler = NewServer(Deps{
		Config: Config{PublicURL: "http://localhost:8080", Version: "bench", CeremonyTimeout: time.Minute,
			TokenTTL: time.Minute, AllowedTimeSpan: time.Minute},
		Ceremonies: engine, Passkeys: engine, Licenses: store, Communities: store,
		Health: HealthChecks{}, Draining: func() bool { return false },
		TokenKeys: func() any { return engine.Signer().JWKS() }, Envelope: NewKeyring(envelope),
		Metrics: metrics, Log: zap.NewNop(),
	})

	var opts struct {
		Data json.RawMessage `json:"data"`
	}
	c.call(b, "/webauthn/u1/attestation/options", map[string]any{"dns": "localhost", "communityId": "c1",
		"username": c.username, "displayName": c.username}, &opts)
	ao, err := virtualwebauthn.ParseAttestationOptions(string(opts.Data))
	if err != nil {
		b.Fatal(err)
	}
	c.call(b, "/webauthn/u1/attestation/result",
		c.ceremonyBody(b, virtualwebauthn.CreateAttestationResponse(benchRP, c.auth, c.cred, *ao)), nil)
	c.auth.Options.UserHandle = []byte(ao.UserID)
	c.auth.AddCredential(c.cred)
	return c
}

// signIn runs one sign-in by username.
func (c *benchClient) signIn(b *testing.B) {
	var raw json.RawMessage
	c.call(b, "/webauthn/u1/assertion/options", map[string]any{"dns": "localhost", "communityId": "c1", "username": c.username}, &raw)
	var res struct {
		Token string `json:"signature_token"`
	}
	c.call(b, "/webauthn/u1/assertion/result", c.signAssertion(b, raw), &res)
	if res.Token == "" {
		b.Fatal("signed in without a token")
	}
}

// signAssertion is the authenticator's and the browser's part of a sign-in: the client's cost,
// apart in a profile.
func (c *benchClient) signAssertion(b *testing.B, options []byte) map[string]any {
	so, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		b.Fatal(err)
	}
	c.cred.Counter++
	return c.ceremonyBody(b, virtualwebauthn.CreateAssertionResponse(benchRP, c.auth, c.cred, *so))
}

func (c *benchClient) ceremonyBody(b *testing.B, credentialJSON string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(credentialJSON), &m); err != nil {
		b.Fatal(err)
	}
	m["dns"], m["communityId"] = "localhost", "c1"
	return m
}

// call POSTs body to path and decodes the 200 answer into out.
func (c *benchClient) call(b *testing.B, path string, body any, out any) {
	raw, err := json.Marshal(body)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("licensekey", c.license)
	rec := httptest.NewRecorder()
	c.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCredential is a P-256 credential whose coordinates are both 32 bytes long (see
// cmd/webauthnd's newES256Credential).
func benchCredential() virtualwebauthn.Credential {
	for {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if len(key.X.Bytes()) == 32 && len(key.Y.Bytes()) == 32 {
			der, _ := x509.MarshalPKCS8PrivateKey(key)
			return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
		}
	}
}
