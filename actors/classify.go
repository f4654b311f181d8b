package actors

import (
	"errors"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/webauthnd/webauthnd/messages"
)

// verdicts maps what go-webauthn reports to a stable code and a client-safe message. The first
// rule whose text occurs in the error's details or developer info wins; go-webauthn's own
// words, which may hold the expected challenge or origin, reach only the logs.
var verdicts = []struct {
	match   string
	code    messages.Code
	message string
}{
	{"Error validating ceremony type", messages.CodeTypeMismatch, "clientDataJSON.type is not the type of this ceremony"},
	{"Error validating challenge", messages.CodeChallengeMismatch, "the challenge does not match the ceremony"},
	{"Error validating origin", messages.CodeOriginNotAllowed, "the origin is not allowed for this community"},
	{"cross origin", messages.CodeCrossOriginRefused, "cross-origin ceremonies are not allowed"},
	{"topOrigin", messages.CodeCrossOriginRefused, "cross-origin ceremonies are not allowed from this top origin"},
	{"top origin", messages.CodeCrossOriginRefused, "cross-origin ceremonies are not allowed from this top origin"},
	{"RP Hash mismatch", messages.CodeRPIDHashMismatch, "the authenticator data is for another RP ID"},
	{"User presence required", messages.CodeUserPresence, "the authenticator did not report user presence"},
	{"User verification required", messages.CodeUserVerification, "this community requires user verification and the authenticator did not perform it"},
	{"Backup Eligible flag inconsistency", messages.CodeBackupEligibility, "the credential's backup eligibility changed since registration"},
	{"Backup State Flag is true but Backup Eligible", messages.CodeInvalidCredential, "backup state without backup eligibility is invalid"},
	{"algorithm not supported", messages.CodeAlgorithmNotAllowed, "the credential's algorithm was not offered"},
	{"User handle and User ID do not match", messages.CodeCredentialUnknown, "the credential is not registered for this user"},
	{"Failed to lookup Client-side Discoverable Credential", messages.CodeCredentialUnknown, "the credential is not registered for this user"},
	{"Session has Expired", messages.CodeCeremonyNotFound, "the ceremony expired; start a new one"},
}

// byType maps go-webauthn error types to codes when no rule above matched.
var byType = map[string]struct {
	code    messages.Code
	message string
}{
	"invalid_signature":         {messages.CodeSignatureInvalid, "the signature does not verify"},
	"invalid_attestation":       {messages.CodeAttestationInvalid, "the attestation statement does not verify"},
	"attestation_error":         {messages.CodeAttestationInvalid, "the attestation statement does not verify"},
	"invalid_certificate":       {messages.CodeAttestationInvalid, "the attestation certificate is not acceptable"},
	"unsupported_key_algorithm": {messages.CodeAlgorithmNotAllowed, "the credential's algorithm is not supported"},
	"invalid_key_type":          {messages.CodeAlgorithmNotAllowed, "the credential's key type is not supported"},
	"parse_error":               {messages.CodeInvalidCredential, "the credential could not be parsed"},
	"invalid_request":           {messages.CodeInvalidCredential, "the credential is malformed"},
	"challenge_mismatch":        {messages.CodeChallengeMismatch, "the challenge does not match the ceremony"},
}

// classify turns a go-webauthn failure into the service's error, keeping the original as cause.
func classify(err error) error {
	var unknown *protocol.ErrorUnknownCredential
	if errors.As(err, &unknown) {
		return messages.Wrap(messages.CodeCredentialUnknown, errUnknownCredential.Message, err)
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		return messages.Wrap(messages.CodeVerificationFailed, "the credential did not verify", err)
	}
	text := pe.Details + "\n" + pe.DevInfo
	for _, v := range verdicts {
		if strings.Contains(text, v.match) {
			return messages.Wrap(v.code, v.message, err)
		}
	}
	if t, ok := byType[pe.Type]; ok {
		return messages.Wrap(t.code, t.message, err)
	}
	return messages.Wrap(messages.CodeVerificationFailed, "the credential did not verify", err)
}
