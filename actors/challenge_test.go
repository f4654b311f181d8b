package actors

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"reflect"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// TestChallengeMACs: a challenge checks only for the kind, community and license it was issued
// for, and for its own sessionInfo when the result names one; anything else, a challenge made
// up, cut, changed in one bit or issued under another key, is ceremony_not_found.
func TestChallengeMACs(t *testing.T) {
	key := bytes.Repeat([]byte{7}, challengeKeySize)
	k := newChallenges(key)
	issued := k.seal(k.random(), kindSignIn, "c1", "l1", "s1")
	if len(issued) != challengeSize {
		t.Fatalf("challenge of %d bytes, want %d", len(issued), challengeSize)
	}
	if again := k.seal(k.random(), kindSignIn, "c1", "l1", "s1"); bytes.Equal(again[:challengeRandom], issued[:challengeRandom]) {
		t.Fatal("two challenges share their random bytes")
	}
	flip := func(i int) []byte {
		c := bytes.Clone(issued)
		c[i] ^= 1
		return c
	}
	for _, tc := range []struct {
		name                    string
		keys                    challenges
		challenge               []byte
		kind                    kind
		community, license, ses string
		want                    error
	}{
		{"as issued", k, issued, kindSignIn, "c1", "l1", "s1", nil},
		{"without a sessionInfo", k, issued, kindSignIn, "c1", "l1", "", nil},
		{"another sessionInfo", k, issued, kindSignIn, "c1", "l1", "s2", errSessionMismatch},
		{"another license", k, issued, kindSignIn, "c1", "l2", "s1", errCeremonyNotFound},
		{"no license", k, issued, kindSignIn, "c1", "", "s1", errCeremonyNotFound},
		{"another community", k, issued, kindSignIn, "c2", "l1", "s1", errCeremonyNotFound},
		{"another kind", k, issued, kindRegistration, "c1", "l1", "s1", errCeremonyNotFound},
		{"fields run together", k, issued, kindSignIn, "c1l", "1", "s1", errCeremonyNotFound},
		{"another key", newChallenges(bytes.Repeat([]byte{8}, challengeKeySize)), issued, kindSignIn, "c1", "l1", "s1", errCeremonyNotFound},
		{"a random byte changed", k, flip(3), kindSignIn, "c1", "l1", "s1", errCeremonyNotFound},
		{"the ceremony tag changed", k, flip(challengeRandom + 2), kindSignIn, "c1", "l1", "s1", errCeremonyNotFound},
		{"the session tag changed", k, flip(challengeSize - 1), kindSignIn, "c1", "l1", "s1", errSessionMismatch},
		{"the session tag changed, no sessionInfo given", k, flip(challengeSize - 1), kindSignIn, "c1", "l1", "", nil},
		{"cut short", k, issued[:challengeSize-1], kindSignIn, "c1", "l1", "", errCeremonyNotFound},
		{"made longer", k, append(bytes.Clone(issued), 0), kindSignIn, "c1", "l1", "", errCeremonyNotFound},
		{"made up", k, bytes.Repeat([]byte{1}, challengeSize), kindSignIn, "c1", "l1", "", errCeremonyNotFound},
		{"empty", k, nil, kindSignIn, "c1", "l1", "", errCeremonyNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, err := tc.keys.check(tc.challenge, tc.kind, tc.community, tc.license, tc.ses)
			if err != tc.want {
				t.Fatalf("check: %v, want %v", err, tc.want)
			}
			if want := ceremonyName(issued[:challengeRandom]); err == nil && name != want {
				t.Fatalf("named %q, want %q (the digest of its random bytes)", name, want)
			}
		})
	}
}

// TestFixedChallengeOnlyInTests: the test hook's challenge is issued as it is and passes the
// check without MACs; other challenges still need theirs.
func TestFixedChallengeOnlyInTests(t *testing.T) {
	k := newChallenges(bytes.Repeat([]byte{7}, challengeKeySize))
	fixed := bytes.Repeat([]byte{0x5a}, 20)
	if _, err := k.check(fixed, kindSignIn, "c1", "", ""); err != errCeremonyNotFound {
		t.Fatalf("a fixed challenge without the hook: %v, want %v", err, errCeremonyNotFound)
	}
	fixedChallenge = fixed
	t.Cleanup(func() { fixedChallenge = nil })
	if got := k.seal(k.random(), kindSignIn, "c1", "", "s"); !bytes.Equal(got, fixed) {
		t.Fatalf("issued %x, want the fixed challenge", got)
	}
	if name, err := k.check(fixed, kindSignIn, "c1", "", "s"); err != nil || name != ceremonyName(fixed) {
		t.Fatalf("the fixed challenge: %q, %v", name, err)
	}
	if _, err := k.check(bytes.Repeat([]byte{1}, challengeSize), kindSignIn, "c1", "", ""); err != errCeremonyNotFound {
		t.Fatalf("another challenge while the hook is set: %v, want %v", err, errCeremonyNotFound)
	}
}

