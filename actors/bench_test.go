package actors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/webauthnd/webauthnd/messages"
)

// BenchmarkBeginSignIn measures a discoverable options call: supervisor, ceremony actor,
// go-webauthn options, one round trip.
func BenchmarkBeginSignIn(b *testing.B) {
	t := &testing.T{}
	e := newTestEngine(t, Config{CeremonyTimeout: 2 * time.Second}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSignInCeremony measures a whole sign-in (options, verification in the ceremony
// actor, the synced counter write, the token) for one registered ES256 passkey per goroutine,
// 16 goroutines per CPU, so that the writer can group commits as under load. The client's
// signing (virtualwebauthn) runs in the same process and is part of the figure.
func BenchmarkSignInCeremony(b *testing.B) {
	t := &testing.T{}
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil)
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "c1", Origin: "http://localhost:8080"}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		auth, cred := virtualwebauthn.NewAuthenticator(), benchCredential()
		username := string(rand.Text())
		opts, err := e.BeginRegistration(messages.BeginRegistration{Scope: scope, Username: username})
		if err != nil {
			b.Fatal(err)
		}
		ao, _ := virtualwebauthn.ParseAttestationOptions(string(opts.Options))
		if _, err := e.FinishRegistration(messages.FinishRegistration{Scope: scope,
			Credential: credentialOf(b, []byte(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *ao)))}); err != nil {
			b.Fatal(err)
		}
		auth.Options.UserHandle = []byte(ao.UserID)
		auth.AddCredential(cred)
		for pb.Next() {
			opts, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope, Username: username})
			if err != nil {
				b.Fatal(err)
			}
			so, _ := virtualwebauthn.ParseAssertionOptions(string(opts.Options))
			cred.Counter++
			res, err := e.FinishSignIn(messages.FinishSignIn{Scope: scope,
				Credential: credentialOf(b, []byte(virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *so)))})
			if err != nil || res.Token == "" {
				b.Fatal(err)
			}
		}
	})
}

func benchCredential() virtualwebauthn.Credential {
	for {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if len(key.X.Bytes()) == 32 && len(key.Y.Bytes()) == 32 {
			der, _ := x509.MarshalPKCS8PrivateKey(key)
			return virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der)
		}
	}
}
