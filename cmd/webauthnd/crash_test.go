package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
)

// built is the binary that buildBinary builds once per test binary: linking it takes seconds
// (ten on a busy 2-core machine), and every test that runs processes uses the same one.
var built struct {
	once sync.Once
	dir  string // removed by TestMain
	bin  string
	err  error
}

// buildBinary builds webauthnd into a temporary directory, as an operator would run it, once
// for all the tests of this package, and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if built.dir, built.err = os.MkdirTemp("", "webauthnd-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "webauthnd")
		if out, err := exec.Command(goTool, "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// proc is the built binary running `webauthnd serve` as a subprocess.
type proc struct {
	cmd            *exec.Cmd
	URL, License   string
	DataDir        string
	stdout, stderr *lineBuffer
	done           chan error    // the result of Wait
	exited         chan struct{} // closed when Wait has returned
	startup        time.Duration
}

// startProc runs `serve` on 127.0.0.1:0 with dataDir and extra flags and waits until it listens.
func startProc(t *testing.T, bin, dataDir string, args ...string) *proc {
	t.Helper()
	p, err := launchProc(t, bin, dataDir, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "default-license.key"))
	if err != nil {
		t.Fatal(err)
	}
	p.License = strings.TrimSpace(string(key))
	return p
}

// launchProc runs `serve` on 127.0.0.1:0 with dataDir, extra flags and extra environment
// variables (NAME=value, on top of this process's environment), and waits until it listens. It
// returns an error rather than failing t, so that nodes can start from goroutines; the process
// is killed when t ends, if it still runs.
func launchProc(t *testing.T, bin, dataDir string, env []string, args ...string) (*proc, error) {
	p := &proc{DataDir: dataDir, stdout: newLineBuffer(), stderr: newLineBuffer(), done: make(chan error, 1), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.done <- p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	line, err := p.stdout.waitFor("webauthnd listening on ", 20*time.Second, p.done)
	if err != nil {
		return nil, fmt.Errorf("webauthnd did not start: %v\nstderr:\n%s", err, p.stderr.String())
	}
	p.startup = time.Since(start)
	p.URL = strings.TrimSpace(strings.TrimPrefix(line, "webauthnd listening on "))
	return p, nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// server lets the ceremony helpers of ceremony_test.go drive the subprocess.
func (p *proc) server() *testServer {
	return &testServer{URL: p.URL, License: p.License, DataDir: p.DataDir, client: &http.Client{Timeout: 30 * time.Second}}
}

// replayedWAL reports whether Badger replayed its write-ahead log when it opened (it logs the
// first replayed key at debug level): a store that was closed cleanly has nothing to replay.
func (p *proc) replayedWAL() bool { return strings.Contains(p.stderr.String(), "badger: First key=") }

// errTransport marks a request that got no HTTP answer at all (the server was gone).
var errTransport = errors.New("no answer")

// post sends a JSON request and returns the status and the decoded body. Unlike
// testServer.call it reports a missing answer instead of failing the test, so that it can be
// used from goroutines and against a server that is killed.
func post(c *http.Client, url, key string, body any) (int, map[string]any, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("licensekey", key)
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %v", errTransport, err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, fmt.Errorf("%w: %v", errTransport, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		return res.StatusCode, nil, fmt.Errorf("answer %d is not JSON: %q", res.StatusCode, out)
	}
	return res.StatusCode, m, nil
}

// credentialBody merges a credential's JSON with dns and communityId, as ceremonyBody does.
func credentialBody(credentialJSON, rpID, community string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(credentialJSON), &m); err != nil {
		panic(err)
	}
	m["dns"], m["communityId"] = rpID, community
	return m
}

// tryRegister runs a whole registration of p. It returns nil only when the result answered
// 200, which is the acknowledgement; then p holds its credential.
func tryRegister(c *http.Client, base, key, community string, p *passkey) error {
	step, status, body, err := registerSteps(c, base, key, community, p)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%s: %d %v", step, status, body)
	}
	return err
}

// registerSteps runs a whole registration of p and returns the last step it ran
// (attestation/options, or attestation/result when the options answered 200) with that step's
// answer; a 200 of the result is the acknowledgement, and then p holds its credential.
func registerSteps(c *http.Client, base, key, community string, p *passkey) (step string, status int, body map[string]any, err error) {
	return registerStepsVia(c, base, base, key, community, p)
}

