package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/webauthnd/webauthnd/persistence/postgres/pgtest"
)

// calls records which calls reached which fake node, in order.
type calls struct {
	mu   sync.Mutex
	seen []string
}

// fakeNode answers sign-in calls as a node would, enough for the harness to go on, and records
// each call in calls.
type fakeNode struct {
	name  string
	calls *calls
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.mu.Lock()
	f.calls.seen = append(f.calls.seen, f.name+" "+r.URL.Path)
	f.calls.mu.Unlock()
	switch r.URL.Path {
	case "/webauthn/u1/" + callSignInOptions:
		_, _ = w.Write([]byte(`{"challenge":"Y2hhbGxlbmdl","sessionInfo":"s"}`))
	case "/webauthn/u1/" + callSignInResult:
		_, _ = w.Write([]byte(`{"signature_token":"t"}`))
	default:
		http.NotFound(w, r)
	}
}

// TestCeremoniesCrossNodes: ceremony n sends its options to node n and its result to node n+1,
// round robin, so that with two nodes or more every result reaches a node that did not issue
// its options; with one node, both calls go to it.
func TestCeremoniesCrossNodes(t *testing.T) {
	rec := &calls{}
	urls := map[string]string{}
	for _, name := range []string{"A", "B", "C"} {
		srv := httptest.NewServer(&fakeNode{name: name, calls: rec})
		t.Cleanup(srv.Close)
		urls[name] = srv.URL
	}
	for _, tc := range []struct {
		name  string
		nodes []string
		want  []string // node of the options and of the result, ceremony 0, 1, 2, 3
	}{
		{"one node", []string{"A"}, []string{"A", "A", "A", "A", "A", "A", "A", "A"}},
		{"two nodes", []string{"A", "B"}, []string{"A", "B", "B", "A", "A", "B", "B", "A"}},
		{"three nodes", []string{"A", "B", "C"}, []string{"A", "B", "B", "C", "C", "A", "A", "B"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config{rpID: "localhost", origin: "http://localhost:8080", community: "default", license: "k"}
			for _, n := range tc.nodes {
				cfg.urls = append(cfg.urls, urls[n])
			}
			c := newClient(cfg)
			u := c.newUser("u", 0)
			rec.mu.Lock()
			rec.seen = nil
			rec.mu.Unlock()
			for n := range int64(4) {
				if err := c.signIn(context.Background(), u, true, n); err != nil {
					t.Fatal(err)
				}
			}
			var want []string
			for i, node := range tc.want {
				call := callSignInOptions
				if i%2 == 1 {
					call = callSignInResult
				}
				want = append(want, node+" /webauthn/u1/"+call)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if !slices.Equal(rec.seen, want) {
				t.Errorf("calls reached\n%q\nwant\n%q", rec.seen, want)
			}
		})
	}
}

// TestHarnessAgainstNodesOverPostgres runs the harness against two nodes over one fresh
// PostgreSQL database, every result sent to the node that did not issue its options, and wants
// no error, both nodes' CPU, the round trips counted from both admin sockets, and, when the
// server runs on this machine, PostgreSQL's CPU.
func TestHarnessAgainstNodesOverPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	db := pgtest.NewDatabase(t)
	a := startServerOn(t, filepath.Join(t.TempDir(), "a"), "--store", db)
	b := startServerOn(t, filepath.Join(t.TempDir(), "b"), "--store", db) // a made the default license
	pg := postmaster()
	// maxRoundTrips is a sign-in's budget of 4, with room for the statements that each
	// connection prepares on first use, which a short run does not spread thin; the sealed
	// routes write a replay record per call besides (grouped with other writes under load); a
	// registration has no budget.
	const maxRoundTrips = 6
	for _, tc := range []struct {
		name      string
		args      []string
		maxRounds float64
	}{
		{"sign-in by username", []string{"--scenario", "signin", "--users", "4", "--duration", "1500ms"}, maxRoundTrips},
		{"discoverable sign-in", []string{"--scenario", "discoverable", "--users", "4", "--duration", "1s"}, maxRoundTrips},
		{"registration", []string{"--scenario", "register", "--users", "4", "--duration", "1s"}, 0},
		{"sealed sign-in", []string{"--scenario", "signin", "--routes", "encrypted", "--users", "4", "--duration", "1s"}, maxRoundTrips + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--url", b.url, "--pid", fmt.Sprint(a.pid, ",", b.pid),
				"--admin-socket", filepath.Join(a.dataDir, "admin.sock") + "," + filepath.Join(b.dataDir, "admin.sock")}, tc.args...)
			if pg != 0 {
				args = append(args, "--pg-pid", strconv.Itoa(pg), "--pg-db", dbName(t, db))
			}
			sum, text := runHarness(t, a, args...)
			requireClean(t, sum, text)
			if sum.Nodes != 2 || !strings.Contains(text, "nodes        2") {
				t.Errorf("summary of %d nodes, want 2\n%s", sum.Nodes, text)
			}
			if sum.Server == nil || !slices.Equal(sum.Server.PIDs, []int{a.pid, b.pid}) || sum.Server.CPUSeconds <= 0 {
				t.Errorf("server cost %+v, want both nodes' CPU", sum.Server)
			}
			rt := sum.RoundTrips
			if rt == nil || rt.PerCeremony <= 0 {
				t.Fatalf("round trips %+v, want them counted from both nodes\n%s", rt, text)
			}
			t.Logf("%.2f round trips per ceremony", rt.PerCeremony)
			if tc.maxRounds > 0 && rt.PerCeremony > tc.maxRounds {
				t.Errorf("%.2f round trips per ceremony, want at most %v\n%s", rt.PerCeremony, tc.maxRounds, text)
			}
			if pg == 0 {
				t.Log("no PostgreSQL postmaster on this machine: its CPU not measured")
			} else if d := sum.Database; d == nil || d.CPUSeconds <= 0 || d.Processes == 0 || d.Only != dbName(t, db) || !strings.Contains(text, "postgresql") {
				t.Errorf("database cost %+v, want PostgreSQL's CPU\n%s", d, text)
			}
		})
	}
}

// dbName is the database that a postgres:// URL names.
func dbName(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// postmaster returns the pid of a PostgreSQL postmaster running on this machine (a process
// named postgres whose parent is not), or 0.
func postmaster() int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		st, err := readStat(e.Name())
		if err != nil || st.comm != "postgres" {
			continue
		}
		if parent, err := readStat(strconv.Itoa(st.ppid)); err == nil && parent.comm != "postgres" {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}
