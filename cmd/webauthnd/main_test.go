package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is webauthnd started through run, as main starts it, on a free port.
type testServer struct {
	URL     string // base URL, e.g. http://127.0.0.1:40123
	License string // the default community's license key
	DataDir string
	client  *http.Client // trusts the server's certificate when it serves HTTPS
	stdout  *lineBuffer
	stderr  *lineBuffer
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	args    []string // the flags it was started with
}

// startServer runs `webauthnd serve` on 127.0.0.1:0 with dataDir (a new temporary directory
// when empty) and extra flags, and waits until /healthz answers 200.
func startServer(t *testing.T, dataDir string, args ...string) *testServer {
	t.Helper()
	s := launchServer(t, dataDir, args...)
	s.waitHealthy(t)
	return s
}

// waitHealthy waits until the server's /healthz answers 200.
func (s *testServer) waitHealthy(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		res, err := s.client.Get(s.URL + "/webauthn/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz never answered 200: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launchServer is startServer without waiting for /healthz: it returns once the server
// listens, healthy or not.
func launchServer(t *testing.T, dataDir string, args ...string) *testServer {
	t.Helper()
	s := launchNode(t, dataDir, nil, args...)
	key, err := os.ReadFile(filepath.Join(s.DataDir, "default-license.key"))
	if err != nil {
		t.Fatalf("read default license: %v", err)
	}
	s.License = strings.TrimSpace(string(key))
	return s
}

// launchNode is launchServer with an environment (nil: none), and without reading the default
// license key, which a node over a shared database finds only if it created the default.
func launchNode(t *testing.T, dataDir string, env map[string]string, args ...string) *testServer {
	t.Helper()
	s := spawnNode(t, dataDir, env, args...)
	s.awaitListening(t)
	return s
}

// spawnNode starts `webauthnd serve` as launchNode does and returns at once, so that several
// can start together; awaitListening waits for each.
func spawnNode(t *testing.T, dataDir string, env map[string]string, args ...string) *testServer {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{DataDir: dataDir, stdout: newLineBuffer(), stderr: newLineBuffer(), cancel: cancel, done: make(chan error, 1),
		args: args}
	argv := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)
	go func() { s.done <- run(ctx, argv, func(k string) string { return env[k] }, s.stdout, s.stderr) }()
	return s
}

// awaitListening waits until a spawned server listens, and stops it when the test ends.
func (s *testServer) awaitListening(t *testing.T) {
	t.Helper()
	line, err := s.stdout.waitFor("webauthnd listening on ", 10*time.Second, s.done)
	if err != nil {
		s.cancel()
		t.Fatalf("server did not start: %v\nstderr:\n%s", err, s.stderr.String())
	}
	args := s.args
	s.URL = strings.TrimSpace(strings.TrimPrefix(line, "webauthnd listening on "))
	s.client = http.DefaultClient
	if strings.HasPrefix(s.URL, "https://") {
		s.client = clientTrusting(t, flagValue(args, "--tls-cert"))
	}
	t.Cleanup(func() { s.stop(t) })
}

// stop shuts the server down as SIGTERM would and checks that run returned cleanly.
func (s *testServer) stop(t *testing.T) {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
	})
}

// flagValue returns the value after name in args.
func flagValue(args []string, name string) string {
	for i := range len(args) - 1 {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// clientTrusting is an HTTPS client that trusts only the certificate in certFile.
func clientTrusting(t *testing.T, certFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", certFile)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// call sends a JSON request (to path on the server, or to an absolute URL) and returns the status, the decoded JSON object and the headers.
func (s *testServer) call(t *testing.T, method, path string, headers map[string]string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	status, raw, header := s.callRaw(t, method, path, headers, body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s answered %d with non-JSON %q", method, path, status, raw)
		}
	}
	return status, out, header
}

// callRaw is call for answers that are not JSON objects: it returns the body as it came, after
// checking the answer against the OpenAPI document.
func (s *testServer) callRaw(t *testing.T, method, path string, headers map[string]string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	url := path
	if strings.HasPrefix(path, "/") {
		url = s.URL + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkOpenAPI(t, req, res, raw)
	return res.StatusCode, raw, res.Header
}

// lineBuffer collects what the server writes, line by line.
type lineBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLineBuffer() *lineBuffer { return &lineBuffer{lines: make(chan string, 1024)} }

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		select {
		case l.lines <- sc.Text():
		default:
		}
	}
	return len(p), nil
}

func (l *lineBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lineBuffer) waitFor(prefix string, timeout time.Duration, done <-chan error) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case line := <-l.lines:
			if strings.HasPrefix(line, prefix) {
				return line, nil
			}
		case err := <-done:
			return "", err
		case <-deadline:
			return "", context.DeadlineExceeded
		}
	}
}
