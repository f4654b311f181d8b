package actors

// Sign-in: the options (a user's passkeys, a decoy's, or none for a discoverable sign-in) and
// the verification of an assertion.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

func (c *ceremony) beginSignIn(ctx actor.Context, rctx context.Context, m messages.BeginSignIn) {
	if err := c.setup(rctx, m.Scope); err != nil {
		c.fail(ctx, err)
		return
	}
	opts := []webauthn.LoginOption{
		webauthn.WithChallenge(c.challenge),
		webauthn.WithUserVerification(raiseUserVerification(c.community.UserVerification, m.UserVerification)),
		webauthn.WithAssertionPublicKeyCredentialHints(hints(m.Hints)),
	}
	var (
		assertion *protocol.CredentialAssertion
		session   *webauthn.SessionData
		err       error
	)
	// One read, the same whether or not the username names a user: the user with its
	// passkeys, and the community's shape for a decoy (read for a known user too, so that an
	// unknown one costs no extra round trip that would tell it apart).
	var subject persistence.SignInSubject
	if m.Username != "" {
		if subject, err = c.deps.store.SignInSubject(rctx, m.CommunityID, m.Username); err != nil {
			c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
			return
		}
	}
	switch {
	case subject.Found && len(subject.Credentials) > 0:
		c.user = storedUser(subject.User, subject.Credentials)
		assertion, session, err = c.wa.BeginLogin(c.user, opts...)
	case m.Username != "":
		// Unknown user, or one without passkeys: answer like a known one, with stable decoy
		// passkeys shaped like the community's, so that usernames cannot be enumerated.
		c.user, c.decoy = c.decoyUser(m.CommunityID, m.Username, subject.CommonShape), true
		assertion, session, err = c.wa.BeginLogin(c.user, opts...)
	default:
		assertion, session, err = c.wa.BeginDiscoverableLogin(opts...)
	}
	if err != nil {
		c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
		return
	}
	body, err := json.Marshal(assertion.Response)
	if err != nil {
		c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
		return
	}
	c.session = session
	if err := c.persist(rctx); err != nil {
		c.fail(ctx, err)
		return
	}
	c.answer(ctx, messages.SignInOptions{Options: body, SessionInfo: c.sessionInfo})
}

var (
	errUnknownCredential = messages.Errorf(messages.CodeCredentialUnknown, "the credential is not registered for this user and community")
	errNoUserHandle      = messages.Errorf(messages.CodeInvalidCredential, "response.userHandle is required to sign in without a username")
)

