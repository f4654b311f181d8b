package actors

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// fuzzRP is one community's relying party, built by the ceremony's own setup, with a user, a
// registration ceremony and a sign-in ceremony whose challenges are fixed, and real responses
// to both (made by a software authenticator) that pass verification: the seeds.
type fuzzRP struct {
	c                         *ceremony
	user                      *waUser
	regSession, signSession   webauthn.SessionData
	registrations, assertions [][]byte
	coseKeys                  [][]byte
}

func newFuzzRP(tb testing.TB) *fuzzRP {
	tb.Helper()
	store, err := badger.Open(tb.TempDir(), zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	if _, err := persistence.ApplyOne(ctx, store, persistence.PutCommunity{Create: true, Community: persistence.Community{
		ID: "c1", TenantID: "t1", Name: "c1", RPIDs: []string{"localhost"}, Origins: []string{"http://localhost:8080"},
		UserVerification: persistence.VerificationPreferred}}); err != nil {
		tb.Fatal(err)
	}
	challenge := bytes.Repeat([]byte{0x5a}, challengeSize)
	handle := bytes.Repeat([]byte{0x11}, 32)
	r := &fuzzRP{
		c:    &ceremony{deps: &deps{cfg: Config{CeremonyTimeout: time.Hour}, store: store, log: zap.NewNop()}, challenge: challenge},
		user: &waUser{u: persistence.User{CommunityID: "c1", Username: "alice", DisplayName: "Alice", Handle: handle}},
	}
	if err := r.c.setup(ctx, scope); err != nil {
		tb.Fatal(err)
	}
	_, session, err := r.c.wa.BeginRegistration(r.user, webauthn.WithCredentialParameters(credentialParameters),
		func(o *protocol.PublicKeyCredentialCreationOptions) error { o.Challenge = challenge; return nil })
	if err != nil {
		tb.Fatal(err)
	}
	r.regSession = *session

	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "c1", Origin: "http://localhost:8080"}
	opts := virtualwebauthn.AttestationOptions{Challenge: challenge, RelyingPartyID: "localhost", UserID: string(handle), UserName: "alice"}
	auth := virtualwebauthn.NewAuthenticator()
	ec, rsa := benchCredential(), virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeRSA)
	for i, cred := range []virtualwebauthn.Credential{ec, rsa} {
		raw := []byte(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, opts))
		stored, err := r.verifyRegistration(raw)
		if err != nil {
			tb.Fatalf("a real registration does not verify: %v", err)
		}
		r.registrations = append(r.registrations, raw)
		r.coseKeys = append(r.coseKeys, stored.PublicKey)
		if i == 0 {
			r.user.creds = append(r.user.creds, *stored)
		}
	}
	_, session, err = r.c.wa.BeginLogin(r.user, webauthn.WithChallenge(challenge))
	if err != nil {
		tb.Fatal(err)
	}
	r.signSession = *session
	auth.Options.UserHandle = handle
	auth.AddCredential(ec)
	ec.Counter = 7
	raw := []byte(virtualwebauthn.CreateAssertionResponse(rp, auth, ec, virtualwebauthn.AssertionOptions{Challenge: challenge, RelyingPartyID: "localhost"}))
	if err := r.verifyAssertion(raw); err != nil {
		tb.Fatalf("a real assertion does not verify: %v", err)
	}
	r.assertions = append(r.assertions, raw)
	return r
}

// fuzzChallenges checks challenges under a key of the fuzz tests' own.
var fuzzChallenges = newChallenges(bytes.Repeat([]byte{0x42}, challengeKeySize))

// verifyRegistration runs what finishRegistration runs on a credential, up to the write.
func (r *fuzzRP) verifyRegistration(raw []byte) (*webauthn.Credential, error) {
	c, err := decodeCredential(raw)
	if err != nil {
		return nil, messages.Wrap(messages.CodeInvalidCredential, "not a credential", err)
	}
	_, p, err := parseRegistration(c)
	if err != nil {
		return nil, err
	} else if p.err != nil {
		return nil, classify(p.err)
	}
	parsed := p.value.(*protocol.ParsedCredentialCreationData)
	if err := checkCrossOrigin(parsed.Response.CollectedClientData, r.c.community); err != nil {
		return nil, err
	}
	cred, err := r.c.wa.CreateCredential(r.user, r.regSession, parsed)
	if err != nil {
		return nil, classify(err)
	}
	if _, _, err := publicKeyInfo(cred.PublicKey); err != nil {
		return nil, messages.Wrap(messages.CodeInvalidCredential, "the credential public key cannot be read", err)
	}
	return cred, nil
}

