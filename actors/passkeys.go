package actors

import (
	"fmt"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/webauthnd/webauthnd/messages"
)

// CheckPublicKey checks an imported passkey's public key as a registration would: cose must be
// a COSE_Key that go-webauthn parses and can encode, its algorithm one that registrations offer
// (ES256, EdDSA, ES384, ES512, PS256, RS256), and alg the algorithm it names. The refusal says
// which, as an invalid_credential error; `webauthnd passkeys import` reports it per line.
func CheckPublicKey(cose []byte, alg int64) error {
	_, keyAlg, err := publicKeyInfo(cose)
	if err != nil {
		return messages.Wrap(messages.CodeInvalidCredential, "publicKey is not a COSE key go-webauthn can read", err)
	}
	allowed := slices.ContainsFunc(credentialParameters, func(p protocol.CredentialParameter) bool { return int64(p.Algorithm) == keyAlg })
	if !allowed {
		return messages.Errorf(messages.CodeInvalidCredential, fmt.Sprintf("the COSE key's algorithm %d is not one registrations allow", keyAlg))
	}
	if keyAlg != alg {
		return messages.Errorf(messages.CodeInvalidCredential, fmt.Sprintf("algorithm is %d, and the COSE key's own algorithm is %d", alg, keyAlg))
	}
	return nil
}
