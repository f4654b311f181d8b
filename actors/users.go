package actors

// Stored users and credentials as go-webauthn sees them.

import (
	"context"
	"errors"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// waUser is a stored user as go-webauthn sees it.
type waUser struct {
	u     persistence.User
	creds []webauthn.Credential
}

func (w *waUser) WebAuthnID() []byte                         { return w.u.Handle }
func (w *waUser) WebAuthnName() string                       { return w.u.Username }
func (w *waUser) WebAuthnDisplayName() string                { return w.u.DisplayName }
func (w *waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

// readUser reads a user of the community by username with its passkeys, in one read where the
// store offers one (over PostgreSQL one round trip: a sign-in's budget is four); nil when the
// username is unknown.
func (c *ceremony) readUser(rctx context.Context, communityID, username string) (*waUser, error) {
	u, stored, err := persistence.ReadUserAndCredentials(rctx, c.deps.store, communityID, username)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	w := &waUser{u: u}
	for _, s := range stored {
		w.creds = append(w.creds, webauthnCredential(s))
	}
	return w, nil
}

// webauthnCredential is a stored credential as go-webauthn sees it.
func webauthnCredential(s persistence.Credential) webauthn.Credential {
	cred := webauthn.Credential{
		ID:                s.ID,
		PublicKey:         s.PublicKey,
		AttestationType:   s.AttestationType,
		AttestationFormat: s.AttestationFormat,
		Flags: webauthn.CredentialFlags{UserPresent: s.UserPresent, UserVerified: s.UserVerified,
			BackupEligible: s.BackupEligible, BackupState: s.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: s.AAGUID, SignCount: s.SignCount, CloneWarning: s.CloneWarning},
	}
	for _, t := range s.Transports {
		cred.Transport = append(cred.Transport, protocol.AuthenticatorTransport(t))
	}
	return cred
}
