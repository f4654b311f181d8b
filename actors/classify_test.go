package actors

import (
	"errors"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"

	"github.com/webauthnd/webauthnd/messages"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want messages.Code
	}{
		{"ceremony type", protocol.ErrVerification.WithDetails("Error validating ceremony type"), messages.CodeTypeMismatch},
		{"origin", protocol.ErrVerification.WithDetails("Error validating origin").WithInfo("Expected Values: [x]"), messages.CodeOriginNotAllowed},
		{"top origin", protocol.ErrVerification.WithDetails("Error validating top origin"), messages.CodeCrossOriginRefused},
		{"rp id hash", protocol.ErrVerification.WithInfo("RP Hash mismatch. Expected 01 and Received 02"), messages.CodeRPIDHashMismatch},
		{"user presence", protocol.ErrVerification.WithInfo("User presence required but flag not set by authenticator"), messages.CodeUserPresence},
		{"user verification", protocol.ErrVerification.WithInfo("User verification required but flag not set by authenticator"), messages.CodeUserVerification},
		{"signature", protocol.ErrAssertionSignature.WithDetails("Error validating the assertion signature: x"), messages.CodeSignatureInvalid},
		{"attestation", protocol.ErrInvalidAttestation.WithDetails("Error validating x5c cert chain"), messages.CodeAttestationInvalid},
		{"algorithm", protocol.ErrAttestationFormat.WithInfo("Credential public key algorithm not supported"), messages.CodeAlgorithmNotAllowed},
		{"backup eligibility", protocol.ErrBadRequest.WithDetails("Backup Eligible flag inconsistency detected during login validation"), messages.CodeBackupEligibility},
		{"parse", protocol.ErrParsingData.WithDetails("Error parsing attestation response"), messages.CodeInvalidCredential},
		{"unknown credential", &protocol.ErrorUnknownCredential{Err: protocol.ErrBadRequest}, messages.CodeCredentialUnknown},
		{"anything else", errors.New("boom"), messages.CodeVerificationFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.err)
			var e *messages.Error
			if !errors.As(err, &e) || e.Code != tc.want {
				t.Fatalf("classify(%v) = %v, want %s", tc.err, err, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("the cause was lost")
			}
			if e.Message == "" || e.Message == tc.err.Error() {
				t.Errorf("message %q must be our own, client-safe", e.Message)
			}
		})
	}
}
