package httpapi

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
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
	// Lock: lines from concurrent requests must not interleave in a writer that does not
	// serialise its writes itself.
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)
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
	fields := make([]zapcore.Field, 0, 11)
	fields = append(fields, zap.String("outcome", e.Outcome))
	for _, f := range [...]struct{ key, value string }{
		{"tenant", e.Tenant}, {"community", e.Community}, {"username", e.Username},
		{"fidoKeyHash", e.FidoKeyHash}, {"did", e.DID}, {"aaguid", e.AAGUID}, {"licenseId", e.LicenseID},
		{"remoteAddr", e.RemoteAddr}, {"requestId", e.RequestID},
	} {
		if f.value != "" {
			fields = append(fields, zap.String(f.key, f.value))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(e.Counts)) {
		fields = append(fields, zap.Int(k, e.Counts[k]))
	}
	// The core is written directly, not through the Logger, to learn whether the line was lost.
	entry := zapcore.Entry{Level: zapcore.InfoLevel, Time: e.Time, Message: e.Event}
	if err := a.log.Core().Write(entry, fields); err != nil && a.failed != nil {
		a.failed(err)
	}
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

func requestInfoOf(ctx context.Context) (requestInfo, bool) {
	info, ok := ctx.Value(requestInfoKey{}).(requestInfo)
	return info, ok
}

// AuditFrom fills e's RemoteAddr and RequestID from r, as the request log saw them, so that an
// audit line and its request's log line carry the same request id.
func AuditFrom(r *http.Request, e messages.AuditEvent) messages.AuditEvent {
	if info, ok := requestInfoOf(r.Context()); ok {
		e.RequestID, e.RemoteAddr = info.id, info.remote
	}
	return e
}

// record writes e, completed from r, on the audit trail. Every licensed route holds the license
// checker, so it carries the audit writer to them.
func (lc licenseChecker) record(r *http.Request, e messages.AuditEvent) {
	lc.audit.Record(AuditFrom(r, e))
}

// scopeEvent is an event of a licensed caller acting on a community.
func scopeEvent(event string, scope messages.Scope, err error) messages.AuditEvent {
	return messages.AuditEvent{Event: event, Outcome: messages.AuditOutcome(err), Tenant: scope.TenantID,
		Community: scope.CommunityID, LicenseID: scope.LicenseID}
}

// AuditOfAdmin is the audit event of an admin request, or false for a request that is not a
// security event. The admin API and the CLI (writing straight to a store when no server runs)
// both record it, so that a change reads the same whichever way it went.
func AuditOfAdmin(req AdminRequest, err error) (messages.AuditEvent, bool) {
	e := messages.AuditEvent{Outcome: messages.AuditOutcome(err), RemoteAddr: LocalOperator}
	switch req := req.(type) {
	case AdminCommunity:
		e.Event, e.Community, e.Tenant = messages.AuditCommunityCreated, req.Community.ID, req.Community.TenantID
	case AdminCommunityPatch:
		e.Event, e.Community, e.Tenant = messages.AuditCommunityChanged, req.ID, req.TenantID
	case AdminLicense:
		e.Event, e.LicenseID, e.Community, e.Tenant = messages.AuditLicenseCreated, req.ID, req.CommunityID, req.TenantID
	case AdminRevokeLicense:
		e.Event, e.LicenseID = messages.AuditLicenseRevoked, req.ID
	default:
		return e, false
	}
	return e, true
}

// LocalOperator is the remote address of an event an operator caused on the server's machine:
// through the admin socket (a Unix socket, whose peer has no address) or a CLI command.
const LocalOperator = "local"

// ParseTrustedProxies reads --trusted-proxy values: CIDRs (10.0.0.0/8, fd00::/8) or single
// addresses (a /32 or /128).
func ParseTrustedProxies(values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	for _, v := range values {
		if v == "" {
			continue
		}
		if p, err := netip.ParsePrefix(v); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				// isTrusted compares unmapped addresses: an IPv4-mapped CIDR is its IPv4 one.
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an address", v)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// clientAddr is the address of the client a request came from. X-Forwarded-For is believed only
// when the peer is a trusted proxy: anyone can send the header, so believing it from any peer
// would let a client write whatever address it likes into the audit trail. Each trusted proxy
// appends the address it received the request from, so the header is read from the right: the
// first entry that is not itself a trusted proxy is the client; entries left of it were written
// by the client or untrusted hops and are ignored. An entry that does not parse stops the walk
// at the last address known.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	peer := peerHost(r.RemoteAddr)
	addr, err := netip.ParseAddr(peer)
	if err != nil || !isTrusted(addr, trusted) {
		return peer
	}
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		entries := strings.Split(values[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			next, ok := parseForwarded(entries[j])
			if !ok {
				return addr.String()
			}
			addr = next
			if !isTrusted(addr, trusted) {
				return addr.String()
			}
		}
	}
	// Every hop is a trusted proxy: the leftmost is as far back as anyone can tell.
	return addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap().WithZone("")
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseForwarded reads one X-Forwarded-For entry: an address, possibly with a port
// (192.0.2.1:4711, [2001:db8::1]:4711).
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// withClientAddr resolves the client's address once, for the request log and the audit trail
// (withRequestLog puts it in the request's context). A request made in-process by the demo
// keeps the address of the browser request that caused it.
func withClientAddr(trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Context().Value(clientAddrKey{}).(string); !ok {
			r = r.WithContext(context.WithValue(r.Context(), clientAddrKey{}, clientAddr(r, trusted)))
		}
		next.ServeHTTP(w, r)
	})
}

type clientAddrKey struct{}

// peerHost is the host of a connection's remote address, or the address itself when it has no
// port (a Unix socket's peer).
func peerHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