// verifyAssertion runs what finishSignIn runs on an assertion, up to the write.
func (r *fuzzRP) verifyAssertion(raw []byte) error {
	c, err := decodeCredential(raw)
	if err != nil {
		return messages.Wrap(messages.CodeInvalidCredential, "not a credential", err)
	}
	_, p, err := parseAssertion(c)
	if err != nil {
		return err
	} else if p.err != nil {
		return classify(p.err)
	}
	parsed := p.value.(*protocol.ParsedCredentialAssertionData)
	if err := checkCrossOrigin(parsed.Response.CollectedClientData, r.c.community); err != nil {
		return err
	}
	if _, err := r.c.wa.ValidateLogin(r.user, r.signSession, parsed); err != nil {
		return classify(err)
	}
	return nil
}

// checkRefusal fails the test unless err is one of the service's errors with a client's code.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var e *messages.Error
	if !errors.As(err, &e) || e.Code == messages.CodeInternal || e.Code == messages.CodeUnavailable {
		t.Fatalf("refused with %v, not a client error", err)
	}
}

// FuzzParseResult feeds untrusted result credentials to what the engine runs before routing
// (go-webauthn's parse, then the ceremony's name from the challenge): it must never panic; a
// credential it cannot route is refused with invalid_credential; a routed one whose challenge
// the service did not issue is ceremony_not_found, a routed one is named by a 128-bit hex
// digest, and its parse failure, if any, is a client error.
func FuzzParseResult(f *testing.F) {
	// The seeds' challenges are fixed, not issued: none carries a MAC under this key.
	r := newFuzzRP(f)
	for _, seed := range append(r.registrations, r.assertions...) {
		f.Add(seed)
	}
	f.Add([]byte(`{"response":{"clientDataJSON":"eyJjaGFsbGVuZ2UiOiJBQUFBIn0="}}`))
	f.Add([]byte(`{"response":{"clientDataJSON":""}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := decodeCredential(body)
		if err != nil {
			return // the wire refuses it
		}
		for _, parse := range []func(messages.Credential) ([]byte, parsedResult, error){parseRegistration, parseAssertion} {
			challenge, p, err := parse(c)
			if err != nil {
				if messages.ErrorCode(err) != messages.CodeInvalidCredential {
					t.Fatalf("refused with %v, want %s", err, messages.CodeInvalidCredential)
				}
				continue
			}
			if _, err := fuzzChallenges.check(challenge, kindSignIn, "c1", "l1", "s"); err != errCeremonyNotFound {
				t.Fatalf("a challenge the service did not issue: %v, want %v", err, errCeremonyNotFound)
			}
			if name := ceremonyName(challenge); len(name) != 32 {
				t.Fatalf("ceremony name %q is not 16 bytes of hex", name)
			}
			if (p.err == nil) == (p.value == nil) {
				t.Fatalf("parsed %v and error %v: want exactly one", p.value, p.err)
			}
			if p.err != nil {
				checkRefusal(t, classify(p.err))
			}
		}
	})
}

// FuzzFinishRegistration feeds untrusted attestation responses through go-webauthn's parser
// (JSON, base64url, clientDataJSON, the CBOR attestation object, the COSE key, every
// attestation format) and the whole verification a registration ceremony runs. It must
// never panic; a refusal is a client error; the real seeds verify.
func FuzzFinishRegistration(f *testing.F) {
	r := newFuzzRP(f)
	for _, seed := range r.registrations {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := r.verifyRegistration(body); err != nil {
			checkRefusal(t, err)
		}
	})
}

// FuzzFinishSignIn feeds untrusted assertion responses through go-webauthn's parser and the
// whole verification a sign-in ceremony runs against a registered credential. It must never
// panic; a refusal is a client error.
func FuzzFinishSignIn(f *testing.F) {
	r := newFuzzRP(f)
	for _, seed := range r.assertions {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := r.verifyAssertion(body); err != nil {
			checkRefusal(t, err)
		}
	})
}

// FuzzCOSEKey feeds untrusted COSE keys (as a credential's public key) to what reads them for
// the registration answer. It must never panic.
func FuzzCOSEKey(f *testing.F) {
	r := newFuzzRP(f)
	for _, seed := range r.coseKeys {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cose []byte) {
		spki, _, err := publicKeyInfo(cose)
		if err == nil && len(spki) == 0 {
			t.Fatal("an accepted key has an empty SubjectPublicKeyInfo")
		}
	})
}
