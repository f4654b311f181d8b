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
// clientDataJSON. Full verification happens later, in the ceremony.
func ceremonyNameOf(credential []byte) (string, error) {
	var body struct {
		Response struct {
			ClientDataJSON string `json:"clientDataJSON"`
		} `json:"response"`
	}
	if err := json.Unmarshal(credential, &body); err != nil {
		return "", messages.Wrap(messages.CodeInvalidCredential, "the credential is not valid JSON", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(body.Response.ClientDataJSON, "="))
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
