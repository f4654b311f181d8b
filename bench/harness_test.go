package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// server is a webauthnd binary running on a free loopback port with its own data directory.
type server struct {
	url, licenseFile string
	pid              int
}

// startServer builds cmd/webauthnd, starts `webauthnd serve` on 127.0.0.1:0 and waits until
// /webauthn/healthz answers 200. The server is stopped (SIGTERM) when the test ends.
func startServer(t *testing.T) server {
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
	dataDir := filepath.Join(dir, "data")
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "warn")
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("webauthnd did not stop within 15s of SIGTERM")
		}
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
	return server{url: url, licenseFile: filepath.Join(dataDir, "default-license.key"), pid: cmd.Process.Pid}
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
			jsonFile := filepath.Join(t.TempDir(), "summary.json")
			args := append([]string{"--url", srv.url, "--license-file", srv.licenseFile, "--pid", strconv.Itoa(srv.pid),
				"--json", jsonFile, "--floor-iterations", "50", "--progress=false"}, tc.args...)
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := run(ctx, args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			b, err := os.ReadFile(jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			var sum Summary
			if err := json.Unmarshal(b, &sum); err != nil {
				t.Fatalf("summary %s: %v", b, err)
			}
			c := sum.Ceremonies
			if c.OK == 0 || c.Failed != 0 || c.Refused != 0 || len(sum.Errors.ByStatus) != 0 {
				t.Errorf("ceremonies %+v, errors %+v; want successes and no error\n%s", c, sum.Errors, stdout.String())
			}
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
