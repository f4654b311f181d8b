package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is a webauthnd binary running on a free loopback port with its own data directory.
type server struct {
	url, licenseFile, dataDir string
	pid                       int
	stop                      func() // SIGTERM, and wait; the test's cleanup calls it too
}

// startServer builds cmd/webauthnd, starts `webauthnd serve` on 127.0.0.1:0 on a fresh data
// directory and waits until /webauthn/healthz answers 200. The server is stopped (SIGTERM) when
// the test ends.
func startServer(t *testing.T, flags ...string) server {
	t.Helper()
	return startServerOn(t, filepath.Join(t.TempDir(), "data"), flags...)
}

// startServerOn is startServer on a given data directory, with more serve flags.
func startServerOn(t *testing.T, dataDir string, flags ...string) server {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to build the server")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "webauthnd")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/webauthnd/webauthnd/cmd/webauthnd").CombinedOutput(); err != nil {
		t.Fatalf("build webauthnd: %v\n%s", err, out)
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "warn"}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("webauthnd did not stop within 15s of SIGTERM")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("server log:\n%s", log)
		}
	})

	// The server prints "webauthnd listening on http://127.0.0.1:PORT" once it listens.
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var url string
	for url == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("webauthnd exited before it listened")
			}
			if rest, found := strings.CutPrefix(line, "webauthnd listening on "); found {
				url = strings.TrimSpace(rest)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("webauthnd did not listen within 15s")
		}
	}
	go func() {
		for range lines { // keep the pipe drained
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := http.Get(url + "/webauthn/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz never answered 200: %v", err)
		}
	}
	return server{url: url, licenseFile: filepath.Join(dataDir, "default-license.key"), dataDir: dataDir, pid: cmd.Process.Pid, stop: stop}
}

// TestHarnessAgainstServer runs every mode and scenario of the harness briefly against a real
// server and checks that each completes ceremonies without a single error.
func TestHarnessAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	srv := startServer(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"steady sign-in by username", []string{"--scenario", "signin", "--users", "4", "--duration", "1500ms"}},
		{"steady discoverable sign-in", []string{"--scenario", "discoverable", "--users", "4", "--duration", "1s"}},
		{"steady registration", []string{"--scenario", "register", "--users", "4", "--duration", "1s"}},
		{"burst of sign-ins", []string{"--burst", "200", "--users", "16"}},
		{"paced sign-ins", []string{"--rate", "200", "--users", "8", "--duration", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, text := runHarness(t, srv, append([]string{"--pid", strconv.Itoa(srv.pid)}, tc.args...)...)
			c := sum.Ceremonies
			requireClean(t, sum, text)
			switch args := strings.Join(tc.args, " "); {
			case strings.Contains(args, "--burst") && c.OK != 200:
				t.Errorf("burst completed %d ceremonies, want 200", c.OK)
			case strings.Contains(args, "--rate") && c.OK > 200:
				t.Errorf("1 s at --rate 200 completed %d ceremonies, want at most 200", c.OK)
			}
			for call, l := range sum.Calls {
				if l.Count == 0 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
					t.Errorf("%s latency %+v is not ordered", call, l)
				}
			}
			if sum.Server == nil || sum.Server.CPUSeconds <= 0 || sum.Floor.TotalMicros <= 0 || sum.Server.FloorMultiple <= 0 {
				t.Errorf("server cost %+v, floor %+v: want both measured", sum.Server, sum.Floor)
			}
		})
	}
}

// runHarness runs the harness against srv with args (after the server's URL and license, a
// JSON summary, a short floor and no progress) and returns the summary and the text report.
func runHarness(t *testing.T, srv server, args ...string) (Summary, string) {
	t.Helper()
	jsonFile := filepath.Join(t.TempDir(), "summary.json")
	args = append([]string{"--url", srv.url, "--license-file", srv.licenseFile,
		"--json", jsonFile, "--floor-iterations", "50", "--progress=false"}, args...)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run %q: %v\n%s", args, err, stderr.String())
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var sum Summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	return sum, stdout.String()
}

// requireClean fails the test unless the run completed ceremonies without a single error.
func requireClean(t *testing.T, sum Summary, text string) {
	t.Helper()
	if c := sum.Ceremonies; c.OK == 0 || c.Failed != 0 || c.Refused != 0 || len(sum.Errors.ByStatus) != 0 {
		t.Errorf("ceremonies %+v, errors %+v; want successes and no error\n%s", c, sum.Errors, text)
	}
}

