package actors

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// The engine's internal messages. They are values, never changed after they are sent.

type kind int

const (
	kindRegistration kind = iota + 1
	kindSignIn
)

// begin asks a supervisor to start a ceremony; msg is a messages.Begin*. ctx is the request's
// context, under which the ceremony reads the store while it answers this message (and only
// then: a context is good for its request only).
type begin struct {
	ctx         context.Context
	kind        kind
	sessionInfo string
	licenseID   string
	msg         any
}

// finish asks a supervisor to route a result to the ceremony called name; msg is a
// messages.Finish*, parsed is its credential parsed. ctx is the request's context, as in begin.
type finish struct {
	ctx         context.Context
	kind        kind
	name        string
	sessionInfo string
	licenseID   string
	msg         any
	parsed      parsedResult
}

// failure answers a request that failed.
type failure struct{ err error }

// verificationFailure is a sign-in refused after its credential was found: the kind of failure
// that the limiter counts.
type verificationFailure struct{ error }

func (v verificationFailure) Unwrap() error { return v.error }

// discoverableFailure is the failure of a discoverable sign-in's result: FinishSignIn unwraps it
// into its answer's Discoverable, which the caller cannot learn otherwise.
type discoverableFailure struct{ error }

func (d discoverableFailure) Unwrap() error { return d.error }

type (
	liveQuery struct{}
	ping      struct{}
	pong      struct{}
)

// writeRequest asks the writer to apply op; writeResult answers it after the commit.
type writeRequest struct{ op persistence.Op }

type writeResult struct {
	value any
	err   error
}

var errCeremonyNotFound = messages.Errorf(messages.CodeCeremonyNotFound,
	"no live ceremony for this challenge: it expired, was already used or was never issued; start a new ceremony")

// ceremonyName is the name of the ceremony whose challenge starts with random (its random
// bytes, see challenge.go): its actor's name on every node and its key in a shared store. A
// digest, so that the challenge itself appears in no actor name, log or table.
func ceremonyName(random []byte) string {
	sum := sha256.Sum256(random)
	return hex.EncodeToString(sum[:16])
}

// parsedResult is a result credential parsed once, in the caller's goroutine, before it is
// routed: exactly one of the parsed value (*protocol.ParsedCredentialCreationData or
// *protocol.ParsedCredentialAssertionData) and err is set. A credential that does not parse is
// still routed to the ceremony its clientDataJSON names, which fails with err and ends.
type parsedResult struct {
	value any
	err   error
}

// parseRegistration parses an attestation credential and returns the challenge it answers.
func parseRegistration(c messages.Credential) (challenge []byte, p parsedResult, err error) {
	pk, err := publicKeyCredential(c)
	if err == nil {
		p.value, err = protocol.CredentialCreationResponse{PublicKeyCredential: pk,
			AttestationResponse: protocol.AuthenticatorAttestationResponse{
				AuthenticatorResponse: protocol.AuthenticatorResponse{ClientDataJSON: c.ClientDataJSON},
				Transports:            c.Transports,
				AttestationObject:     c.AttestationObject,
			}}.Parse()
	}
	if err != nil {
		challenge, cerr := clientDataChallenge(c.ClientDataJSON)
		return challenge, parsedResult{err: err}, cerr
	}
	challenge, err = decodeChallenge(p.value.(*protocol.ParsedCredentialCreationData).Response.CollectedClientData.Challenge)
	return challenge, p, err
}

// parseAssertion parses an assertion credential and returns the challenge it answers.
func parseAssertion(c messages.Credential) (challenge []byte, p parsedResult, err error) {
	pk, err := publicKeyCredential(c)
	if err == nil {
		p.value, err = protocol.CredentialAssertionResponse{PublicKeyCredential: pk,
			AssertionResponse: protocol.AuthenticatorAssertionResponse{
				AuthenticatorResponse: protocol.AuthenticatorResponse{ClientDataJSON: c.ClientDataJSON},
				AuthenticatorData:     c.AuthenticatorData,
				Signature:             c.Signature,
				UserHandle:            c.UserHandle,
			}}.Parse()
	}
	if err != nil {
		challenge, cerr := clientDataChallenge(c.ClientDataJSON)
		return challenge, parsedResult{err: err}, cerr
	}
	challenge, err = decodeChallenge(p.value.(*protocol.ParsedCredentialAssertionData).Response.CollectedClientData.Challenge)
	return challenge, p, err
}

// publicKeyCredential is the part of a credential that both kinds share, as go-webauthn holds it.
func publicKeyCredential(c messages.Credential) (protocol.PublicKeyCredential, error) {
	pk := protocol.PublicKeyCredential{
		Credential:              protocol.Credential{ID: base64.RawURLEncoding.EncodeToString(c.ID), Type: c.Type},
		RawID:                   c.RawID,
		AuthenticatorAttachment: c.AuthenticatorAttachment,
	}
	if ext := c.ClientExtensionResults; len(ext) > 0 && string(ext) != "{}" {
		if err := json.Unmarshal(ext, &pk.ClientExtensionResults); err != nil {
			return pk, protocol.ErrBadRequest.WithDetails("clientExtensionResults is not a valid object").WithError(err)
		}
	}
	return pk, nil
}

// clientDataChallenge is the challenge a clientDataJSON carries.
func clientDataChallenge(clientDataJSON []byte) ([]byte, error) {
	if len(clientDataJSON) == 0 {
		return nil, messages.Errorf(messages.CodeInvalidCredential, "response.clientDataJSON is missing")
	}
	var cd struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(clientDataJSON, &cd); err != nil {
		return nil, messages.Wrap(messages.CodeInvalidCredential, "response.clientDataJSON is not valid JSON", err)
	}
	return decodeChallenge(cd.Challenge)
}

// decodeChallenge reads a challenge given as the base64url of clientDataJSON.
func decodeChallenge(challenge string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	if err != nil || len(raw) == 0 {
		return nil, messages.Wrap(messages.CodeInvalidCredential, "clientDataJSON.challenge is missing or not base64url", err)
	}
	return raw, nil
}
