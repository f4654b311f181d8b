package actors

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// credentialParameters are the algorithms offered at registration, in this order: ES256 (-7),
// EdDSA (-8), ES384 (-35), ES512 (-36), PS256 (-37) and RS256 (-257), without which Windows
// Hello cannot register.
var credentialParameters = []protocol.CredentialParameter{
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES256},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgEdDSA},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES384},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgES512},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgPS256},
	{Type: protocol.PublicKeyCredentialType, Algorithm: webauthncose.AlgRS256},
}

// ceremony is one in-flight registration or sign-in. It holds the challenge and the go-webauthn
// session, answers one begin and one result, and stops: after its result, when its timeout
// passes, or when it fails.
type ceremony struct {
	deps        *deps
	kind        kind
	challenge   []byte
	sessionInfo string

	scope     messages.Scope
	community persistence.Community
	wa        *webauthn.WebAuthn
	session   *webauthn.SessionData
	user      *waUser // the registering user, or the user (real or decoy) a sign-in names
	decoy     bool    // a sign-in for an unknown username, answered with decoy passkeys

	done   bool                             // answered its result, failed or expired: stopping
	caller *actor.PID                       // who waits for this ceremony's answer
	next   func(actor.Context, writeResult) // what to do when the pending write commits
	log    *zap.Logger
}

// Receive implements actor.Actor.
func (c *ceremony) Receive(ctx actor.Context) {
	defer c.recoverPanic(ctx)
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.log = c.deps.log.With(zap.String("ceremony", ctx.Self().Id))
		ctx.SetReceiveTimeout(c.deps.cfg.CeremonyTimeout)
	case begin:
		c.caller = ctx.Sender()
		c.begin(ctx, m.msg)
	case finish:
		if c.done || c.session == nil || c.caller != nil {
			// A result that raced the ceremony's end still gets an answer.
			ctx.Respond(failure{errCeremonyNotFound})
			return
		}
		c.caller = ctx.Sender()
		c.finish(ctx, m)
	case writeResult:
		next := c.next
		c.next = nil
		if next != nil {
			next(ctx, m)
		}
	case *actor.ReceiveTimeout:
		if c.done {
			return
		}
		if c.caller != nil { // only if a write outlived the ceremony's whole timeout
			c.fail(ctx, messages.Errorf(messages.CodeUnavailable, "the ceremony timed out"))
			return
		}
		c.log.Info("ceremony expired", zap.String("community", c.scope.CommunityID), zap.String("code", "ceremony_expired"))
		c.stop(ctx)
	}
}

// recoverPanic answers the waiting caller with an error and re-panics, so that the supervisor
// stops this ceremony (and only this one).
func (c *ceremony) recoverPanic(ctx actor.Context) {
	r := recover()
	if r == nil {
		return
	}
	c.deps.log.Error("ceremony panicked", zap.String("ceremony", ctx.Self().Id), zap.Any("panic", r))
	if c.caller != nil {
		ctx.Send(c.caller, failure{messages.Errorf(messages.CodeInternal, "internal error")})
		c.caller = nil
	}
	panic(r)
}

func (c *ceremony) answer(ctx actor.Context, v any) {
	if c.caller != nil {
		ctx.Send(c.caller, v)
		c.caller = nil
	}
}

// stop ends the ceremony after the messages already in its mailbox: a poison pill, not Stop,
// because Stop drops them unanswered.
func (c *ceremony) stop(ctx actor.Context) {
	if !c.done {
		c.done = true
		ctx.Poison(ctx.Self())
	}
}

// fail answers the caller with err and ends the ceremony.
func (c *ceremony) fail(ctx actor.Context, err error) {
	c.answer(ctx, failure{err})
	c.logOutcome(err)
	c.stop(ctx)
}

// failVerification fails a sign-in after its credential (a real one or a decoy's) was found and
// before its signature verified: the failures that the engine's limiter counts.
func (c *ceremony) failVerification(ctx actor.Context, err error) {
	c.fail(ctx, verificationFailure{err})
}

func (c *ceremony) logOutcome(err error) {
	var e *messages.Error
	fields := []zap.Field{zap.String("community", c.scope.CommunityID), zap.Int("kind", int(c.kind))}
	if c.decoy {
		fields = append(fields, zap.Bool("decoy", true)) // for operators only: clients cannot tell
	}
	if errors.As(err, &e) {
		fields = append(fields, zap.String("code", string(e.Code)))
		if e.Cause != nil {
			fields = append(fields, zap.NamedError("cause", e.Cause))
		}
		var pe *protocol.Error
		if errors.As(e.Cause, &pe) && pe.DevInfo != "" {
			// Expected challenge, origin and hashes: for operators, never for clients.
			c.log.Debug("verifier detail", zap.String("devInfo", pe.DevInfo))
		}
	}
	c.log.Info("ceremony failed", fields...)
}

