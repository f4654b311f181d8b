package persistence_test

import (
	"errors"
	"testing"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// wantCode fails the test unless err is a *messages.Error with code.
func wantCode(t *testing.T, err error, code messages.Code) {
	t.Helper()
	var me *messages.Error
	if !errors.As(err, &me) {
		t.Fatalf("err = %v (%T), want a *messages.Error with code %q", err, err, code)
	}
	if me.Code != code {
		t.Fatalf("err code = %q (%v), want %q", me.Code, err, code)
	}
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

// yubikey is the AAGUID of a YubiKey 5 series key.
const yubikey = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