// TestEncryptedRoutesAgainstServer drives ceremonies through the sealed routes, on both
// envelope curves, and wants no error at all.
func TestEncryptedRoutesAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	for _, curve := range []string{"secp256k1", "P-256"} {
		t.Run(curve, func(t *testing.T) {
			srv := startServer(t, "--ec-curve", curve)
			for _, tc := range []struct {
				name string
				args []string
			}{
				{"steady sign-in", []string{"--scenario", "signin", "--users", "8", "--duration", "1500ms"}},
				{"discoverable burst", []string{"--scenario", "discoverable", "--users", "8", "--burst", "100"}},
				{"registration", []string{"--scenario", "register", "--users", "4", "--count", "40", "--duration", "5s"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					sum, text := runHarness(t, srv, append([]string{"--routes", "encrypted"}, tc.args...)...)
					requireClean(t, sum, text)
					if sum.Routes != routesEncrypted {
						t.Errorf("summary routes %q, want %q", sum.Routes, routesEncrypted)
					}
				})
			}
		})
	}
}

// TestBurstAftermathAgainstServer checks a burst's aftermath on a server whose ceremonies time
// out after 1 s: after settling, no ceremony is left, and both readings are real.
func TestBurstAftermathAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	srv := startServer(t, "--ceremony-timeout", "1s")
	socket := filepath.Join(srv.dataDir, "admin.sock")
	if _, err := newAdminClient(socket).stats(context.Background(), true); errors.As(err, new(errNoStats)) {
		t.Skipf("this webauthnd has no GET /admin/stats on its admin socket yet: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	sum, text := runHarness(t, srv, "--burst", "300", "--users", "32", "--pid", strconv.Itoa(srv.pid),
		"--admin-socket", socket, "--settle", "2s")
	requireClean(t, sum, text)
	a := sum.Aftermath
	switch {
	case a == nil:
		t.Fatalf("no aftermath in the summary\n%s", text)
	case a.LiveCeremoniesAfter != 0:
		t.Errorf("%d live ceremonies 2 s after the burst, on a 1 s ceremony timeout", a.LiveCeremoniesAfter)
	case a.HeapBeforeBytes == 0 || a.HeapAfterBytes == 0 || a.GoroutinesAfter == 0 || a.RSSAfterMiB == 0:
		t.Errorf("aftermath %+v: want every reading taken", *a)
	case !strings.Contains(text, "aftermath") || !strings.Contains(text, a.Verdict):
		t.Errorf("the text report lacks the aftermath:\n%s", text)
	}
}

// TestSeededStoreAgainstServer seeds a store on a stopped server, restarts it, and signs in as
// the seeded users, twice (the second run must start above the counters the first left).
func TestSeededStoreAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	const users = 2000
	srv := startServer(t)
	srv.stop()
	var stdout, stderr bytes.Buffer
	seedArgs := []string{"seed", "--data-dir", srv.dataDir, "--users", strconv.Itoa(users), "--seed", "test-seed", "--batch", "700"}
	if err := run(context.Background(), seedArgs, &stdout, &stderr); err != nil {
		t.Fatalf("seed: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "seeded 2000 users") {
		t.Errorf("seed printed %q", stdout.String())
	}
	if err := run(context.Background(), seedArgs, io.Discard, io.Discard); err == nil {
		t.Error("seeding the same users again succeeded; want a refusal of the existing credentials")
	}

	srv = startServerOn(t, srv.dataDir)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"sign-in by username", []string{"--scenario", "signin", "--users", "8", "--duration", "1s"}},
		{"discoverable sign-in, again", []string{"--scenario", "discoverable", "--users", "8", "--duration", "1s"}},
		{"sealed sign-in, again", []string{"--scenario", "signin", "--routes", "encrypted", "--users", "8", "--duration", "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, text := runHarness(t, srv, append([]string{"--seeded", strconv.Itoa(users), "--seed", "test-seed"}, tc.args...)...)
			requireClean(t, sum, text)
			if sum.Seeded != users {
				t.Errorf("summary seeded_users %d, want %d", sum.Seeded, users)
			}
		})
	}
	t.Run("a wrong seed", func(t *testing.T) {
		var stderr bytes.Buffer
		jsonFile := filepath.Join(t.TempDir(), "summary.json")
		args := []string{"--url", srv.url, "--license-file", srv.licenseFile, "--json", jsonFile, "--floor-iterations", "10",
			"--progress=false", "--seeded", strconv.Itoa(users), "--seed", "another-seed", "--users", "2", "--count", "4"}
		if err := run(context.Background(), args, io.Discard, &stderr); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(jsonFile)
		var sum Summary
		if err := json.Unmarshal(b, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Ceremonies.OK != 0 || sum.Ceremonies.Failed == 0 {
			t.Errorf("signing in with keys of another seed: %+v, want only failures", sum.Ceremonies)
		}
	})
}