// write hands op to the writer and continues with next once it has committed.
func (c *ceremony) write(ctx actor.Context, op persistence.Op, next func(actor.Context, writeResult)) {
	c.next = next
	ctx.Request(c.deps.writer, writeRequest{op: op})
}

// setup loads the community, checks the RP ID and builds the go-webauthn relying party.
func (c *ceremony) setup(scope messages.Scope) error {
	c.scope = scope
	community, err := c.deps.store.Community(scope.CommunityID)
	if errors.Is(err, persistence.ErrNotFound) {
		return messages.Errorf(messages.CodeCommunityUnknown, "unknown community")
	} else if err != nil {
		return messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	if !slices.Contains(community.RPIDs, scope.RPID) {
		return messages.Errorf(messages.CodeRPIDNotAllowed, "dns is not an RP ID of this community")
	}
	c.community = community
	timeouts := webauthn.TimeoutConfig{Enforce: true, Timeout: c.deps.cfg.CeremonyTimeout, TimeoutUVD: c.deps.cfg.CeremonyTimeout}
	c.wa, err = webauthn.New(&webauthn.Config{
		RPID:                        scope.RPID,
		RPDisplayName:               community.Name,
		RPOrigins:                   community.Origins,
		RPTopOrigins:                community.TopOrigins,
		RPTopOriginVerificationMode: protocol.TopOriginExplicitVerificationMode,
		RPAllowCrossOrigin:          len(community.TopOrigins) > 0,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.UserVerificationRequirement(community.UserVerification),
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
	})
	if err != nil {
		return messages.Wrap(messages.CodeInternal, "internal error", fmt.Errorf("community %s: %w", community.ID, err))
	}
	return nil
}

func (c *ceremony) begin(ctx actor.Context, msg any) {
	switch m := msg.(type) {
	case messages.BeginRegistration:
		c.beginRegistration(ctx, m)
	case messages.BeginSignIn:
		c.beginSignIn(ctx, m)
	}
}

func (c *ceremony) finish(ctx actor.Context, f finish) {
	if f.parsed.err != nil {
		c.fail(ctx, classify(f.parsed.err))
		return
	}
	switch m := f.msg.(type) {
	case messages.FinishRegistration:
		c.finishRegistration(ctx, m, f.parsed.value.(*protocol.ParsedCredentialCreationData))
	case messages.FinishSignIn:
		c.finishSignIn(ctx, m, f.parsed.value.(*protocol.ParsedCredentialAssertionData))
	}
}

// beginRegistration only reads: a known user gets its handle and its passkeys as
// excludeCredentials; a new username gets a fresh random handle, kept in the ceremony, and the
// user is created by the result, with its first passkey (so that a registration nobody
// finishes leaves nothing behind).
func (c *ceremony) beginRegistration(ctx actor.Context, m messages.BeginRegistration) {
	if err := c.setup(m.Scope); err != nil {
		c.fail(ctx, err)
		return
	}
	u, err := c.deps.store.User(m.CommunityID, m.Username)
	switch {
	case err == nil:
		if c.user, err = c.loadUser(u); err != nil {
			c.fail(ctx, err)
			return
		}
	case errors.Is(err, persistence.ErrNotFound):
		handle := make([]byte, 32)
		_, _ = rand.Read(handle)
		displayName := m.DisplayName
		if displayName == "" {
			displayName = m.Username
		}
		c.user = &waUser{u: persistence.User{CommunityID: m.CommunityID, Username: m.Username, DisplayName: displayName, Handle: handle}}
	default:
		c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
		return
	}
	opts := []webauthn.RegistrationOption{
		webauthn.WithCredentialParameters(credentialParameters),
		webauthn.WithExclusions(webauthn.Credentials(c.user.creds).CredentialDescriptors()),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementPreferred),
		webauthn.WithConveyancePreference(conveyance(m.Attestation)),
		func(o *protocol.PublicKeyCredentialCreationOptions) error {
			o.Challenge = c.challenge
			return nil
		},
	}
	creation, session, err := c.wa.BeginRegistration(c.user, opts...)
	if err != nil {
		c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
		return
	}
	body, err := json.Marshal(creation.Response)
	if err != nil {
		c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
		return
	}
	c.session = session
	c.answer(ctx, messages.RegistrationOptions{Options: body, SessionInfo: c.sessionInfo})
}

