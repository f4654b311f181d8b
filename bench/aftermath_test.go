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
	admin := newAdminClient(fakeAdmin(t, mux))
	got, err := admin.stats(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (serverStats{LiveCeremonies: 3, HeapBytes: 12345678, Goroutines: 42}); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
	if !gcAsked.Load() {
		t.Error("the harness did not ask for a collection first (?gc=1)")
	}
	if _, err := admin.stats(context.Background(), false); err != nil || gcAsked.Load() {
		t.Errorf("a reading without a collection: %v, gc asked %v", err, gcAsked.Load())
	}
}

func TestAdminClientReadsRoundTrips(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/stats", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"liveCeremonies": 0, "heapBytes": 1, "goroutines": 1, "storeRoundTrips": 18446744073709551615}`))
	})
	got, err := newAdminClient(fakeAdmin(t, mux)).stats(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got.StoreRoundTrips == nil || *got.StoreRoundTrips != 1<<64-1 {
		t.Errorf("storeRoundTrips = %v, want the whole uint64", got.StoreRoundTrips)
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
			_, err := newAdminClient(fakeAdmin(t, tc.handler)).stats(context.Background(), true)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, new(errNoStats)) != tc.noStats {
				t.Errorf("stats: %v, want an error containing %q (a missing endpoint: %v)", err, tc.want, tc.noStats)
			}
		})
	}
	t.Run("no socket", func(t *testing.T) {
		if _, err := newAdminClient(filepath.Join(t.TempDir(), "none.sock")).stats(context.Background(), true); err == nil {
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
	var calls, collected atomic.Int32
	socket := fakeAdmin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Query().Get("gc") != "1" {
			_, _ = w.Write([]byte(`{"liveCeremonies": 9, "heapBytes": 9, "goroutines": 9}`)) // the end of the burst: round trips only
			return
		}
		if collected.Add(1) == 1 {
			_, _ = w.Write([]byte(`{"liveCeremonies": 0, "heapBytes": 1000000, "goroutines": 10}`))
			return
		}
		_, _ = w.Write([]byte(`{"liveCeremonies": 1, "heapBytes": 1050000, "goroutines": 11}`))
	}))
	sum, text := runHarness(t, srv, "--burst", "50", "--users", "8", "--admin-socket", socket, "--settle", "10ms")
	a := sum.Aftermath
	if a == nil || a.OK || a.LiveCeremoniesAfter != 1 || a.HeapChangePercent != 5 || calls.Load() != 3 || collected.Load() != 2 {
		t.Fatalf("aftermath %+v after %d stats calls (%d collected), want a failure for the one live ceremony, "+
			"from the readings before the burst and after settling", a, calls.Load(), collected.Load())
	}
	if sum.RoundTrips != nil {
		t.Errorf("round trips %+v from a socket that counts none", sum.RoundTrips)
	}
	if !strings.Contains(text, "FAIL: 1 live ceremonies") {
		t.Errorf("the report does not give the verdict:\n%s", text)
	}
}

func TestRoundTripsPerCeremony(t *testing.T) {
	n := func(v uint64) *uint64 { return &v }
	at := func(counts ...*uint64) []serverStats {
		s := make([]serverStats, len(counts))
		for i, c := range counts {
			s[i].StoreRoundTrips = c
		}
		return s
	}
	for _, tc := range []struct {
		name          string
		before, after []serverStats
		ok            int64
		want          *RoundTrips
	}{
		{"one node", at(n(100)), at(n(500)), 100, &RoundTrips{Total: 400, PerCeremony: 4}},
		{"the nodes added up", at(n(10), n(1000)), at(n(360), n(1000+350)), 200, &RoundTrips{Total: 700, PerCeremony: 3.5}},
		{"no ceremony completed", at(n(1)), at(n(5)), 0, &RoundTrips{Total: 4}},
		{"an embedded store", at(nil), at(nil), 100, nil},
		{"one node of two counts nothing", at(n(1), nil), at(n(9), nil), 100, nil},
		{"a node restarted in between", at(n(900)), at(n(20)), 100, nil},
		{"no readings", nil, nil, 100, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := newRoundTrips(tc.before, tc.after, Outcomes{OK: tc.ok})
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("newRoundTrips = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSumStatsAddsTheNodes(t *testing.T) {
	got := sumStats([]serverStats{{LiveCeremonies: 2, HeapBytes: 10, Goroutines: 20}, {LiveCeremonies: 3, HeapBytes: 5, Goroutines: 21}})
	if want := (serverStats{LiveCeremonies: 5, HeapBytes: 15, Goroutines: 41}); got != want {
		t.Errorf("sumStats = %+v, want %+v", got, want)
	}
}