// registerStepsVia is registerSteps with the options asked of optionsBase and the result sent
// to resultBase (two nodes of a cluster).
func registerStepsVia(c *http.Client, optionsBase, resultBase, key, community string, p *passkey) (step string, status int, body map[string]any, err error) {
	step = "attestation/options"
	status, body, err = post(c, optionsBase+"/webauthn/u1/attestation/options", key,
		map[string]any{"dns": p.rp.ID, "username": p.username, "displayName": p.username, "communityId": community})
	if err != nil || status != http.StatusOK {
		return step, status, body, err
	}
	raw, _ := json.Marshal(body["data"])
	opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
	if err != nil {
		return step, status, body, err
	}
	step = "attestation/result"
	status, body, err = post(c, resultBase+"/webauthn/u1/attestation/result", key,
		credentialBody(virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), p.rp.ID, community))
	if err == nil && status == http.StatusOK {
		p.auth.Options.UserHandle = []byte(opts.UserID)
		p.auth.AddCredential(p.cred)
	}
	return step, status, body, err
}

// trySignIn runs a whole sign-in by username with the passkey's next counter; nil means 200.
// With counter set, it signs that counter instead (a hand-made assertion).
func trySignIn(c *http.Client, base, key, community string, p *passkey, counter *uint32) (map[string]any, error) {
	return trySignInVia(c, base, base, key, community, p, counter)
}

// trySignInVia is trySignIn with the options asked of optionsBase and the result sent to
// resultBase (two nodes of a cluster).
func trySignInVia(c *http.Client, optionsBase, resultBase, key, community string, p *passkey, counter *uint32) (map[string]any, error) {
	step, status, body, err := signInSteps(c, optionsBase, resultBase, key, community, p, counter)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%s: %d %v", step, status, body)
	}
	return body, err
}

// signInSteps runs a whole sign-in by username, the options asked of optionsBase and the
// result sent to resultBase, and returns the last step it ran with that step's answer, as
// registerSteps does. The assertion carries the passkey's next counter, or counter when set
// (a hand-made assertion, which leaves the passkey's own counter alone).
func signInSteps(c *http.Client, optionsBase, resultBase, key, community string, p *passkey, counter *uint32) (step string, status int, body map[string]any, err error) {
	step = "assertion/options"
	status, body, err = post(c, optionsBase+"/webauthn/u1/assertion/options", key,
		map[string]any{"dns": p.rp.ID, "username": p.username, "communityId": community})
	if err != nil || status != http.StatusOK {
		return step, status, body, err
	}
	raw, _ := json.Marshal(body)
	opts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
	if err != nil {
		return step, status, body, err
	}
	var cred string
	if counter != nil {
		cred = assertion(p, opts, nil, flagUP|flagUV, *counter)
	} else {
		p.cred.Counter++
		cred = virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts)
	}
	step = "assertion/result"
	status, body, err = post(c, resultBase+"/webauthn/u1/assertion/result", key, credentialBody(cred, p.rp.ID, community))
	return step, status, body, err
}

// crashRound is what one round of load saw before its kill.
type crashRound struct {
	delay                   time.Duration
	signedIn                int
	acked                   []*passkey // registrations acknowledged (200)
	attempted               []*passkey // every registration tried (acknowledged or not)
	failures                []string   // answers other than 200 while the server lived
	lastAck                 time.Duration
	replayedAfterKill       bool
	verifiedAfterRestart    int
	regressionsAfterRestart int
}

// TestKill9KeepsAcknowledgedWrites is guarantee 1: the built binary, registrations (and, from
// the second round, sign-ins) at concurrency 16, SIGKILL after a random delay, restart on the
// same data dir. Every acknowledged registration signs in; every acknowledged sign-in's
// counter is still stored (replaying that counter is refused as a regression); every user
// that the load touched, acknowledged or not, reads back whole (assertion/options by username
// answers 200, so no index entry points at nothing).
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it repeatedly")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	const (
		rounds      = 4
		concurrency = 16
	)
	var (
		acked   []*passkey              // every acknowledged registration so far
		counter = map[*passkey]uint32{} // the counter of each passkey's last acknowledged sign-in
		touched []*passkey              // every registration tried
		report  []crashRound
	)
	start := time.Now()
	for round := range rounds + 1 {
		p := startProc(t, bin, dir, "--log-level", "debug")
		s := p.server()
		if round > 0 {
			r := &report[round-1]
			r.replayedAfterKill = p.replayedWAL()
			if !r.replayedAfterKill {
				t.Errorf("round %d: the start after SIGKILL replayed no write-ahead log; the kill hit no unflushed write, so the round proves nothing", round-1)
			}
			r.verifiedAfterRestart, r.regressionsAfterRestart = verifyAfterCrash(t, s, acked, counter, touched)
		}
		if round == rounds {
			p.kill(t)
			break
		}
		// Round i kills within its own slice of 150-900 ms, so the rounds cover the range.
		slice := 750 * time.Millisecond / rounds
		delay := 150*time.Millisecond + time.Duration(round)*slice + rand.N(slice)
		r := crashLoad(t, p, s, round, concurrency, delay, acked, counter)
		for _, f := range r.failures {
			t.Errorf("round %d: while the server lived: %s", round, f)
		}
		touched = append(touched, r.attempted...)
		acked = append(acked, r.acked...)
		report = append(report, r)
	}
	total := 0
	for i, r := range report {
		total += len(r.acked)
		t.Logf("round %d: SIGKILL after %s (last acknowledgement %s in): %d registrations and %d sign-ins acknowledged; "+
			"after restart: WAL replayed %v, %d passkeys signed in, %d acknowledged counters refused on replay",
			i, r.delay.Round(time.Millisecond), r.lastAck.Round(time.Millisecond), len(r.acked), r.signedIn,
			r.replayedAfterKill, r.verifiedAfterRestart, r.regressionsAfterRestart)
	}
	t.Logf("%d rounds, %d acknowledged registrations checked after their crash; %s in all", rounds, total, time.Since(start).Round(time.Millisecond))
}

