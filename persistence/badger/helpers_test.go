package badger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// ctx is the context of the tests' reads and writes, which never end it.
var ctx = context.Background()

// mustOpen opens a fresh store in t.TempDir() and closes it when the test ends.
func mustOpen(t *testing.T) *badger.Store {
	t.Helper()
	s, _ := mustOpenAt(t, t.TempDir())
	return s
}

// mustOpenAt opens the store in dir. The returned close function may be called by the test
// (to reopen the directory); otherwise the store is closed when the test ends.
func mustOpenAt(t *testing.T, dir string) (*badger.Store, func()) {
	t.Helper()
	s, err := badger.Open(dir, zap.NewNop())
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(closeFn)
	return s, closeFn
}

// mustApply runs one op and fails the test when it is refused.
func mustApply(t *testing.T, s persistence.Writer, op persistence.Op) any {
	t.Helper()
	r := s.Apply(ctx, []persistence.Op{op})
	if len(r) != 1 {
		t.Fatalf("Apply(%T) returned %d results, want 1", op, len(r))
	}
	if r[0].Err != nil {
		t.Fatalf("Apply(%T): %v", op, r[0].Err)
	}
	return r[0].Value
}

// applyErr runs one op and returns its error.
func applyErr(t *testing.T, s persistence.Writer, op persistence.Op) error {
	t.Helper()
	r := s.Apply(ctx, []persistence.Op{op})
	if len(r) != 1 {
		t.Fatalf("Apply(%T) returned %d results, want 1", op, len(r))
	}
	return r[0].Err
}

// wantCode fails the test unless err is a *messages.Error with code.
func wantCode(t *testing.T, err error, code messages.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a *messages.Error with code %q", code)
	}
	var me *messages.Error
	if !errors.As(err, &me) {
		t.Fatalf("err = %v (%T), want a *messages.Error with code %q", err, err, code)
	}
	if me.Code != code {
		t.Fatalf("err code = %q (%v), want %q", me.Code, err, code)
	}
}

// describe renders err with its cause chain (a *messages.Error shows only its client-safe
// message).
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	out := err.Error()
	for c := errors.Unwrap(err); c != nil; c = errors.Unwrap(c) {
		out += " <- " + c.Error()
	}
	return out
}

// community returns a valid community of tenant "acme" for RP ID example.com.
func community(id string) persistence.Community {
	return persistence.Community{
		ID:               id,
		TenantID:         "acme",
		Name:             "Community " + id,
		RPIDs:            []string{"example.com"},
		Origins:          []string{"https://example.com", "https://login.example.com"},
		UserVerification: persistence.VerificationPreferred,
	}
}

// seedCommunity creates community id.
func seedCommunity(t *testing.T, s *badger.Store, id string) persistence.Community {
	t.Helper()
	return mustApply(t, s, persistence.PutCommunity{Community: community(id), Create: true}).(persistence.Community)
}

// seedUser creates user username in communityID (which must exist or be created by the caller)
// with handle and no passkey, as only an import can (a registration creates a user with its
// first passkey).
func seedUser(t *testing.T, s *badger.Store, communityID, username string, handle []byte) persistence.User {
	t.Helper()
	if err := s.Import(ctx, []persistence.User{{CommunityID: communityID, Username: username, DisplayName: "Name of " + username, Handle: handle}}, nil); err != nil {
		t.Fatalf("seed user %s: %v", username, err)
	}
	u, err := s.User(ctx, communityID, username)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var (
	t0 = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	t1 = time.Date(2025, 4, 5, 6, 7, 8, 900, time.UTC)
)

// credential returns a fully populated credential of a user.
func credential(id string, u persistence.User) persistence.Credential {
	return persistence.Credential{
		ID:                 []byte(id),
		CommunityID:        u.CommunityID,
		Username:           u.Username,
		UserHandle:         u.Handle,
		RPID:               "example.com",
		PublicKey:          []byte{0xa5, 0x01, 0x02, 0x03, 0x26},
		Algorithm:          -7,
		AAGUID:             make([]byte, 16),
		AttestationFormat:  "none",
		AttestationType:    "None",
		AttestationObject:  []byte{0xa3, 0x63},
		AttestationTrusted: false,
		Transports:         []string{"internal", "hybrid"},
		Attachment:         "platform",
		UserPresent:        true,
		UserVerified:       false,
		BackupEligible:     true,
		BackupState:        false,
		SignCount:          0,
		Created:            t0,
	}
}

// asRead is a credential as reads return it: without its attestation object, which only
// AttestationObjectOf reads.
func asRead(c persistence.Credential) persistence.Credential {
	c.AttestationObject = nil
	return c
}
