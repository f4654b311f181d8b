package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPprofOnTheAdminSocketOnly: Go's profiles answer on the admin socket (index, named
// profiles, CPU profile, symbols) and nowhere else: not on the public port, not on the default
// mux that net/http/pprof registers itself on. The command line is not served.
func TestPprofOnTheAdminSocketOnly(t *testing.T) {
	s := startServer(t, "")
	sock := socketPath(s.DataDir)
	cases := []struct {
		name   string
		method string
		path   string
		status int
		has    string // in the body
	}{
		{name: "index", path: "/debug/pprof/", status: 200, has: "goroutine"},
		{name: "a named profile, as text", path: "/debug/pprof/goroutine?debug=1", status: 200, has: "goroutine profile:"},
		{name: "heap", path: "/debug/pprof/heap?debug=1", status: 200, has: "heap profile:"},
		{name: "allocs", path: "/debug/pprof/allocs", status: 200},
		{name: "mutex", path: "/debug/pprof/mutex", status: 200},
		{name: "block", path: "/debug/pprof/block", status: 200},
		{name: "a CPU profile of a second", path: "/debug/pprof/profile?seconds=1", status: 200},
		{name: "a trace of a second", path: "/debug/pprof/trace?seconds=1", status: 200, has: "go 1."},
		{name: "symbol lookups", path: "/debug/pprof/symbol", status: 200, has: "num_symbols"},
		{name: "symbol lookups by POST", method: "POST", path: "/debug/pprof/symbol", status: 200, has: "num_symbols"},
		{name: "the command line is not served", path: "/debug/pprof/cmdline", status: 404, has: "not served"},
		{name: "an unknown profile", path: "/debug/pprof/nonsense", status: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, _ := http.NewRequest(method, "http://admin"+tc.path, nil)
			res, err := adminClient(sock, time.Minute).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || !bytes.Contains(body, []byte(tc.has)) {
				t.Errorf("admin socket %s %s answered %d %.200q, want %d with %q", method, tc.path, res.StatusCode, body, tc.status, tc.has)
			}
			if strings.Contains(string(body), s.DataDir) {
				t.Errorf("%s answered the server's command line (its data dir %s)", tc.path, s.DataDir)
			}
		})
	}
	t.Run("not on the public port", func(t *testing.T) {
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline", "/debug/pprof"} {
			res, err := http.Get(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusNotFound || bytes.Contains(body, []byte("profile")) && !bytes.Contains(body, []byte("no such route")) {
				t.Errorf("public %s answered %d %.200q, want 404", path, res.StatusCode, body)
			}
		}
	})
	t.Run("not on the default mux", func(t *testing.T) {
		// A listener with a nil Handler serves http.DefaultServeMux, where importing
		// net/http/pprof registers the profiles.
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
			if _, pattern := http.DefaultServeMux.Handler(httptestRequest(path)); pattern != "" {
				t.Errorf("http.DefaultServeMux serves %s (pattern %q)", path, pattern)
			}
		}
	})
}

func httptestRequest(path string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, "http://localhost"+path, nil)
	return req
}

