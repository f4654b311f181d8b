package actors

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// The engine's internal messages. They are values, never changed after they are sent.

type kind int

const (
	kindRegistration kind = iota + 1
	kindSignIn
)

// begin asks a supervisor to start a ceremony; msg is a messages.Begin*.
type begin struct {
	kind        kind
	sessionInfo string
	licenseID   string
	msg         any
}

// finish asks a supervisor to route a result to the ceremony called name.
type finish struct {
	kind        kind
	name        string
	sessionInfo string
	licenseID   string
	msg         any
}

// failure answers a request that failed.
type failure struct{ err error }

// verificationFailure is a sign-in refused after its credential was found: the kind of failure
// that the limiter counts.
type verificationFailure struct{ error }

func (v verificationFailure) Unwrap() error { return v.error }

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

// ceremonyName is the actor name of the ceremony that issued challenge: a digest, so that the
// challenge itself appears in no actor name or log.
func ceremonyName(challenge []byte) string {
	sum := sha256.Sum256(challenge)
	return hex.EncodeToString(sum[:16])
}

// ceremonyNameOf finds the ceremony a credential answers, from the challenge in its
// clientDataJSON, and returns the credential's rawId as given. Full verification happens
// later, in the ceremony.
func ceremonyNameOf(credential []byte) (name, rawID string, err error) {
	var body struct {
		RawID    string `json:"rawId"`
		Response struct {
			ClientDataJSON string `json:"clientDataJSON"`
		} `json:"response"`
	}
	if err := json.Unmarshal(credential, &body); err != nil {
		return "", "", messages.Wrap(messages.CodeInvalidCredential, "the credential is not valid JSON", err)
	}
	name, err = challengeName(body.Response.ClientDataJSON)
	return name, body.RawID, err
}

// challengeName is the name of the ceremony whose challenge a clientDataJSON carries.
func challengeName(clientDataJSON string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(clientDataJSON, "="))
	if err != nil || len(raw) == 0 {
		return "", messages.Wrap(messages.CodeInvalidCredential, "response.clientDataJSON is missing or not base64url", err)
	}
	var cd struct {
		Challenge string `json:"challenge"`
	}
	if err := json.Unmarshal(raw, &cd); err != nil {
		return "", messages.Wrap(messages.CodeInvalidCredential, "response.clientDataJSON is not valid JSON", err)
	}
	challenge, err := base64.RawURLEncoding.DecodeString(cd.Challenge)
	if err != nil || len(challenge) == 0 {
		return "", messages.Wrap(messages.CodeInvalidCredential, "clientDataJSON.challenge is missing or not base64url", err)
	}
	return ceremonyName(challenge), nil
}
