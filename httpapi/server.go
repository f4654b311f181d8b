package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// Ceremonies is the ceremony engine as handlers see it.
type Ceremonies interface {
	BeginRegistration(context.Context, messages.BeginRegistration) (messages.RegistrationOptions, error)
	FinishRegistration(context.Context, messages.FinishRegistration) (messages.Registered, error)
	BeginSignIn(context.Context, messages.BeginSignIn) (messages.SignInOptions, error)
	FinishSignIn(context.Context, messages.FinishSignIn) (messages.SignedIn, error)
}

// Config is what the public routes report about the service.
type Config struct {
	// PublicURL is the service's external base URL, e.g. http://localhost:8080.
	PublicURL string
	// Version is reported by /healthz.
	Version string
	// CeremonyTimeout is reported in the options' timeout and by /environment.
	CeremonyTimeout time.Duration
	// TokenTTL is reported by /environment as jwtExpirationInMs.
	TokenTTL time.Duration
	// AllowedTimeSpan is the freshness window of sealed requests.
	AllowedTimeSpan time.Duration
	// Directory overrides entries of /sd; unset keys default to <public-url>/<key>.
	Directory map[string]string
}

// Deps is everything the HTTP server uses.
type Deps struct {
	Config      Config
	Ceremonies  Ceremonies
	Licenses    persistence.Licenses
	Communities persistence.Communities
	// Health is what /healthz checks besides draining (healthz.go).
	Health HealthChecks
	// Draining reports whether the server is shutting down (healthz then answers 503).
	Draining func() bool
	// TokenKeys returns the signature token verification keys, as JWKs (published at
	// /publickeys); they change when the signing key rotates.
	TokenKeys func() any
	// Envelope holds the service's envelope keys.
	Envelope *Keyring
	// Replays remembers the request ids of sealed requests.
	Replays Replays
	// Passkeys lists, links and removes users' passkeys.
	Passkeys Passkeys
	// Vendor reads and writes the communities' vendor metadata records.
	Vendor VendorDeps
	// Metrics, when set, counts and times the requests by route (metrics.go).
	Metrics *Metrics

	// Demo, when set, serves the passkey demo at / (demo.go).
	Demo *DemoConfig
	Log  *zap.Logger
	// Audit writes the audit trail; nil writes none.
	Audit *Audit
	// TrustedProxies are the peers whose X-Forwarded-For names the client (clientAddr).
	TrustedProxies []netip.Prefix
}

// NewServer returns the service's HTTP handler.
func NewServer(d Deps) http.Handler {
	// The demo calls the service in-process through this same handler, which exists only once
	// routes has returned.
	var server http.Handler
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { server.ServeHTTP(w, r) })
	server = withRequestLog(d.Log, strictTransportSecurity(d.Metrics.instrument(refusePrivateKey(d.Log, limitBody(routes(d, api))))))
	server = withClientAddr(d.TrustedProxies, server)
	return server
}

// refusePrivateKey refuses any request that carries a privateKey header: a private key must
// never leave its owner. The header's value is neither logged nor echoed.
func refusePrivateKey(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Privatekey"]; ok {
			writeError(w, log, messages.Errorf(messages.CodePrivateKeyRefused,
				"a privateKey header was sent: a private key must never leave its owner; remove the header and rotate that key"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps every request body at bodyLimit (64 KiB). A route that takes more says so
// in routes.go with bodyUpTo; nothing else can raise it.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, bodyLimit), raw: r.Body}
		next.ServeHTTP(w, r)
	})
}

// bodyUpTo lets the route of next take bodies of up to limit bytes instead of bodyLimit: it
// replaces the limit that limitBody set, before anything has read the body. A request whose
// body limitBody did not wrap is left as it is.
func bodyUpTo(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, ok := r.Body.(*limitedBody); ok {
			r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, b.raw, limit), raw: b.raw}
		}
		next.ServeHTTP(w, r)
	})
}

// limitedBody is a request body under limitBody's cap, with the body it caps, so that bodyUpTo
// can set another cap.
type limitedBody struct {
	io.ReadCloser
	raw io.ReadCloser
}

// requestIDPattern accepts what BlockID SDKs send in requestid on the u1 routes: a bare UUID.
var requestIDPattern = regexp.MustCompile(`^[0-9a-fA-F-]{8,64}$`)

// statusRecorder is the response writer of a request of the request log: it keeps the status
// and the error code for the log line and, on the public API, the route for the metrics
// (Metrics.instrument, labelled, markMethodNotAllowed).
type statusRecorder struct {
	http.ResponseWriter
	status           int
	code             string
	route            *routeMetrics
	methodNotAllowed bool
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) setCode(code string) { s.code = code }

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// setCode tells the request log which error code a response carried.
func setCode(w http.ResponseWriter, code messages.Code) {
	if s, ok := w.(interface{ setCode(string) }); ok && code != "" {
		s.setCode(string(code))
	}
}

// withRequestLog writes one line per request: method, path, status, duration, error code, the
// caller's request id and address (withClientAddr). No header values or bodies are logged. A
// request the demo makes in-process, inside a browser's request, keeps that request's id.
func withRequestLog(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info, inProcess := requestInfoOf(r.Context())
		if !inProcess {
			info = requestInfo{id: r.Header.Get("requestid"), remote: peerHost(r.RemoteAddr)}
			if !requestIDPattern.MatchString(info.id) {
				b := make([]byte, 8)
				_, _ = rand.Read(b)
				info.id = hex.EncodeToString(b)
			}
			if addr, ok := r.Context().Value(clientAddrKey{}).(string); ok {
				info.remote = addr
			}
			// The audit trail reads the same id and address from the context (AuditFrom).
			r = r.WithContext(withRequestInfo(r.Context(), info))
		}
		id := info.id
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		fields := []zap.Field{
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", rec.status),
			zap.Duration("duration", time.Since(start)), zap.String("requestId", id),
			zap.String("remoteAddr", info.remote),
		}
		if rec.code != "" {
			fields = append(fields, zap.String("code", rec.code))
		}
		log.Info("request", fields...)
	})
}

func trimSlash(s string) string { return strings.TrimRight(s, "/") }