// finishSignIn verifies an assertion; parsed is shared with no one and only read.
func (c *ceremony) finishSignIn(ctx actor.Context, rctx context.Context, m messages.FinishSignIn, parsed *protocol.ParsedCredentialAssertionData) {
	if m.RPID != "" && m.RPID != c.scope.RPID {
		c.fail(ctx, messages.Errorf(messages.CodeRPIDNotAllowed, "dns differs from the ceremony's RP ID"))
		return
	}
	// A decoy ceremony goes the same way as a real one: its passkeys verify against a key whose
	// private half nobody has, so an assertion naming one fails as a bad signature would, and
	// is counted by the limiter like one.
	user, cloneWarning, err := c.signInUser(rctx, parsed.RawID, parsed.Response.UserHandle)
	if err != nil {
		c.fail(ctx, err)
		return
	}
	if err := checkCrossOrigin(parsed.Response.CollectedClientData, c.community); err != nil {
		c.failVerification(ctx, err)
		return
	}
	if len(c.session.UserID) > 0 {
		_, err = c.wa.ValidateLogin(user, *c.session, parsed)
	} else {
		_, _, err = c.wa.ValidatePasskeyLogin(func(_, userHandle []byte) (webauthn.User, error) {
			if !bytes.Equal(userHandle, user.u.Handle) {
				return nil, errors.New("user handle does not own the credential")
			}
			return user, nil
		}, *c.session, parsed)
	}
	if err != nil {
		c.failVerification(ctx, classify(err))
		return
	}
	// The failures below come after the signature verified: a passkey whose counter went
	// backwards is not guessing, so they are not counted (and never become a 429), and they
	// are answered only to whoever holds the key (a decoy cannot get here).
	if c.community.BlockClones && cloneWarning {
		c.fail(ctx, messages.Errorf(messages.CodeCounterRegression, "this credential is blocked: its signature counter once went backwards"))
		return
	}
	if err := c.modelAllowed(rctx, user, parsed.RawID); err != nil {
		c.fail(ctx, err)
		return
	}
	flags := parsed.Response.AuthenticatorData.Flags
	op := persistence.RecordSignIn{
		ID:           parsed.RawID,
		Counter:      parsed.Response.AuthenticatorData.Counter,
		UserVerified: flags.HasUserVerified(),
		BackupState:  flags.HasBackupState(),
		At:           time.Now().UTC(),
	}
	c.write(ctx, op, func(ctx actor.Context, r writeResult) {
		if r.err != nil {
			c.fail(ctx, r.err)
			return
		}
		updated := r.value.(persistence.Credential)
		result := messages.SignedIn{
			Username:     updated.Username,
			CredentialID: updated.ID,
			UserVerified: flags.HasUserVerified(),
			CloneWarning: updated.CloneWarning,
			DID:          updated.DID,
			Discoverable: c.discoverable,
		}
		token, err := c.deps.signer.Sign(result, c.scope)
		if err != nil {
			c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
			return
		}
		result.Token = token
		c.deps.obs().TokenIssued(c.scope.CommunityID)
		if result.CloneWarning {
			c.deps.obs().CloneWarning(c.scope.CommunityID)
		}
		c.answer(ctx, result)
		c.deps.log.Debug("ceremony succeeded", c.idField(), zap.String("community", c.scope.CommunityID), zap.String("code", "signed_in"))
		c.ended(messages.OutcomeOK)
		c.stop(ctx)
	})
}

// signInUser finds the user whose credential rawID answers this sign-in, and whether that
// credential carries a clone warning. A sign-in by username reuses what its options loaded,
// a real user's or a decoy's (the store write that follows re-reads the credential, so nothing
// stale is written); a discoverable one reads the credential, which names its owner. A
// credential of another community, not of the user the options named, or (discoverable) not
// of the userHandle given, is unknown: so a decoy's id and a real one answer alike unless the
// caller knows the real user's handle.
func (c *ceremony) signInUser(rctx context.Context, rawID, userHandle []byte) (*waUser, bool, error) {
	if c.user != nil {
		for _, cred := range c.user.creds {
			if bytes.Equal(cred.ID, rawID) {
				return c.user, cred.Authenticator.CloneWarning, nil
			}
		}
		return nil, false, errUnknownCredential
	}
	if len(userHandle) == 0 {
		return nil, false, errNoUserHandle
	}
	stored, err := c.deps.store.Credential(rctx, rawID)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return nil, false, errUnknownCredential
	case err != nil:
		return nil, false, messages.Wrap(messages.CodeInternal, "internal error", err)
	case stored.CommunityID != c.scope.CommunityID || !bytes.Equal(stored.UserHandle, userHandle):
		return nil, false, errUnknownCredential
	}
	// go-webauthn needs only the credential used and its owner's handle: the user's other
	// passkeys stay unread.
	owner := persistence.User{CommunityID: stored.CommunityID, Username: stored.Username, Handle: stored.UserHandle}
	return &waUser{u: owner, creds: []webauthn.Credential{webauthnCredential(stored)}}, stored.CloneWarning, nil
}

// modelAllowed refuses a sign-in with a passkey whose authenticator model vendor metadata
// refuses (a disabled record, an undesired MDS status), read from memory. It runs after the
// signature verified, so only the passkey's holder learns of it; re-enabling the model lets
// its passkeys in again at once.
func (c *ceremony) modelAllowed(rctx context.Context, user *waUser, rawID []byte) error {
	for _, cred := range user.creds {
		if !bytes.Equal(cred.ID, rawID) {
			continue
		}
		m, err := c.deps.models.of(rctx, c.scope.CommunityID, cred.Authenticator.AAGUID)
		if err != nil {
			return messages.Wrap(messages.CodeInternal, "internal error", err)
		}
		if why := m.refusal(time.Now()); why != "" {
			return refused(m, cred.Authenticator.AAGUID, why)
		}
	}
	return nil
}
