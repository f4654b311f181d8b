package actors

// Registration: the options of a new passkey and the verification of its attestation.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
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

// beginRegistration only reads: a known user gets its handle and its passkeys as
// excludeCredentials; a new username gets a fresh random handle, kept in the ceremony, and the
// user is created by the result, with its first passkey (so that a registration nobody
// finishes leaves nothing behind).
func (c *ceremony) beginRegistration(ctx actor.Context, rctx context.Context, m messages.BeginRegistration) {
	if err := c.setup(rctx, m.Scope); err != nil {
		c.fail(ctx, err)
		return
	}
	user, err := c.readUser(rctx, m.CommunityID, m.Username)
	switch {
	case err != nil:
		c.fail(ctx, err)
		return
	case user != nil:
		c.user = user
	default:
		handle := make([]byte, 32)
		_, _ = rand.Read(handle)
		displayName := m.DisplayName
		if displayName == "" {
			displayName = m.Username
		}
		c.user = &waUser{u: persistence.User{CommunityID: m.CommunityID, Username: m.Username, DisplayName: displayName, Handle: handle}}
	}
	c.selection = m.Selection
	residentKey := protocol.ResidentKeyRequirement(m.Selection.ResidentKey)
	if residentKey == "" {
		residentKey = protocol.ResidentKeyRequirementPreferred
	}
	opts := []webauthn.RegistrationOption{
		webauthn.WithCredentialParameters(credentialParameters),
		webauthn.WithExclusions(webauthn.Credentials(c.user.creds).CredentialDescriptors()),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			AuthenticatorAttachment: protocol.AuthenticatorAttachment(m.Selection.AuthenticatorAttachment),
			UserVerification:        raiseUserVerification(c.community.UserVerification, m.Selection.UserVerification),
		}),
		// After the selection: it states residentKey and the legacy requireResidentKey alike.
		webauthn.WithResidentKeyRequirement(residentKey),
		webauthn.WithConveyancePreference(conveyance(m.Attestation, c.community.AttestationTrust)),
		webauthn.WithPublicKeyCredentialHints(hints(m.Hints)),
		func(o *protocol.PublicKeyCredentialCreationOptions) error {
			o.Challenge = c.challenge
			return nil
		},
	}
	if residentKey == protocol.ResidentKeyRequirementRequired {
		// The client then reports whether the credential is discoverable (credProps.rk).
		opts = append(opts, webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
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
	if err := c.persist(rctx); err != nil {
		c.fail(ctx, err)
		return
	}
	c.answer(ctx, messages.RegistrationOptions{Options: body, SessionInfo: c.sessionInfo})
}

// finishRegistration verifies an attestation; parsed is shared with no one and only read.
func (c *ceremony) finishRegistration(ctx actor.Context, rctx context.Context, m messages.FinishRegistration, parsed *protocol.ParsedCredentialCreationData) {
	if m.RPID != "" && m.RPID != c.scope.RPID {
		c.fail(ctx, messages.Errorf(messages.CodeRPIDNotAllowed, "dns differs from the ceremony's RP ID"))
		return
	}
	if err := checkCrossOrigin(parsed.Response.CollectedClientData, c.community); err != nil {
		c.fail(ctx, err)
		return
	}
	if err := c.selectionMet(parsed.ParsedPublicKeyCredential); err != nil {
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
	trusted, name, err := c.judgeAttestation(rctx, cred, parsed)
	if err != nil {
		c.fail(ctx, err)
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
		AttestationTrusted: trusted,
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
			AuthenticatorName:  name,
		})
		c.deps.log.Debug("ceremony succeeded", c.idField(), zap.String("community", c.scope.CommunityID), zap.String("code", "registered"))
		c.ended(messages.OutcomeOK)
		c.stop(ctx)
	})
}

// judgeAttestation applies vendor metadata and the FIDO Metadata Service to a verified
// registration: a refused model (a disabled record, an undesired status) is 403; the attestation
// is trusted when its x5c chain leads to a root of the model's statement; a community that
// requires trust refuses an untrusted one. It returns the trust and the model's name.
func (c *ceremony) judgeAttestation(rctx context.Context, cred *webauthn.Credential, parsed *protocol.ParsedCredentialCreationData) (bool, string, error) {
	now := time.Now()
	m, err := c.deps.models.of(rctx, c.scope.CommunityID, cred.Authenticator.AAGUID)
	if err != nil {
		return false, "", messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	if why := m.refusal(now); why != "" {
		return false, m.name, refused(m, cred.Authenticator.AAGUID, why)
	}
	aaguid, _ := uuid.FromBytes(cred.Authenticator.AAGUID)
	x5cs, _ := parsed.Response.AttestationObject.AttStatement["x5c"].([]any)
	trusted, why := c.deps.models.attestationVerdict(rctx, m, aaguid, cred.AttestationType, cred.AttestationFormat, x5cs, now)
	if why != "" {
		return false, m.name, refused(m, cred.Authenticator.AAGUID, why)
	}
	if !trusted && c.community.AttestationTrust == persistence.AttestationTrustRequired {
		return false, m.name, refused(m, cred.Authenticator.AAGUID,
			"this community requires an attestation that chains to a root of the authenticator's metadata, and this one does not")
	}
	return trusted, m.name, nil
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

// selectionMet refuses a registration whose client reports that it did not do what the options
// asked: a credential that is not discoverable where residentKey was required (credProps.rk
// false), or an attachment other than the one asked for. What the client does not report is
// not held against it (user verification is checked by go-webauthn, from the flags).
func (c *ceremony) selectionMet(p protocol.ParsedPublicKeyCredential) error {
	if c.selection.ResidentKey == string(protocol.ResidentKeyRequirementRequired) {
		if props := p.ClientExtensionResults.CredProps; props != nil && props.RK != nil && !*props.RK {
			return messages.Errorf(messages.CodeSelectionUnmet, "residentKey was required, and the client reports that the credential is not discoverable")
		}
	}
	if want, got := c.selection.AuthenticatorAttachment, string(p.AuthenticatorAttachment); want != "" && got != "" && want != got {
		return messages.Errorf(messages.CodeSelectionUnmet, "authenticatorAttachment "+want+" was asked for, and the client reports "+got)
	}
	return nil
}

// userVerificationRank orders user verification requirements from the weakest.
var userVerificationRank = map[string]int{"discouraged": 0, "preferred": 1, "required": 2}

// raiseUserVerification is the stricter of the community's policy and what the caller asked:
// the policy is a floor a caller can raise and never lower.
func raiseUserVerification(policy, asked string) protocol.UserVerificationRequirement {
	if asked != "" && userVerificationRank[asked] > userVerificationRank[policy] {
		return protocol.UserVerificationRequirement(asked)
	}
	return protocol.UserVerificationRequirement(policy)
}

// hints are a caller's WebAuthn Level 3 hints as go-webauthn takes them.
func hints(in []string) []protocol.PublicKeyCredentialHints {
	var out []protocol.PublicKeyCredentialHints
	for _, h := range in {
		out = append(out, protocol.PublicKeyCredentialHints(h))
	}
	return out
}

// conveyance is the requested attestation preference, "none" when the request names none; a
// community that requires trusted attestation always asks for direct attestation.
func conveyance(p, trust string) protocol.ConveyancePreference {
	if trust == persistence.AttestationTrustRequired {
		return protocol.PreferDirectAttestation
	}
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