// crashLoad runs registrations (and sign-ins of earlier passkeys, by a quarter of the workers)
// against p until it is killed after delay.
func crashLoad(t *testing.T, p *proc, s *testServer, round, concurrency int, delay time.Duration, earlier []*passkey, counter map[*passkey]uint32) crashRound {
	t.Helper()
	r := crashRound{delay: delay}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		started = time.Now()
	)
	client := &http.Client{Timeout: 30 * time.Second}
	signers := 0
	if len(earlier) > 0 {
		signers = concurrency / 4
	}
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w < signers {
				// Each signer owns its own passkeys, so that each counter rises in order.
				var own []*passkey
				for j := w; j < len(earlier); j += signers {
					own = append(own, earlier[j])
				}
				for i := 0; len(own) > 0; i++ {
					pk := own[i%len(own)]
					_, err := trySignIn(client, s.URL, s.License, "default", pk, nil)
					mu.Lock()
					switch {
					case errors.Is(err, errTransport):
						mu.Unlock()
						return
					case err != nil:
						r.failures = append(r.failures, err.Error())
					default:
						counter[pk] = pk.cred.Counter
						r.signedIn++
						r.lastAck = time.Since(started)
					}
					mu.Unlock()
				}
				return
			}
			for i := 0; ; i++ {
				pk := newPasskey(localRP, fmt.Sprintf("crash-r%d-w%d-%d", round, w, i))
				mu.Lock()
				r.attempted = append(r.attempted, pk)
				mu.Unlock()
				err := tryRegister(client, s.URL, s.License, "default", pk)
				mu.Lock()
				switch {
				case errors.Is(err, errTransport):
					mu.Unlock()
					return
				case err != nil:
					r.failures = append(r.failures, err.Error())
				default:
					r.acked = append(r.acked, pk)
					r.lastAck = time.Since(started)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(delay)
	p.kill(t)
	wg.Wait()
	return r
}

// verifyAfterCrash checks a restarted server against what was acknowledged before the kill.
func verifyAfterCrash(t *testing.T, s *testServer, acked []*passkey, counter map[*passkey]uint32, touched []*passkey) (signedIn, regressions int) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		work = make(chan *passkey)
	)
	// A replayed counter is a failed sign-in, which the license's rate limit counts: check a
	// sample of the acknowledged counters (the latest first), well under its burst.
	const counterChecks = 64
	check := map[*passkey]bool{}
	for i := len(acked) - 1; i >= 0 && len(check) < counterChecks; i-- {
		if _, ok := counter[acked[i]]; ok {
			check[acked[i]] = true
		}
	}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pk := range work {
				mu.Lock()
				c, ok := counter[pk]
				mu.Unlock()
				if ok && check[pk] {
					// The last acknowledged counter is stored: signing it again is a regression.
					body, err := trySignIn(client, s.URL, s.License, "default", pk, &c)
					mu.Lock()
					if err == nil || body["code"] != "counter_regression" {
						t.Errorf("%s: its acknowledged counter %d was lost: replaying it answered %v %v", pk.username, c, err, body)
					} else {
						regressions++
					}
					mu.Unlock()
				}
				_, err := trySignIn(client, s.URL, s.License, "default", pk, nil)
				mu.Lock()
				if err != nil {
					t.Errorf("%s: acknowledged before the kill, cannot sign in after the restart: %v", pk.username, err)
				} else {
					signedIn++
					if ok {
						counter[pk] = pk.cred.Counter // acknowledged too: the next round checks it
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, pk := range acked {
		work <- pk
	}
	close(work)
	wg.Wait()
	// Whatever the kill interrupted, each user reads back whole.
	for _, pk := range touched {
		status, body, err := post(client, s.URL+"/webauthn/u1/assertion/options", s.License,
			map[string]any{"dns": "localhost", "username": pk.username, "communityId": "default"})
		if err != nil || status != http.StatusOK {
			t.Errorf("%s: assertion/options after the restart: %d %v %v", pk.username, status, body, err)
		}
	}
	return signedIn, regressions
}
