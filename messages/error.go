package messages

import (
	"errors"
	"time"
)

// Code is a stable, machine-readable reason that relying parties can act on.
type Code string

// The codes of the service. httpapi maps each to one HTTP status in a single table.
const (
	CodeInvalidRequest       Code = "invalid_request"
	CodePrivateKeyRefused    Code = "private_key_refused"
	CodeBodyTooLarge         Code = "body_too_large"
	CodeLicenseMissing       Code = "license_missing"
	CodeLicenseInvalid       Code = "license_invalid"
	CodeLicenseDisabled      Code = "license_disabled"
	CodeLicenseExpired       Code = "license_expired"
	CodeLicenseScope         Code = "license_scope"
	CodeEnvelopeInvalid      Code = "envelope_invalid"
	CodeRequestInvalid       Code = "request_invalid"
	CodeRequestStale         Code = "request_stale"
	CodeRequestReplayed      Code = "request_replayed"
	CodeCommunityUnknown     Code = "community_unknown"
	CodeRPIDNotAllowed       Code = "rp_id_not_allowed"
	CodeCeremonyNotFound     Code = "ceremony_not_found"
	CodeSessionMismatch      Code = "session_mismatch"
	CodeInvalidCredential    Code = "invalid_credential"
	CodeTypeMismatch         Code = "type_mismatch"
	CodeOriginNotAllowed     Code = "origin_not_allowed"
	CodeCrossOriginRefused   Code = "cross_origin_refused"
	CodeChallengeMismatch    Code = "challenge_mismatch"
	CodeRPIDHashMismatch     Code = "rp_id_hash_mismatch"
	CodeUserPresence         Code = "user_presence_missing"
	CodeUserVerification     Code = "user_verification_missing"
	CodeSelectionUnmet       Code = "authenticator_selection_unmet"
	CodeAuthenticatorRefused Code = "authenticator_refused"
	CodeSignatureInvalid     Code = "signature_invalid"
	CodeAttestationInvalid   Code = "attestation_invalid"
	CodeAlgorithmNotAllowed  Code = "algorithm_not_allowed"
	CodeBackupEligibility    Code = "backup_eligibility_changed"
	CodeCredentialUnknown    Code = "credential_unknown"
	CodeCredentialExists     Code = "credential_exists"
	CodeConflict             Code = "conflict"
	CodeCounterRegression    Code = "counter_regression"
	CodeVerificationFailed   Code = "verification_failed"
	CodeNotFound             Code = "not_found"
	CodeMethodNotAllowed     Code = "method_not_allowed"
	CodeBusy                 Code = "busy"
	CodeRateLimited          Code = "rate_limited"
	CodeUnavailable          Code = "unavailable"
	CodeStorageFull          Code = "storage_full"
	CodeInternal             Code = "internal"

	// The demo's own codes (httpapi/demo.go), answered by its routes only.
	CodeSignedOut   Code = "signed_out"
	CodeCSRFRefused Code = "csrf_refused"
)

// Error is the one error type of webauthnd. Message is safe to show to a client; Cause is for
// logs only and never leaves the server.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when positive, tells a refused client when to come back.
	RetryAfter time.Duration
	// Cause is the underlying error, logged and never sent.
	Cause error
}

// Error returns the client-safe message with its code.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Errorf makes an Error with a client-safe message.
func Errorf(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Wrap makes an Error that keeps cause for the logs.
func Wrap(code Code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// ErrorCode returns the Code of err, or CodeInternal when err is not an *Error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
