package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAdmin serves handler on a Unix socket, as webauthnd serves its admin API, and returns the
// socket's path.
func fakeAdmin(t *testing.T, handler http.Handler) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return socket
}

func TestAdminClientReadsStats(t *testing.T) {
	var gcAsked atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/stats", func(w http.ResponseWriter, r *http.Request) {
		gcAsked.Store(r.URL.Query().Get("gc") == "1")
		_, _ = w.Write([]byte(`{"liveCeremonies": 3, "heapBytes": 12345678, "goroutines": 42}`))
	})
	got, err := newAdminClient(fakeAdmin(t, mux)).stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (serverStats{LiveCeremonies: 3, HeapBytes: 12345678, Goroutines: 42}); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	if !gcAsked.Load() {
		t.Error("the harness did not ask for a collection first (?gc=1)")
	}
}

func TestAdminClientFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		noStats bool
		want    string
	}{
		{"a server without the endpoint", http.NotFound, true, "no /admin/stats"},
		{"a server error", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"code":"internal"}`, http.StatusInternalServerError)
		}, false, "answered 500"},
		{"an answer that is not JSON", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }, false, "/admin/stats:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newAdminClient(fakeAdmin(t, tc.handler)).stats(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, new(errNoStats)) != tc.noStats {
				t.Errorf("stats: %v, want an error containing %q (a missing endpoint: %v)", err, tc.want, tc.noStats)
			}
		})
	}
	t.Run("no socket", func(t *testing.T) {
		if _, err := newAdminClient(filepath.Join(t.TempDir(), "none.sock")).stats(context.Background()); err == nil {
			t.Error("stats from a socket nobody listens on succeeded")
		}
	})
}

func TestAftermathVerdict(t *testing.T) {
	before := serverStats{LiveCeremonies: 0, HeapBytes: 100 << 20, Goroutines: 50}
	for _, tc := range []struct {
		name       string
		before     serverStats
		after      serverStats
		ok         bool
		change     float64
		verdictHas string
	}{
		{"back where it started", before, serverStats{HeapBytes: 104 << 20, Goroutines: 50}, true, 4, "ok"},
		{"exactly 10 % more heap", before, serverStats{HeapBytes: 110 << 20}, true, 10, "ok"},
		{"a smaller heap", before, serverStats{HeapBytes: 60 << 20}, true, -40, "ok"},
		{"ceremonies left", before, serverStats{LiveCeremonies: 7, HeapBytes: 100 << 20}, false, 0, "7 live ceremonies"},
		{"a heap that grew", before, serverStats{HeapBytes: 150 << 20}, false, 50, "heap +50.0 %"},
		{"both", before, serverStats{LiveCeremonies: 1, HeapBytes: 150 << 20}, false, 50, "1 live ceremonies, heap +50.0 %"},
		{"no reading before", serverStats{}, serverStats{HeapBytes: 1 << 20}, false, 0, "no heap reading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAftermath(32*time.Second, tc.before, tc.after, 300<<20, 330<<20)
			if a.OK != tc.ok || a.HeapChangePercent != tc.change || !strings.Contains(a.Verdict, tc.verdictHas) {
				t.Errorf("aftermath %+v, want ok %v, change %v %%, a verdict with %q", a, tc.ok, tc.change, tc.verdictHas)
			}
			if a.SettleSeconds != 32 || a.RSSBeforeMiB != 300 || a.RSSAfterMiB != 330 {
				t.Errorf("aftermath %+v: settle or RSS misreported", a)
			}
		})
	}
}

// TestBurstAftermathAgainstAFakeServer runs a whole burst with --admin-socket, against a real
// server for the ceremonies and a fake admin socket that leaves one ceremony live, and checks
// that the summary and the report say so.
func TestBurstAftermathAgainstAFakeServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	srv := startServer(t)
	var calls atomic.Int32
	socket := fakeAdmin(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			_, _ = w.Write([]byte(`{"liveCeremonies": 0, "heapBytes": 1000000, "goroutines": 10}`))
			return
		}
		_, _ = w.Write([]byte(`{"liveCeremonies": 1, "heapBytes": 1050000, "goroutines": 11}`))
	}))
	sum, text := runHarness(t, srv, "--burst", "50", "--users", "8", "--admin-socket", socket, "--settle", "10ms")
	a := sum.Aftermath
	if a == nil || a.OK || a.LiveCeremoniesAfter != 1 || a.HeapChangePercent != 5 || calls.Load() != 2 {
		t.Fatalf("aftermath %+v after %d stats calls, want a failure for the one live ceremony", a, calls.Load())
	}
	if !strings.Contains(text, "FAIL: 1 live ceremonies") {
		t.Errorf("the report does not give the verdict:\n%s", text)
	}
}