// finishRegistration verifies an attestation; parsed is shared with no one and only read.
func (c *ceremony) finishRegistration(ctx actor.Context, m messages.FinishRegistration, parsed *protocol.ParsedCredentialCreationData) {
	if m.RPID != "" && m.RPID != c.scope.RPID {
		c.fail(ctx, messages.Errorf(messages.CodeRPIDNotAllowed, "dns differs from the ceremony's RP ID"))
		return
	}
	if err := checkCrossOrigin(parsed.Response.CollectedClientData, c.community); err != nil {
		c.fail(ctx, err)
		return
	}
	cred, err := c.wa.CreateCredential(c.user, *c.session, parsed)
	if err != nil {
		c.fail(ctx, classify(err))
		return
	}
	spki, alg, err := publicKeyInfo(cred.PublicKey)
	if err != nil {
		c.fail(ctx, messages.Wrap(messages.CodeInvalidCredential, "the credential public key cannot be read", err))
		return
	}
	record := persistence.Credential{
		ID:                 cred.ID,
		CommunityID:        c.scope.CommunityID,
		Username:           c.user.u.Username,
		UserHandle:         c.user.u.Handle,
		RPID:               c.scope.RPID,
		PublicKey:          cred.PublicKey,
		Algorithm:          alg,
		AAGUID:             cred.Authenticator.AAGUID,
		AttestationFormat:  cred.AttestationFormat,
		AttestationType:    cred.AttestationType,
		AttestationObject:  cred.Attestation.Object,
		AttestationTrusted: attestationTrusted(c.wa.Config, cred),
		Attachment:         string(cred.Authenticator.Attachment),
		UserPresent:        cred.Flags.UserPresent,
		UserVerified:       cred.Flags.UserVerified,
		BackupEligible:     cred.Flags.BackupEligible,
		BackupState:        cred.Flags.BackupState,
		SignCount:          cred.Authenticator.SignCount,
		Created:            time.Now().UTC(),
	}
	for _, t := range cred.Transport {
		record.Transports = append(record.Transports, string(t))
	}
	// One write: the passkey, and the user with it when the username is new.
	op := persistence.AddCredential{Credential: record, DisplayName: c.user.u.DisplayName}
	c.write(ctx, op, func(ctx actor.Context, r writeResult) {
		if r.err != nil {
			c.fail(ctx, r.err)
			return
		}
		c.answer(ctx, messages.Registered{
			Username:           record.Username,
			CredentialID:       record.ID,
			PublicKeySPKI:      spki,
			AAGUID:             formatAAGUID(record.AAGUID),
			AttestationFormat:  record.AttestationFormat,
			AttestationTrusted: record.AttestationTrusted,
		})
		c.log.Debug("ceremony succeeded", zap.String("community", c.scope.CommunityID), zap.String("code", "registered"))
		c.stop(ctx)
	})
}

