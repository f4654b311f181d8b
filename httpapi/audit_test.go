package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/webauthnd/webauthnd/messages"
)

func TestAuditRecordWritesOneJSONLine(t *testing.T) {
	var buf bytes.Buffer
	a := NewAudit(&buf, nil)
	at := time.Date(2026, 3, 3, 9, 15, 0, 123456000, time.FixedZone("CET", 3600))
	a.Record(messages.AuditEvent{Time: at, Event: messages.AuditSignIn, Tenant: "t1", Community: "c1",
		Username: "alice", FidoKeyHash: "ab12", LicenseID: "lic-1", RemoteAddr: "192.0.2.7", RequestID: "r1"})
	a.Record(messages.AuditEvent{Event: messages.AuditBackup, Outcome: string(messages.CodeStorageFull)})

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d: %q", len(lines), buf.String())
	}
	var first map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("line 1 is not a JSON object of strings: %v: %s", err, lines[0])
	}
	want := map[string]string{
		"time": "2026-03-03T08:15:00.123456Z", "event": "signin", "outcome": "ok", "tenant": "t1",
		"community": "c1", "username": "alice", "fidoKeyHash": "ab12", "licenseId": "lic-1",
		"remoteAddr": "192.0.2.7", "requestId": "r1",
	}
	if len(first) != len(want) {
		t.Errorf("line 1 has fields %v, want exactly %v", first, want)
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %q, want %q", k, first[k], v)
		}
	}
	var second map[string]string
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if second["outcome"] != "storage_full" || second["event"] != "backup" || second["time"] == "" {
		t.Errorf("line 2 = %v", second)
	}
	if _, ok := second["username"]; ok {
		t.Errorf("an empty username is written: %v", second)
	}
}

func TestNilAuditWritesNothing(t *testing.T) {
	var a *Audit
	a.Record(messages.AuditEvent{Event: messages.AuditSignIn}) // no panic
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

func TestAuditReportsLostLinesOnTheMainLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	a := NewAudit(failingWriter{}, zap.New(core))
	for range 3 {
		a.Record(messages.AuditEvent{Event: messages.AuditSignIn})
	}
	// One report, not three: a full disk fails every line.
	if n := logs.FilterMessageSnippet("audit lines lost").Len(); n != 1 {
		t.Fatalf("want one report of lost lines, got %d: %v", n, logs.All())
	}
}

