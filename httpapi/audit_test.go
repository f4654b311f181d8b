package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

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
	a.Record(messages.AuditEvent{Event: messages.AuditSignIn})
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
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