func (c *ceremony) beginSignIn(ctx actor.Context, m messages.BeginSignIn) {
	if err := c.setup(m.Scope); err != nil {
		c.fail(ctx, err)
		return
	}
	opts := []webauthn.LoginOption{webauthn.WithChallenge(c.challenge)}
	var (
		assertion *protocol.CredentialAssertion
		session   *webauthn.SessionData
		err       error
	)
	var user *waUser
	if m.Username != "" {
		u, err := c.deps.store.User(m.CommunityID, m.Username)
		switch {
		case err == nil:
			if user, err = c.loadUser(u); err != nil {
				c.fail(ctx, err)
				return
			}
		case !errors.Is(err, persistence.ErrNotFound):
			c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
			return
		}
	}
	switch {
	case user != nil && len(user.creds) > 0:
		c.user = user
		assertion, session, err = c.wa.BeginLogin(user, opts...)
	case m.Username != "":
		// Unknown user, or one without passkeys: answer like a known one, with stable decoy
		// passkeys shaped like the community's, so that usernames cannot be enumerated.
		if c.user, err = c.decoyUser(m.CommunityID, m.Username); err != nil {
			c.fail(ctx, err)
			return
		}
		c.decoy = true
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
	c.answer(ctx, messages.SignInOptions{Options: body, SessionInfo: c.sessionInfo})
}

var (
	errUnknownCredential = messages.Errorf(messages.CodeCredentialUnknown, "the credential is not registered for this user and community")
	errNoUserHandle      = messages.Errorf(messages.CodeInvalidCredential, "response.userHandle is required to sign in without a username")
)

// finishSignIn verifies an assertion; parsed is shared with no one and only read.
func (c *ceremony) finishSignIn(ctx actor.Context, m messages.FinishSignIn, parsed *protocol.ParsedCredentialAssertionData) {
	if m.RPID != "" && m.RPID != c.scope.RPID {
		c.fail(ctx, messages.Errorf(messages.CodeRPIDNotAllowed, "dns differs from the ceremony's RP ID"))
		return
	}
	// A decoy ceremony goes the same way as a real one: its passkeys verify against a key whose
	// private half nobody has, so an assertion naming one fails as a bad signature would, and
	// is counted by the limiter like one.
	user, cloneWarning, err := c.signInUser(parsed.RawID, parsed.Response.UserHandle)
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
		}
		token, err := c.deps.signer.Sign(result, c.scope)
		if err != nil {
			c.fail(ctx, messages.Wrap(messages.CodeInternal, "internal error", err))
			return
		}
		result.Token = token
		c.answer(ctx, result)
		c.log.Debug("ceremony succeeded", zap.String("community", c.scope.CommunityID), zap.String("code", "signed_in"))
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
func (c *ceremony) signInUser(rawID, userHandle []byte) (*waUser, bool, error) {
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
	stored, err := c.deps.store.Credential(rawID)
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

// waUser is a stored user as go-webauthn sees it.
type waUser struct {
	u     persistence.User
	creds []webauthn.Credential
}

func (w *waUser) WebAuthnID() []byte                         { return w.u.Handle }
func (w *waUser) WebAuthnName() string                       { return w.u.Username }
func (w *waUser) WebAuthnDisplayName() string                { return w.u.DisplayName }
func (w *waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func (c *ceremony) loadUser(u persistence.User) (*waUser, error) {
	stored, err := c.deps.store.CredentialsOf(u.CommunityID, u.Username)
	if err != nil {
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

// checkCrossOrigin refuses a clientDataJSON from a cross-origin iframe unless the community
// lists top origins and names this one. go-webauthn checks a present topOrigin; this also
// refuses crossOrigin without one.
func checkCrossOrigin(cd protocol.CollectedClientData, community persistence.Community) error {
	if !cd.CrossOrigin {
		return nil
	}
	if len(community.TopOrigins) == 0 || !slices.Contains(community.TopOrigins, cd.TopOrigin) {
		return messages.Errorf(messages.CodeCrossOriginRefused, "cross-origin ceremonies are not allowed from this top origin")
	}
	return nil
}

// attestationTrusted is true only when a metadata provider verified the attestation chain to
// a trust anchor; without one (the default until vendor metadata is configured) no chain is
// trusted, whatever its format.
func attestationTrusted(cfg *webauthn.Config, cred *webauthn.Credential) bool {
	if cfg.MDS == nil {
		return false
	}
	switch cred.AttestationType {
	case "basic_full", "attca", "anonca":
		return true
	}
	return false
}

// publicKeyInfo returns a COSE key as SubjectPublicKeyInfo DER, and its algorithm.
func publicKeyInfo(cose []byte) ([]byte, int64, error) {
	key, err := webauthncose.ParsePublicKey(cose)
	if err != nil {
		return nil, 0, err
	}
	var alg int64
	switch k := key.(type) {
	case webauthncose.EC2PublicKeyData:
		alg = k.Algorithm
	case webauthncose.RSAPublicKeyData:
		alg = k.Algorithm
	case webauthncose.OKPPublicKeyData:
		alg = k.Algorithm
	}
	block, _ := pem.Decode([]byte(webauthncose.DisplayPublicKey(cose)))
	if block == nil {
		return nil, 0, errors.New("public key cannot be encoded")
	}
	return block.Bytes, alg, nil
}

// conveyance is the requested attestation preference, "none" when the request names none.
func conveyance(p string) protocol.ConveyancePreference {
	if p == "" {
		return protocol.PreferNoAttestation
	}
	return protocol.ConveyancePreference(p)
}

func formatAAGUID(b []byte) string {
	id, err := uuid.FromBytes(b)
	if err != nil {
		return uuid.Nil.String()
	}
	return id.String()
}