// TestClientAddr is the spec of --trusted-proxy: X-Forwarded-For names the client only when the
// peer is a trusted proxy, and then its rightmost entry that is not itself a trusted proxy;
// whatever a client writes to the left of that is ignored.
func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.10", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		peer    string
		xff     []string // X-Forwarded-For headers, in order
		trusted []netip.Prefix
		want    string
	}{
		{"no proxy trusted: the peer", "203.0.113.5:4711", nil, nil, "203.0.113.5"},
		{"no proxy trusted: the header is ignored", "203.0.113.5:4711", []string{"198.51.100.1"}, nil, "203.0.113.5"},
		{"an untrusted peer cannot spoof its address", "203.0.113.5:4711", []string{"198.51.100.1"}, trusted, "203.0.113.5"},
		{"an untrusted peer posing as a trusted proxy", "203.0.113.5:4711", []string{"198.51.100.1, 10.0.0.1"}, trusted, "203.0.113.5"},
		{"a trusted proxy names the client", "10.1.2.3:4711", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"a trusted single address", "192.0.2.10:4711", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"a /32 does not trust its neighbour", "192.0.2.11:4711", []string{"198.51.100.1"}, trusted, "192.0.2.11"},
		{"a client's spoofed entries left of the real one are ignored", "10.1.2.3:4711",
			[]string{"1.1.1.1, 2.2.2.2, 198.51.100.1"}, trusted, "198.51.100.1"},
		{"a client spoofing a trusted address is still the rightmost untrusted", "10.1.2.3:4711",
			[]string{"10.9.9.9, 198.51.100.1"}, trusted, "198.51.100.1"},
		{"a chain of trusted proxies is walked", "10.1.2.3:4711", []string{"198.51.100.1, 10.0.0.7, 10.0.0.8"}, trusted, "198.51.100.1"},
		{"several headers read as one list", "10.1.2.3:4711", []string{"6.6.6.6, 198.51.100.1", "10.0.0.8"}, trusted, "198.51.100.1"},
		{"every hop trusted: the leftmost", "10.1.2.3:4711", []string{"10.0.0.7, 10.0.0.8"}, trusted, "10.0.0.7"},
		{"a trusted proxy without a header: the proxy", "10.1.2.3:4711", nil, trusted, "10.1.2.3"},
		{"an entry that does not parse stops at the last known", "10.1.2.3:4711", []string{"198.51.100.1, unknown"}, trusted, "10.1.2.3"},
		{"garbage behind a trusted hop", "10.1.2.3:4711", []string{"<script>, 10.0.0.8"}, trusted, "10.0.0.8"},
		{"an entry with a port", "10.1.2.3:4711", []string{"198.51.100.1:5555"}, trusted, "198.51.100.1"},
		{"IPv6 entries", "[fd00::1]:4711", []string{"[2001:db8::7]:5555"}, trusted, "2001:db8::7"},
		{"IPv6 peer untrusted", "[2001:db8::9]:4711", []string{"198.51.100.1"}, trusted, "2001:db8::9"},
		{"an IPv4-mapped peer is trusted as IPv4", "[::ffff:10.1.2.3]:4711", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"an IPv4-mapped CIDR trusts the IPv4 peers it maps", "10.1.2.3:4711", []string{"198.51.100.1"},
			mustParseTrustedProxies(t, "::ffff:10.0.0.0/104"), "198.51.100.1"},
		{"an IPv4-mapped CIDR trusts IPv4-mapped peers", "[::ffff:10.1.2.3]:4711", []string{"198.51.100.1"},
			mustParseTrustedProxies(t, "::ffff:10.0.0.0/104"), "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tc.trusted); got != tc.want {
				t.Fatalf("clientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

func mustParseTrustedProxies(t *testing.T, values ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseTrustedProxies(values)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseTrustedProxiesRefusesWhatIsNotAnAddress(t *testing.T) {
	for _, v := range []string{"10.0.0.0/33", "proxy.example.com", "10.0.0.1-10.0.0.9"} {
		if _, err := ParseTrustedProxies([]string{v}); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

// TestRequestLogAndAuditShareTheRequestID: the audit line of a request carries the id and the
// address its request log line carries (the caller's requestid when it is a UUID).
func TestRequestLogAndAuditShareTheRequestID(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	var buf bytes.Buffer
	audit := NewAudit(&buf, nil)
	h := withClientAddr(nil, withRequestLog(zap.New(core), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		audit.Record(AuditFrom(r, messages.AuditEvent{Event: messages.AuditSignIn}))
	})))
	for _, sent := range []string{"0e5a1a4e-8c1f-4f47-9d33-3f2d1b8a7c11", "", "not an id!"} {
		r := httptest.NewRequest("POST", "/webauthn/u1/assertion/result", nil)
		r.RemoteAddr = "203.0.113.5:4711"
		if sent != "" {
			r.Header.Set("requestid", sent)
		}
		buf.Reset()
		h.ServeHTTP(httptest.NewRecorder(), r)
		var line map[string]string
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		entries := logs.TakeAll()
		if len(entries) != 1 {
			t.Fatalf("want one request log line, got %d", len(entries))
		}
		fields := entries[0].ContextMap()
		if line["requestId"] == "" || line["requestId"] != fields["requestId"] {
			t.Errorf("audit requestId %q, request log %v", line["requestId"], fields["requestId"])
		}
		if sent == "0e5a1a4e-8c1f-4f47-9d33-3f2d1b8a7c11" && line["requestId"] != sent {
			t.Errorf("the caller's request id %q became %q", sent, line["requestId"])
		}
		if line["remoteAddr"] != "203.0.113.5" || fields["remoteAddr"] != "203.0.113.5" {
			t.Errorf("remote address: audit %q, request log %v", line["remoteAddr"], fields["remoteAddr"])
		}
	}
}

// auditBeforeAnswer is a ResponseWriter that notes, when the answer starts, how much the audit
// trail held.
type auditBeforeAnswer struct {
	*httptest.ResponseRecorder
	audit   *bytes.Buffer
	atFirst int
}

func (w *auditBeforeAnswer) WriteHeader(code int) {
	w.atFirst = w.audit.Len()
	w.ResponseRecorder.WriteHeader(code)
}

// TestAuditLineIsWrittenBeforeTheAnswer: a handler writes its audit line before the first byte
// of its answer, for a change that succeeded and for one the engine refused, so that no client
// ever holds an answer whose line is missing.
func TestAuditLineIsWrittenBeforeTheAnswer(t *testing.T) {
	lc, key := fuzzLicenses(t)
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, method, path string
		engine             Passkeys
		status             int
		want               map[string]string
	}{
		{"link", http.MethodPut, "/link/community/default/did/did:example:1/user/alice/fidokey/" + hash, fakePasskeys{}, 200,
			map[string]string{"event": "passkey.linked", "outcome": "ok", "community": "default", "tenant": "default",
				"username": "alice", "fidoKeyHash": hash, "did": "did:example:1"}},
		{"unlink refused", http.MethodDelete, "/link/community/default/did/did:example:1/user/alice/fidokey/" + hash,
			refusingPasskeys{messages.Errorf(messages.CodeNotFound, "no such link")}, 404,
			map[string]string{"event": "passkey.unlinked", "outcome": "not_found", "username": "alice", "fidoKeyHash": hash}},
		{"unregister", http.MethodDelete, "/unregister/community/default/user/alice/did_or_fidokey/" + hash, fakePasskeys{}, 200,
			map[string]string{"event": "passkey.removed", "outcome": "ok", "username": "alice", "fidoKeyHash": hash}},
		{"unregister by DID", http.MethodDelete, "/unregister/community/default/did_or_fidokey/did:example:2", fakePasskeys{}, 200,
			map[string]string{"event": "passkey.removed", "outcome": "ok", "did": "did:example:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			lc := lc
			lc.audit = NewAudit(&buf, nil)
			r := httprouter.New()
			r.Handler(http.MethodPut, "/link/community/:communityId/did/:did/user/:userId/fidokey/:fidoKeyHash", handleLink(lc, tc.engine, true, zap.NewNop()))
			r.Handler(http.MethodDelete, "/link/community/:communityId/did/:did/user/:userId/fidokey/:fidoKeyHash", handleLink(lc, tc.engine, false, zap.NewNop()))
			r.Handler(http.MethodDelete, "/unregister/community/:communityId/user/:userId/did_or_fidokey/:identifier", handleUnregister(lc, tc.engine, true, zap.NewNop()))
			r.Handler(http.MethodDelete, "/unregister/community/:communityId/did_or_fidokey/:identifier", handleUnregister(lc, tc.engine, false, zap.NewNop()))
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.Header.Set("licensekey", key)
			w := &auditBeforeAnswer{ResponseRecorder: httptest.NewRecorder(), audit: &buf}
			withClientAddr(nil, withRequestLog(zap.NewNop(), r)).ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("answered %d %s, want %d", w.Code, w.Body, tc.status)
			}
			if w.atFirst == 0 || w.atFirst != buf.Len() {
				t.Fatalf("the audit held %d bytes when the answer started and %d at the end: the line came after the answer", w.atFirst, buf.Len())
			}
			var line map[string]string
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if line[k] != v {
					t.Errorf("%s = %q, want %q (line %v)", k, line[k], v, line)
				}
			}
			if line["licenseId"] == "" || line["requestId"] == "" || line["remoteAddr"] != "192.0.2.1" {
				t.Errorf("the line lacks the license id, request id or address: %v", line)
			}
			if strings.Contains(buf.String(), key) {
				t.Errorf("the license key is in the audit line: %s", buf.String())
			}
		})
	}
}

// refusingPasskeys refuses every change with err.
type refusingPasskeys struct{ err error }

func (f refusingPasskeys) Passkeys(context.Context, messages.ListPasskeys) (messages.UserPasskeys, error) {
	return messages.UserPasskeys{}, f.err
}
func (f refusingPasskeys) Link(context.Context, messages.Link) error   { return f.err }
func (f refusingPasskeys) Unlink(context.Context, messages.Link) error { return f.err }
func (f refusingPasskeys) Unregister(context.Context, messages.Unregister) (int, error) {
	return 0, f.err
}
