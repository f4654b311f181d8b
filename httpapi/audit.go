package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webauthnd/webauthnd/messages"
)

// Audit writes the audit trail: one JSON line per security event, on a zap logger of its own so
// that the request log's level, sampling or destination never drop or mix in an audit line.
// A nil *Audit writes nothing, so callers record without checking whether auditing is on.
type Audit struct {
	log *zap.Logger
	// failed is told each line that could not be written (see NewAudit).
	failed func(error)

	mu       sync.Mutex
	lost     int
	lastWarn time.Time
}

// auditWarnEvery spaces the main log's reports of lost audit lines: a full disk fails every
// line, and one report a minute with a count says as much as thousands.
const auditWarnEvery = time.Minute

// NewAudit returns an Audit that writes to w (a file, lumberjack's rotating file, stderr).
// It does not sync each line: a line is handed to the operating system before the answer it
// describes is written, which survives the process crashing but not the machine.
//
// A line that cannot be written (a full disk) is lost and reported to log, the main logger,
// at most once a minute with the count of lines lost; the service keeps answering. Nil log
// reports nowhere.
func NewAudit(w io.Writer, log *zap.Logger) *Audit {
	enc := zapcore.EncoderConfig{
		TimeKey:    "time",
		MessageKey: "event",
		EncodeTime: func(t time.Time, e zapcore.PrimitiveArrayEncoder) {
			// UTC, so that lines from nodes in different zones sort and compare as text.
			e.AppendString(t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
		},
		EncodeDuration: zapcore.StringDurationEncoder,
		LineEnding:     zapcore.DefaultLineEnding,
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), zapcore.InfoLevel)
	a := &Audit{log: zap.New(core)}
	if log != nil {
		a.failed = func(err error) { a.reportLost(log, err) }
	}
	return a
}

// Record writes e as one line. An empty Outcome is written as "ok" and a zero Time as now; empty
// identifiers are left out of the line.
func (a *Audit) Record(e messages.AuditEvent) {
	if a == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Outcome == "" {
		e.Outcome = messages.AuditOK
	}
	fields := make([]zapcore.Field, 0, 9)
	fields = append(fields, zap.String("outcome", e.Outcome))
	for _, f := range [...]struct{ key, value string }{
		{"tenant", e.Tenant}, {"community", e.Community}, {"username", e.Username},
		{"fidoKeyHash", e.FidoKeyHash}, {"licenseId", e.LicenseID},
		{"remoteAddr", e.RemoteAddr}, {"requestId", e.RequestID},
	} {
		if f.value != "" {
			fields = append(fields, zap.String(f.key, f.value))
		}
	}
	// The core is written directly, not through the Logger, to learn whether the line was lost.
	entry := zapcore.Entry{Level: zapcore.InfoLevel, Time: e.Time, Message: e.Event}
	if err := a.log.Core().Write(entry, fields); err != nil && a.failed != nil {
		a.failed(err)
	}
}

// Sync flushes what the writer buffers; the server calls it on shutdown.
func (a *Audit) Sync() error {
	if a == nil {
		return nil
	}
	return a.log.Sync()
}

func (a *Audit) reportLost(log *zap.Logger, err error) {
	a.mu.Lock()
	a.lost++
	now := time.Now()
	if !a.lastWarn.IsZero() && now.Sub(a.lastWarn) < auditWarnEvery {
		a.mu.Unlock()
		return
	}
	lost := a.lost
	a.lost, a.lastWarn = 0, now
	a.mu.Unlock()
	log.Error("audit lines lost: the audit log cannot be written; the service keeps answering",
		zap.Int("lost", lost), zap.Error(err))
}

// requestInfo is what the request log learned about a request and the audit trail repeats: the
// request id and the client's address.
type requestInfo struct {
	id     string
	remote string
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, info requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// AuditFrom fills e's RemoteAddr and RequestID from r, as the request log saw them, so that an
// audit line and its request's log line carry the same request id.
func AuditFrom(r *http.Request, e messages.AuditEvent) messages.AuditEvent {
	if info, ok := r.Context().Value(requestInfoKey{}).(requestInfo); ok {
		e.RequestID, e.RemoteAddr = info.id, info.remote
	}
	return e
}

// peerHost is the host of a connection's remote address, or the address itself when it has no
// port (a Unix socket's peer).
func peerHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