// TestEngineChallengeKey: an engine that keeps ceremonies in a shared store needs the nodes'
// shared key, of at least 32 bytes; one that does not makes a key of its own.
func TestEngineChallengeKey(t *testing.T) {
	base := Config{CeremonyTimeout: time.Minute, MaxCeremonies: 10, TokenTTL: time.Minute}
	var shared persistence.Ceremonies = struct{ persistence.Ceremonies }{}
	for _, tc := range []struct {
		name       string
		key        []byte
		ceremonies persistence.Ceremonies
		ok         bool
	}{
		{"no key, one process", nil, nil, true},
		{"no key, a shared store", nil, shared, false},
		{"a short key", make([]byte, challengeKeySize-1), nil, false},
		{"a key, a shared store", make([]byte, challengeKeySize), shared, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.ChallengeKey, cfg.Ceremonies = tc.key, tc.ceremonies
			_, err := newEngineWith(t, cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("NewEngine: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// newEngineWith is NewEngine with cfg on a Badger store, stopped when the test ends.
func newEngineWith(t *testing.T, cfg Config) (*Engine, error) {
	t.Helper()
	store, err := badger.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg.SigningKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg.Issuer, cfg.DecoySecret = "http://localhost:8080/webauthn", []byte("decoy")
	e, err := NewEngine(cfg, store, zap.NewNop())
	if e != nil {
		t.Cleanup(e.Stop)
	}
	return e, err
}

// TestCeremonyStateRoundTrip: what a ceremony writes for another node reads back as the same
// ceremony: kind, sessionInfo, scope, community, go-webauthn session, user with its passkeys
// as go-webauthn saw them, decoy flag, authenticator selection.
func TestCeremonyStateRoundTrip(t *testing.T) {
	community := persistence.Community{ID: "c1", TenantID: "t1", Name: "c1", RPIDs: []string{"localhost"},
		Origins: []string{"http://localhost:8080"}, TopOrigins: []string{"https://top.example"},
		UserVerification: persistence.VerificationRequired, BlockClones: true,
		AttestationTrust: persistence.AttestationTrustRequired, Created: time.Now().UTC(), Updated: time.Now().UTC()}
	stored := persistence.Credential{ID: []byte("cred-1"), PublicKey: decoyPublicKey, AttestationType: "basic_full",
		AttestationFormat: "packed", Transports: []string{"usb", "nfc"}, UserPresent: true, UserVerified: true,
		BackupEligible: true, BackupState: true, AAGUID: bytes.Repeat([]byte{9}, 16), SignCount: 41, CloneWarning: true}
	for _, tc := range []struct {
		name string
		kind kind
		user *waUser
	}{
		{"a registration of a known user", kindRegistration, &waUser{
			u:     persistence.User{CommunityID: "c1", Username: "alice", DisplayName: "Alice A.", Handle: []byte("handle-a")},
			creds: []webauthn.Credential{webauthnCredential(stored)}}},
		{"a registration of a new user", kindRegistration, &waUser{
			u: persistence.User{CommunityID: "c1", Username: "bob", DisplayName: "Bob", Handle: []byte("handle-b")}}},
		{"a discoverable sign-in", kindSignIn, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &deps{cfg: Config{CeremonyTimeout: time.Minute}, log: zap.NewNop()}
			c := &ceremony{deps: d, kind: tc.kind, name: "n", sessionInfo: "session-info", user: tc.user, decoy: tc.kind == kindSignIn,
				selection: messages.AuthenticatorSelection{AuthenticatorAttachment: "platform", ResidentKey: "required", UserVerification: "required"}}
			sc := messages.Scope{TenantID: "t1", CommunityID: "c1", RPID: "localhost", LicenseID: "l1"}
			if err := c.relyingParty(sc, community); err != nil {
				t.Fatal(err)
			}
			c.session = &webauthn.SessionData{Challenge: "Y2hhbGxlbmdl", RelyingPartyID: "localhost", UserID: []byte("handle-a"),
				AllowedCredentialIDs: [][]byte{[]byte("cred-1")}, Expires: time.Now().Add(time.Minute).UTC(),
				UserVerification: protocol.VerificationRequired, CredParams: credentialParameters, Mediation: protocol.MediationConditional}
			raw, err := c.encodeState()
			if err != nil {
				t.Fatal(err)
			}
			s, err := decodeState(raw)
			if err != nil {
				t.Fatal(err)
			}
			r := &ceremony{deps: d, name: "n", rehydrated: true}
			if err := r.restore(s); err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				what      string
				got, want any
			}{
				{"kind", r.kind, c.kind},
				{"sessionInfo", r.sessionInfo, c.sessionInfo},
				{"scope", r.scope, c.scope},
				{"community", r.community, c.community},
				{"session", *r.session, *c.session},
				{"user", r.user, c.user},
				{"decoy", r.decoy, c.decoy},
				{"selection", r.selection, c.selection},
				{"expiry", s.Expires, c.session.Expires},
				{"relying party", r.wa.Config.RPOrigins, c.wa.Config.RPOrigins},
			} {
				if !reflect.DeepEqual(f.got, f.want) {
					t.Errorf("%s: restored %#v, want %#v", f.what, f.got, f.want)
				}
			}
		})
	}
}

// TestCeremonyStateRefused: a state of another version or kind, or one that is not JSON, is not
// read.
func TestCeremonyStateRefused(t *testing.T) {
	for _, raw := range []string{`{"v":2,"kind":1}`, `{"v":1,"kind":3}`, `{"v":1}`, `not json`, ``} {
		if _, err := decodeState([]byte(raw)); err == nil {
			t.Errorf("decodeState(%q) read it", raw)
		}
	}
}
