package httpapi

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[messages.Code]int{
	messages.CodeInvalidRequest:       http.StatusBadRequest,
	messages.CodePrivateKeyRefused:    http.StatusBadRequest,
	messages.CodeBodyTooLarge:         http.StatusRequestEntityTooLarge,
	messages.CodeLicenseMissing:       http.StatusUnauthorized,
	messages.CodeLicenseInvalid:       http.StatusUnauthorized,
	messages.CodeLicenseDisabled:      http.StatusUnauthorized,
	messages.CodeLicenseExpired:       http.StatusUnauthorized,
	messages.CodeLicenseScope:         http.StatusForbidden,
	messages.CodeEnvelopeInvalid:      http.StatusBadRequest,
	messages.CodeRequestInvalid:       http.StatusUnauthorized,
	messages.CodeRequestStale:         http.StatusUnauthorized,
	messages.CodeRequestReplayed:      http.StatusUnauthorized,
	messages.CodeCommunityUnknown:     http.StatusNotFound,
	messages.CodeRPIDNotAllowed:       http.StatusBadRequest,
	messages.CodeCeremonyNotFound:     http.StatusBadRequest,
	messages.CodeSessionMismatch:      http.StatusBadRequest,
	messages.CodeInvalidCredential:    http.StatusBadRequest,
	messages.CodeTypeMismatch:         http.StatusBadRequest,
	messages.CodeOriginNotAllowed:     http.StatusBadRequest,
	messages.CodeCrossOriginRefused:   http.StatusBadRequest,
	messages.CodeChallengeMismatch:    http.StatusBadRequest,
	messages.CodeRPIDHashMismatch:     http.StatusBadRequest,
	messages.CodeUserPresence:         http.StatusBadRequest,
	messages.CodeUserVerification:     http.StatusBadRequest,
	messages.CodeSelectionUnmet:       http.StatusBadRequest,
	messages.CodeAuthenticatorRefused: http.StatusForbidden,
	messages.CodeSignatureInvalid:     http.StatusBadRequest,
	messages.CodeAttestationInvalid:   http.StatusBadRequest,
	messages.CodeAlgorithmNotAllowed:  http.StatusBadRequest,
	messages.CodeBackupEligibility:    http.StatusBadRequest,
	messages.CodeCredentialUnknown:    http.StatusBadRequest,
	messages.CodeCredentialExists:     http.StatusConflict,
	messages.CodeConflict:             http.StatusConflict,
	messages.CodeCounterRegression:    http.StatusBadRequest,
	messages.CodeVerificationFailed:   http.StatusBadRequest,
	messages.CodeNotFound:             http.StatusNotFound,
	messages.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	messages.CodeBusy:                 http.StatusTooManyRequests,
	messages.CodeRateLimited:          http.StatusTooManyRequests,
	messages.CodeUnavailable:          http.StatusServiceUnavailable,
	messages.CodeStorageFull:          http.StatusInsufficientStorage,
	messages.CodeInternal:             http.StatusInternalServerError,
	messages.CodeSignedOut:            http.StatusUnauthorized,
	messages.CodeCSRFRefused:          http.StatusForbidden,
}

// errorBody is the JSON of every error: the reference's fields plus a stable code and the
// BlockID SDKs' status/errorMessage pair.
type errorBody struct {
	StatusCode   int           `json:"statusCode"`
	Error        string        `json:"error"`
	Message      string        `json:"message"`
	Code         messages.Code `json:"code"`
	Status       string        `json:"status"`
	ErrorMessage string        `json:"errorMessage"`
}

// writeError is the one error writer. The client gets the code and the client-safe message;
// the cause goes to the log only. Anything that is not a *messages.Error is a 500.
func writeError(w http.ResponseWriter, log *zap.Logger, err error) {
	var e *messages.Error
	if !errors.As(err, &e) {
		e = messages.Wrap(messages.CodeInternal, "internal error", err)
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		log.Error("request failed", zap.String("code", string(e.Code)), zap.NamedError("cause", e.Cause))
	} else if e.Cause != nil {
		log.Debug("request refused", zap.String("code", string(e.Code)), zap.NamedError("cause", e.Cause))
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	message := e.Message
	if status == http.StatusInternalServerError {
		message = "internal error"
	}
	setCode(w, e.Code)
	encode(w, status, errorBody{StatusCode: status, Error: http.StatusText(status), Message: message,
		Code: e.Code, Status: "failed", ErrorMessage: message})
}

// handle adapts a handler that returns its error to http.Handler: the error goes to the one
// error writer.
func handle(log *zap.Logger, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, log, err)
		}
	})
}

// encode writes v as JSON with status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func zapAny(v any) zap.Field { return zap.Any("panic", v) }