// TestProfileCommand is `webauthnd profile` against a running server: each kind writes a new
// file, mode 0600, that parses as what it claims to be, and says how to read it; a file that
// exists is refused unless --force, and left as it was.
func TestProfileCommand(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		check    func(t *testing.T, raw []byte)
		readWith string
	}{
		{name: "cpu for a second", args: []string{"--seconds", "1"}, check: wantProfile("cpu", "nanoseconds"), readWith: "go tool pprof"},
		{name: "heap", args: []string{"--kind", "heap"}, check: wantProfile("inuse_space", "bytes"), readWith: "go tool pprof"},
		{name: "allocs over a second", args: []string{"--kind", "allocs", "--seconds", "1"}, check: wantProfile("alloc_space", "bytes"), readWith: "go tool pprof"},
		{name: "goroutine", args: []string{"--kind", "goroutine"}, check: wantProfile("goroutine", "count"), readWith: "go tool pprof"},
		{name: "threadcreate", args: []string{"--kind", "threadcreate"}, check: wantProfile("threadcreate", "count"), readWith: "go tool pprof"},
		{name: "mutex", args: []string{"--kind", "mutex"}, check: wantProfile("contentions", "count"), readWith: "go tool pprof"},
		{name: "block", args: []string{"--kind", "block"}, check: wantProfile("contentions", "count"), readWith: "go tool pprof"},
		{name: "trace for a second", args: []string{"--kind", "trace", "--seconds", "1"}, readWith: "go tool trace", check: func(t *testing.T, raw []byte) {
			if !bytes.HasPrefix(raw, []byte("go 1.")) {
				t.Errorf("the trace starts %.16q, not with Go's trace header", raw)
			}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("p%d.out", i))
			stdout, stderr, err := runCommand(append([]string{"profile", "--data-dir", s.DataDir, "--out", out}, tc.args...)...)
			if err != nil {
				t.Fatalf("profile: %v\n%s", err, stderr)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", out, st.Mode().Perm())
			}
			if !strings.Contains(stdout, tc.readWith+" ") || !strings.Contains(stdout, out) {
				t.Errorf("stdout %q does not say to read %s with %s", stdout, out, tc.readWith)
			}
			raw, _ := os.ReadFile(out)
			tc.check(t, raw)
			if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
	t.Run("go tool pprof reads a CPU profile", func(t *testing.T) {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			t.Skip("no go command to run pprof with")
		}
		out := filepath.Join(dir, "top.pprof")
		if _, stderr, err := runCommand("profile", "--data-dir", s.DataDir, "--out", out, "--seconds", "1"); err != nil {
			t.Fatalf("profile: %v\n%s", err, stderr)
		}
		top, err := exec.Command(goCmd, "tool", "pprof", "-top", out).CombinedOutput()
		if err != nil || !bytes.Contains(top, []byte("Type: cpu")) {
			t.Errorf("go tool pprof -top %s: %v\n%s", out, err, top)
		}
	})
	t.Run("an existing file is refused unless --force", func(t *testing.T) {
		out := filepath.Join(dir, "exists.pprof")
		if err := os.WriteFile(out, []byte("keep me"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := runCommand("profile", "--data-dir", s.DataDir, "--out", out, "--kind", "heap")
		if err == nil || !strings.Contains(err.Error(), "--force") {
			t.Errorf("profile over an existing file: %v, want a refusal that names --force", err)
		}
		if raw, _ := os.ReadFile(out); string(raw) != "keep me" {
			t.Errorf("the refused profile changed the file: %q", raw)
		}
		if _, stderr, err := runCommand("profile", "--data-dir", s.DataDir, "--out", out, "--kind", "heap", "--force"); err != nil {
			t.Fatalf("profile --force: %v\n%s", err, stderr)
		}
		raw, _ := os.ReadFile(out)
		wantProfile("inuse_space", "bytes")(t, raw)
	})
}

// TestProfileCommandRefuses: bad flags, and no server, are refused before anything is written.
func TestProfileCommandRefuses(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "p.pprof")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{name: "no --out", args: []string{"profile", "--data-dir", dir}, want: "--out is required"},
		{name: "an unknown kind", args: []string{"profile", "--data-dir", dir, "--out", out, "--kind", "cmdline"}, want: "none of"},
		{name: "negative seconds", args: []string{"profile", "--data-dir", dir, "--out", out, "--seconds", "-1"}, want: "negative"},
		{name: "a directory that does not exist", args: []string{"profile", "--data-dir", dir, "--out", filepath.Join(dir, "no", "p.pprof")}, want: "no directory"},
		{name: "no server runs", args: []string{"profile", "--data-dir", dir, "--out", out}, want: "no server answers"},
		{name: "stats with no server", args: []string{"stats", "--data-dir", dir}, want: "no server answers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCommand(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s written: %v", out, err)
			}
		})
	}
}

// TestStatsCommand: `webauthnd stats` shows live ceremonies per community, the heap,
// goroutines and the group commits (writes per commit), and --json what the server answered,
// with the fields the benchmark harness reads still there.
func TestStatsCommand(t *testing.T) {
	s := startServer(t, "")
	for i := range 3 {
		s.register(t, s.License, "default", newPasskey(localRP, fmt.Sprintf("user%d", i)))
	}
	s.signInOptions(t, s.License, "default", "localhost", "")
	s.signInOptions(t, s.License, "default", "localhost", "user0")

	stdout, stderr, err := runCommand("stats", "--data-dir", s.DataDir, "--json")
	if err != nil {
		t.Fatalf("stats --json: %v\n%s", err, stderr)
	}
	var got struct {
		LiveCeremonies  *int           `json:"liveCeremonies"`
		HeapBytes       *uint64        `json:"heapBytes"`
		Goroutines      *int           `json:"goroutines"`
		LiveByCommunity map[string]int `json:"liveByCommunity"`
		Commits         struct {
			Commits, Writes uint64
			MeanBatchSize   float64
			BatchSizes      []struct{ From, To, Batches int }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stats --json printed %q: %v", stdout, err)
	}
	if got.LiveCeremonies == nil || *got.LiveCeremonies != 2 || got.HeapBytes == nil || *got.HeapBytes == 0 || got.Goroutines == nil || *got.Goroutines == 0 {
		t.Errorf("stats --json lacks the harness's fields or counts wrong: %s", stdout)
	}
	if got.LiveByCommunity["default"] != 2 {
		t.Errorf("live ceremonies by community %v, want default: 2", got.LiveByCommunity)
	}
	// Three registrations write at least three times (more at start: keys, the demo's license).
	c := got.Commits
	if c.Writes < 3 || c.Commits == 0 || c.Commits > c.Writes || len(c.BatchSizes) == 0 ||
		c.MeanBatchSize != float64(c.Writes)/float64(c.Commits) {
		t.Errorf("group commits %+v after three registrations", c)
	}

	stdout, stderr, err = runCommand("stats", "--data-dir", s.DataDir)
	if err != nil {
		t.Fatalf("stats: %v\n%s", err, stderr)
	}
	for _, want := range []string{"live ceremonies", "  default", "heap", "MiB", "goroutines", "group commits",
		fmt.Sprintf("%d commits of %d writes", c.Commits, c.Writes), "batches of 1 "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stats printed no %q:\n%s", want, stdout)
		}
	}
	t.Logf("webauthnd stats:\n%s", stdout)
}

// wantProfile checks that raw is a gzip'd pprof protobuf (profile.proto) whose string table
// holds the sample type and unit: parsed field by field, without a pprof library.
func wantProfile(sampleType, unit string) func(t *testing.T, raw []byte) {
	return func(t *testing.T, raw []byte) {
		t.Helper()
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("not gzip: %v (%.32q)", err, raw)
		}
		pb, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		strs, err := profileStrings(pb)
		if err != nil {
			t.Fatalf("not a profile.proto: %v", err)
		}
		has := map[string]bool{}
		for _, s := range strs {
			has[s] = true
		}
		if len(strs) == 0 || strs[0] != "" || !has[sampleType] || !has[unit] {
			t.Errorf("the profile's strings %.20q lack %q and %q", strs, sampleType, unit)
		}
	}
}

// profileStrings walks a profile.proto message and returns its string_table (field 6),
// checking that every field is well formed.
func profileStrings(pb []byte) ([]string, error) {
	var strs []string
	for len(pb) > 0 {
		key, n := binary.Uvarint(pb)
		if n <= 0 {
			return nil, errors.New("bad field key")
		}
		pb = pb[n:]
		switch key & 7 {
		case 0: // varint
			if _, n = binary.Uvarint(pb); n <= 0 {
				return nil, errors.New("bad varint")
			}
			pb = pb[n:]
		case 2: // length-delimited
			l, n := binary.Uvarint(pb)
			if n <= 0 || uint64(len(pb)-n) < l {
				return nil, errors.New("bad length")
			}
			if key>>3 == 6 {
				strs = append(strs, string(pb[n:n+int(l)]))
			}
			pb = pb[n+int(l):]
		default:
			return nil, fmt.Errorf("wire type %d in a profile", key&7)
		}
	}
	return strs, nil
}
