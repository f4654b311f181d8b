package main

// The multi-node guarantees of issue 19 (docs/reliability.md, section 13), each shown with real
// processes: the built binary running `serve` on 127.0.0.1:0, N of them over one fresh
// PostgreSQL database per test, driven by the software authenticator over HTTP. Without a
// reachable PostgreSQL these tests skip, or fail under WEBAUTHND_REQUIRE_POSTGRES=1 (as CI
// sets it): see persistence/postgres/pgtest.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/webauthnd/webauthnd/persistence/postgres"
	"github.com/webauthnd/webauthnd/persistence/postgres/pgtest"
)

// clusterArgs are the flags of every node in these tests:
//   - --failed-signins-per-minute 0: the failure limiter is per node and has tests of its own;
//     these tests refuse sign-ins on purpose (replayed counters, the loser of a race) more
//     often than its burst allows, and must see the refusal itself, not a 429;
//   - --store-max-conns 6: the nodes share the machine's PostgreSQL with the other packages'
//     tests, which run at the same time.
var clusterArgs = []string{"--failed-signins-per-minute", "0", "--store-max-conns", "6"}

// cluster is N webauthnd processes over one PostgreSQL database.
type cluster struct {
	t     *testing.T
	bin   string
	store string // the database's URL: given to every process in WEBAUTHND_STORE, never in argv
	args  []string
	nodes []*proc
	// License is the default community's license key, from the data directory of the node
	// that created the embedded default.
	License string
}

// startCluster creates a fresh database and starts n nodes on it at once (each with a data
// directory of its own), with clusterArgs and args. Exactly one of them must create the
// embedded default and hold its license key.
func startCluster(t *testing.T, n int, args ...string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs several nodes over PostgreSQL")
	}
	c := &cluster{t: t, store: pgtest.NewDatabase(t), args: append(slices.Clone(clusterArgs), args...)}
	c.bin = buildBinary(t)
	c.nodes = make([]*proc, n)
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.nodes[i], errs[i] = c.launch(dirs[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("start %d nodes: %v", n, err)
	}
	var holders []int
	for i, dir := range dirs {
		key, err := os.ReadFile(filepath.Join(dir, "default-license.key"))
		if err == nil {
			holders = append(holders, i)
			c.License = strings.TrimSpace(string(key))
		}
	}
	if len(holders) != 1 {
		t.Fatalf("%d nodes started at once on an empty database: nodes %v wrote a default license key, want exactly one", n, holders)
	}
	for _, p := range c.nodes {
		p.License = c.License
	}
	return c
}

// launch starts a node on dataDir.
func (c *cluster) launch(dataDir string) (*proc, error) {
	p, err := launchProc(c.t, c.bin, dataDir, []string{"WEBAUTHND_STORE=" + c.store}, c.args...)
	if p != nil {
		p.License = c.License
	}
	return p, err
}

// restart starts node i again on its data directory (after it stopped or was killed).
func (c *cluster) restart(i int) *proc {
	c.t.Helper()
	p, err := c.launch(c.nodes[i].DataDir)
	if err != nil {
		c.t.Fatalf("restart node %d: %v", i, err)
	}
	c.nodes[i] = p
	return p
}

// cli runs a management command of the built binary with the store in WEBAUTHND_STORE, as an
// operator would on any machine that reaches the database, and returns its stdout and stderr.
func (c *cluster) cli(args ...string) (stdout, stderr string, err error) {
	return c.command(append(withoutStore(os.Environ()), "WEBAUTHND_STORE="+c.store), args...)
}

// viaNode runs a management command without the store, through the admin socket of the node
// whose data directory is dataDir, as an operator on that node's machine would.
func (c *cluster) viaNode(dataDir string, args ...string) (stdout, stderr string, err error) {
	return c.command(withoutStore(os.Environ()), append(args, "--data-dir", dataDir)...)
}

// withoutStore is env without WEBAUTHND_STORE, which would otherwise come from the caller's.
func withoutStore(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "WEBAUTHND_STORE=") })
}

// command runs the built binary with env and args and returns its stdout and stderr.
func (c *cluster) command(env []string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// openStore opens the cluster's database as a node does, for reading back what the nodes
// stored.
func (c *cluster) openStore() *postgres.Store {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, c.store, postgres.WithMaxConns(2))
	if err != nil {
		c.t.Fatalf("open the cluster's store: %v", err)
	}
	c.t.Cleanup(func() { _ = s.Close() })
	return s
}

// term sends SIGTERM and waits for the process to exit, at most timeout; it returns the
// process's exit error (nil: it exited 0).
func (p *proc) term(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("still running %s after SIGTERM", timeout)
	}
}

// waitHealthy waits until the node's /healthz answers 200.
func (p *proc) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := http.Get(p.URL + "/webauthn/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("healthz answered %d", res.StatusCode)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterClient is an HTTP client for loads over a few nodes: the default transport keeps two
// idle connections per host, and the loads run more workers than that.
func clusterClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// errorCode is the code of an error answer, or "".
func errorCode(body map[string]any) string {
	code, _ := body["code"].(string)
	return code
}

// Guarantee 1: a ceremony's options and its result may reach different nodes: for
// registration, sign-in by username and discoverable sign-in, on the u1 routes and on the
// sealed ones; a token signed by one node verifies with another's published keys.
func TestClusterCeremonyCrossesNodes(t *testing.T) {
	c := startCluster(t, 2)
	a, b := c.nodes[0].server(), c.nodes[1].server()
	key := c.License
	alice := newPasskey(localRP, "alice")

	t.Run("registration: options on A, result on B", func(t *testing.T) {
		opts, _ := a.registrationOptions(t, key, "default", alice)
		status, body, _ := b.call(t, "POST", "/webauthn/u1/attestation/result", lic(key),
			ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(alice.rp, alice.auth, alice.cred, *opts), "localhost", "default"))
		if status != 200 || body["data"].(map[string]any)["sub"] != "alice" {
			t.Fatalf("attestation/result on B: %d %v", status, body)
		}
		alice.auth.Options.UserHandle = []byte(opts.UserID)
		alice.auth.AddCredential(alice.cred)
	})
	for _, tc := range []struct {
		name       string
		from, to   *testServer
		byUsername bool
	}{
		{"sign-in by username: options on B, result on A", b, a, true},
		{"discoverable sign-in: options on A, result on B", a, b, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			username := ""
			if tc.byUsername {
				username = alice.username
			}
			opts, _ := tc.from.signInOptions(t, key, "default", "localhost", username)
			alice.cred.Counter++
			status, body, _ := tc.to.call(t, "POST", "/webauthn/u1/assertion/result", lic(key),
				ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(alice.rp, alice.auth, alice.cred, *opts), "localhost", "default"))
			if status != 200 || body["data"].(map[string]any)["sub"] != "alice" {
				t.Fatalf("assertion/result: %d %v", status, body)
			}
			// The node that signed the token is the one that finished the ceremony; the
			// other's published keys verify it.
			tc.from.verifyToken(t, body["signature_token"].(string))
		})
	}
	t.Run("sealed routes: options on A, result on B", func(t *testing.T) {
		sc := newSealedClient(t, a) // sealed to A's envelope key, which every node shares
		bob := newPasskey(localRP, "sealed-bob")
		status, res := sc.do(t, a, "/webauthn/attestation/options", key,
			map[string]any{"dns": "localhost", "username": bob.username, "displayName": "Bob", "communityId": "default"})
		if status != 200 {
			t.Fatalf("sealed attestation/options on A: %d %v", status, res)
		}
		raw, _ := json.Marshal(res["data"])
		aopts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		status, res = sc.do(t, b, "/webauthn/attestation/result", key,
			ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(bob.rp, bob.auth, bob.cred, *aopts), "localhost", "default"))
		if status != 200 || res["data"].(map[string]any)["sub"] != bob.username {
			t.Fatalf("sealed attestation/result on B: %d %v", status, res)
		}
		bob.auth.Options.UserHandle = []byte(aopts.UserID)
		bob.auth.AddCredential(bob.cred)

		status, res = sc.do(t, b, "/webauthn/assertion/options", key, map[string]any{"dns": "localhost", "username": bob.username, "communityId": "default"})
		if status != 200 {
			t.Fatalf("sealed assertion/options on B: %d %v", status, res)
		}
		raw, _ = json.Marshal(res)
		sopts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		bob.cred.Counter++
		status, res = sc.do(t, a, "/webauthn/assertion/result", key,
			ceremonyBody(t, virtualwebauthn.CreateAssertionResponse(bob.rp, bob.auth, bob.cred, *sopts), "localhost", "default"))
		if status != 200 || res["data"].(map[string]any)["sub"] != bob.username {
			t.Fatalf("sealed assertion/result on A: %d %v", status, res)
		}
		b.verifyToken(t, res["signature_token"].(string))
	})
	t.Run("a sealed request replayed to the other node is refused", func(t *testing.T) {
		sc := newSealedClient(t, b)
		headers := sc.headers(t, key)
		body := sc.body(t, map[string]any{"dns": "localhost", "communityId": "default"})
		if status, res, _ := b.call(t, "POST", "/webauthn/assertion/options", headers, body); status != 200 {
			t.Fatalf("sealed assertion/options on B: %d %v", status, res)
		}
		if status, res, _ := a.call(t, "POST", "/webauthn/assertion/options", headers, body); status != 401 || res["code"] != "request_replayed" {
			t.Fatalf("the same sealed request replayed to A: %d %v, want 401 request_replayed", status, res)
		}
	})
}

// Guarantee 2: the same result sent to two nodes at once succeeds exactly once; the other copy
// is refused as ceremony_not_found. Twenty rounds, registrations then sign-ins, the options
// from each node in turn, so that the node holding the ceremony's actor races the one without.
func TestClusterSameResultOnTwoNodesSucceedsOnce(t *testing.T) {
	c := startCluster(t, 2)
	client := clusterClient()
	key := c.License
	const rounds = 20
	var (
		wins     [2]int // successes per node
		byIssuer int    // rounds won by the node that issued the options (and holds the actor)
		signers  []*passkey
	)
	for round := range rounds {
		issuer := c.nodes[round%2]
		var path string
		var body map[string]any
		var p *passkey
		var handle string
		if round < rounds/2 {
			p = newPasskey(localRP, fmt.Sprintf("twice-%d", round))
			status, res, err := post(client, issuer.URL+"/webauthn/u1/attestation/options", key,
				map[string]any{"dns": "localhost", "username": p.username, "displayName": p.username, "communityId": "default"})
			if err != nil || status != 200 {
				t.Fatalf("round %d: attestation/options: %d %v %v", round, status, res, err)
			}
			raw, _ := json.Marshal(res["data"])
			opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			handle = opts.UserID
			path = "/webauthn/u1/attestation/result"
			body = credentialBody(virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
		} else {
			p = signers[round%len(signers)]
			status, res, err := post(client, issuer.URL+"/webauthn/u1/assertion/options", key,
				map[string]any{"dns": "localhost", "username": p.username, "communityId": "default"})
			if err != nil || status != 200 {
				t.Fatalf("round %d: assertion/options: %d %v %v", round, status, res, err)
			}
			raw, _ := json.Marshal(res)
			opts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			p.cred.Counter++
			path = "/webauthn/u1/assertion/result"
			body = credentialBody(virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")
		}
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			statuses [2]int
			answers  [2]map[string]any
			errs     [2]error
		)
		for i, n := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[i], answers[i], errs[i] = post(client, n.URL+path, key, body)
			}()
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		winner := -1
		for i := range statuses {
			switch {
			case statuses[i] == 200 && winner == -1:
				winner = i
			case statuses[i] == 400 && errorCode(answers[i]) == "ceremony_not_found":
			default:
				t.Fatalf("round %d (%s, options from node %d): node A answered %d %v, node B %d %v; want one 200 and one 400 ceremony_not_found",
					round, path, round%2, statuses[0], answers[0], statuses[1], answers[1])
			}
		}
		if winner == -1 {
			t.Fatalf("round %d (%s): neither copy succeeded: %v, %v", round, path, answers[0], answers[1])
		}
		wins[winner]++
		if winner == round%2 {
			byIssuer++
		}
		if handle != "" {
			p.auth.Options.UserHandle = []byte(handle)
			p.auth.AddCredential(p.cred)
			signers = append(signers, p)
		}
	}
	t.Logf("%d rounds, each exactly one success: node A won %d, node B %d; the node that issued the options won %d, the other %d",
		rounds, wins[0], wins[1], byIssuer, rounds-byIssuer)
}

// Guarantee 3: 50 concurrent sign-ins of one passkey, their options from the three nodes in
// turn and their results sent to the next node, each with its own counter (1 to 50 in a
// shuffled order): every one is accepted or refused as a counter regression, the stored
// counter is the highest accepted, and afterwards a lower counter is refused on every node.
func TestClusterConcurrentSignInsKeepHighestCounter(t *testing.T) {
	c := startCluster(t, 3)
	client := clusterClient()
	key := c.License
	p := newPasskey(localRP, "counter")
	if err := tryRegisterVia(client, c.nodes[0].URL, c.nodes[1].URL, key, p); err != nil {
		t.Fatal(err)
	}
	const n = 50
	counters := rand.Perm(n)
	bodies := make([]map[string]any, n)
	for i := range n {
		status, res, err := post(client, c.nodes[i%3].URL+"/webauthn/u1/assertion/options", key,
			map[string]any{"dns": "localhost", "username": p.username, "communityId": "default"})
		if err != nil || status != 200 {
			t.Fatalf("assertion/options %d: %d %v %v", i, status, res, err)
		}
		raw, _ := json.Marshal(res)
		opts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		bodies[i] = credentialBody(assertion(p, opts, nil, flagUP|flagUV, uint32(counters[i]+1)), "localhost", "default")
	}
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		statuses = make([]int, n)
		answers  = make([]map[string]any, n)
		errs     = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], answers[i], errs[i] = post(client, c.nodes[(i+1)%3].URL+"/webauthn/u1/assertion/result", key, bodies[i])
		}()
	}
	close(start)
	wg.Wait()
	var accepted []int
	refused := 0
	for i := range n {
		switch {
		case errs[i] != nil:
			t.Fatalf("sign-in with counter %d: %v", counters[i]+1, errs[i])
		case statuses[i] == 200:
			accepted = append(accepted, counters[i]+1)
		case statuses[i] == 400 && errorCode(answers[i]) == "counter_regression":
			refused++
		default:
			t.Fatalf("sign-in with counter %d: %d %v, want 200 or 400 counter_regression", counters[i]+1, statuses[i], answers[i])
		}
	}
	if len(accepted) == 0 {
		t.Fatal("no sign-in was accepted")
	}
	sort.Ints(accepted)
	highest := accepted[len(accepted)-1]
	store := c.openStore()
	cred, err := store.Credential(context.Background(), p.cred.ID)
	if err != nil {
		t.Fatal(err)
	}
	if int(cred.SignCount) != highest {
		t.Fatalf("stored counter %d after %d concurrent sign-ins, want %d, the highest accepted (accepted %v)", cred.SignCount, n, highest, accepted)
	}
	if cred.CloneWarning != (refused > 0) {
		t.Errorf("clone warning %v after %d regressions refused", cred.CloneWarning, refused)
	}
	t.Logf("%d concurrent sign-ins over 3 nodes: %d accepted (highest %d, stored %d), %d refused as regressions", n, len(accepted), highest, cred.SignCount, refused)

	// A lower counter is refused on every node; the next one is accepted.
	lower := uint32(highest - 1)
	for i, node := range c.nodes {
		body, err := trySignInVia(client, c.nodes[(i+2)%3].URL, node.URL, key, "default", p, &lower)
		if err == nil || errorCode(body) != "counter_regression" {
			t.Errorf("node %d: a sign-in with counter %d after %d was stored answered %v %v, want counter_regression", i, lower, highest, err, body)
		}
	}
	p.cred.Counter = uint32(highest)
	if _, err := trySignInVia(client, c.nodes[0].URL, c.nodes[2].URL, key, "default", p, nil); err != nil {
		t.Errorf("the next counter %d: %v", highest+1, err)
	}
}

// tryRegisterVia runs a whole registration, the options asked of optionsBase and the result
// sent to resultBase; nil means the result answered 200.
func tryRegisterVia(c *http.Client, optionsBase, resultBase, key string, p *passkey) error {
	step, status, body, err := registerStepsVia(c, optionsBase, resultBase, key, "default", p)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("%s: %d %v", step, status, body)
	}
	return err
}

// clusterLoad is a steady load of registrations and sign-ins, each ceremony's options and
// result sent where pick says. It records what was acknowledged (a 200 of the result), what
// got no answer, and every other answer.
type clusterLoad struct {
	key  string
	pick func() (options, result string)

	mu           sync.Mutex
	acked        []*passkey          // registrations acknowledged
	counters     map[*passkey]uint32 // the counter of each passkey's last acknowledged sign-in
	ackedVia     map[[2]string]int   // acknowledgements by (options base, result base)
	signIns      int                 // sign-ins acknowledged
	lost         int                 // requests with no answer (their node died)
	failures     []string            // answers other than 200
	serverErrors int                 // 5xx answers among them
	stop         chan struct{}
	wg           sync.WaitGroup
}

func newClusterLoad(key string, pick func() (string, string)) *clusterLoad {
	return &clusterLoad{key: key, pick: pick, counters: map[*passkey]uint32{}, ackedVia: map[[2]string]int{}, stop: make(chan struct{})}
}

// start runs workers until finish. Each worker owns the passkeys it registers, so that each
// counter rises in order, and alternates at random between a new registration and a sign-in
// of one of its passkeys.
func (l *clusterLoad) start(workers int, prefix string) {
	client := clusterClient()
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			var own []*passkey
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				opts, result := l.pick()
				if len(own) == 0 || rand.IntN(2) == 0 {
					p := newPasskey(localRP, fmt.Sprintf("%s-w%d-%d", prefix, w, i))
					step, status, body, err := registerStepsVia(client, opts, result, l.key, "default", p)
					if l.record(step, opts, result, status, body, err) {
						l.mu.Lock()
						l.acked = append(l.acked, p)
						l.mu.Unlock()
						own = append(own, p)
					}
					continue
				}
				p := own[rand.IntN(len(own))]
				step, status, body, err := signInSteps(client, opts, result, l.key, "default", p, nil)
				if l.record(step, opts, result, status, body, err) {
					l.mu.Lock()
					l.counters[p] = p.cred.Counter
					l.signIns++
					l.mu.Unlock()
				}
			}
		}()
	}
}

// record files one ceremony's last answer and reports whether it was an acknowledgement.
func (l *clusterLoad) record(step, opts, result string, status int, body map[string]any, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, errTransport):
		l.lost++
	case status >= 500:
		l.serverErrors++
		l.failures = append(l.failures, fmt.Sprintf("%s: %d %v %v", step, status, body, err))
	case err != nil || status != http.StatusOK:
		l.failures = append(l.failures, fmt.Sprintf("%s: %d %v %v", step, status, body, err))
	case step == "attestation/result" || step == "assertion/result":
		l.ackedVia[[2]string{opts, result}]++
		return true
	}
	return false
}

// finish stops the workers and waits for them.
func (l *clusterLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// verifyDurable checks that everything l acknowledged is stored: each acknowledged
// registration signs in (its options from one of bases and its result sent to the next, in
// turn), and each acknowledged sign-in's counter, replayed, is refused as a regression.
func verifyDurable(t *testing.T, bases []string, key string, l *clusterLoad) (signedIn, regressions int) {
	t.Helper()
	client := clusterClient()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		work = make(chan int)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := l.acked[i]
				from, to := bases[i%len(bases)], bases[(i+1)%len(bases)]
				if c, ok := l.counters[p]; ok {
					body, err := trySignInVia(client, from, to, key, "default", p, &c)
					if err == nil || errorCode(body) != "counter_regression" {
						t.Errorf("%s: its acknowledged sign-in's counter %d is not stored: replaying it answered %v %v", p.username, c, err, body)
					} else {
						mu.Lock()
						regressions++
						mu.Unlock()
					}
				}
				if _, err := trySignInVia(client, from, to, key, "default", p, nil); err != nil {
					t.Errorf("%s: acknowledged, cannot sign in afterwards: %v", p.username, err)
					continue
				}
				mu.Lock()
				signedIn++
				mu.Unlock()
			}
		}()
	}
	for i := range l.acked {
		work <- i
	}
	close(work)
	wg.Wait()
	return signedIn, regressions
}

// Guarantee 4: SIGKILL of a node under a load of registrations and sign-ins (their options and
// results on two different nodes) loses nothing acknowledged, and the ceremonies whose options
// the killed node issued finish on the others.
func TestClusterKillNodeUnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	client := clusterClient()
	key := c.License
	const victim = 2
	survivors := []string{c.nodes[0].URL, c.nodes[1].URL}
	victimURL := c.nodes[victim].URL

	// Ceremonies the victim starts and never sees finish: registrations, and sign-ins of
	// passkeys registered beforehand.
	type orphan struct {
		p    *passkey
		path string
		body map[string]any
		reg  *virtualwebauthn.AttestationOptions
	}
	var orphans []orphan
	for i := range 6 {
		p := newPasskey(localRP, fmt.Sprintf("orphan-reg-%d", i))
		status, res, err := post(client, victimURL+"/webauthn/u1/attestation/options", key,
			map[string]any{"dns": "localhost", "username": p.username, "displayName": p.username, "communityId": "default"})
		if err != nil || status != 200 {
			t.Fatalf("attestation/options on the victim: %d %v %v", status, res, err)
		}
		raw, _ := json.Marshal(res["data"])
		opts, err := virtualwebauthn.ParseAttestationOptions(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, orphan{p: p, path: "/webauthn/u1/attestation/result", reg: opts,
			body: credentialBody(virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")})
	}
	for i := range 6 {
		p := newPasskey(localRP, fmt.Sprintf("orphan-signin-%d", i))
		if err := tryRegisterVia(client, survivors[0], survivors[1], key, p); err != nil {
			t.Fatal(err)
		}
		status, res, err := post(client, victimURL+"/webauthn/u1/assertion/options", key,
			map[string]any{"dns": "localhost", "username": p.username, "communityId": "default"})
		if err != nil || status != 200 {
			t.Fatalf("assertion/options on the victim: %d %v %v", status, res, err)
		}
		raw, _ := json.Marshal(res)
		opts, err := virtualwebauthn.ParseAssertionOptions(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		p.cred.Counter++
		orphans = append(orphans, orphan{p: p, path: "/webauthn/u1/assertion/result",
			body: credentialBody(virtualwebauthn.CreateAssertionResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default")})
	}

	// The load: options and result on two different live nodes, picked at random; the victim
	// is picked until it is killed (requests in flight to it then get no answer, which is no
	// acknowledgement).
	var victimDead atomic.Bool
	all := []string{c.nodes[0].URL, c.nodes[1].URL, victimURL}
	load := newClusterLoad(key, func() (string, string) {
		live := all
		if victimDead.Load() {
			live = survivors
		}
		i := rand.IntN(len(live))
		j := (i + 1 + rand.IntN(len(live)-1)) % len(live)
		return live[i], live[j]
	})
	load.start(12, "kill")
	time.Sleep(1200 * time.Millisecond)
	c.nodes[victim].kill(t)
	killedAt := time.Now()
	victimDead.Store(true)
	time.Sleep(800 * time.Millisecond)
	load.finish()

	reportFailures(t, load.failures)
	var byVictim, fromVictim int
	for via, n := range load.ackedVia {
		if via[1] == victimURL {
			byVictim += n
		}
		if via[0] == victimURL && via[1] != victimURL {
			fromVictim += n
		}
	}
	if byVictim == 0 || fromVictim == 0 {
		t.Errorf("the victim acknowledged %d results and issued the options of %d ceremonies acknowledged elsewhere before its kill: "+
			"the load did not reach it, and the kill proves nothing", byVictim, fromVictim)
	}

	// The victim's own ceremonies finish on the survivors.
	finished := 0
	for i, o := range orphans {
		to := survivors[i%2]
		status, res, err := post(client, to+o.path, key, o.body)
		if err != nil || status != 200 {
			t.Errorf("%s: a ceremony the killed node started, finished on a survivor %s after the kill: %d %v %v",
				o.p.username, time.Since(killedAt).Round(time.Millisecond), status, res, err)
			continue
		}
		if o.reg != nil {
			o.p.auth.Options.UserHandle = []byte(o.reg.UserID)
			o.p.auth.AddCredential(o.p.cred)
		}
		load.acked = append(load.acked, o.p)
		finished++
	}

	// Everything acknowledged is there, seen through the survivors; then through the victim,
	// restarted on its data directory, for the orphans.
	signedIn, regressions := verifyDurable(t, survivors, key, load)
	restarted := c.restart(victim)
	for i, o := range orphans {
		if _, err := trySignInVia(client, restarted.URL, survivors[i%2], key, "default", o.p, nil); err != nil {
			t.Errorf("%s: through the restarted node: %v", o.p.username, err)
		}
	}
	t.Logf("SIGKILL under load (12 workers): %d registrations and %d sign-ins acknowledged (%d results by the victim, %d ceremonies from its options "+
		"finished elsewhere), %d requests lost with it; afterwards %d acknowledged passkeys signed in through the survivors, %d acknowledged counters "+
		"refused on replay, %d of its %d open ceremonies finished on the survivors",
		len(load.acked)-finished, load.signIns, byVictim, fromVictim, load.lost, signedIn, regressions, finished, len(orphans))
}

// Guarantee 5: a license revoked with the CLI is refused (401 license_disabled) by every node
// within a second, though every node had it cached as valid. Three rounds: the command writes
// straight to the database (--store in the environment), or goes through one node's admin
// socket; the time is measured from the command's exit, each node polled every 5 ms.
func TestClusterLicenseRevocationReachesEveryNode(t *testing.T) {
	c := startCluster(t, 3)
	client := clusterClient()
	check := func(node *proc, key string) (int, map[string]any, error) {
		return post(client, node.URL+"/webauthn/u1/assertion/options", key, map[string]any{"dns": "localhost", "communityId": "default"})
	}
	const rounds = 3
	var worst time.Duration
	for round := range rounds {
		out, errOut, err := c.cli("license", "create", "--level", "community", "--community", "default")
		if err != nil {
			t.Fatalf("license create: %v\n%s", err, errOut)
		}
		key := strings.TrimSpace(out)
		_, id, ok := strings.Cut(errOut, "license id ")
		id, _, _ = strings.Cut(id, " ")
		if !ok || key == "" || id == "" {
			t.Fatalf("license create printed %q and %q: no key or id", out, errOut)
		}
		// Each node accepts the new license, a few times, so that each has it cached.
		for i, node := range c.nodes {
			for range 3 {
				if status, body, err := check(node, key); err != nil || status != 200 {
					t.Fatalf("round %d: node %d refuses a license just created: %d %v %v", round, i, status, body, err)
				}
			}
		}
		// Rounds 0 and 2 revoke with --store, straight in the database; round 1 through node
		// 0's admin socket, the command given no store.
		revoke, how := c.cli, "with --store"
		if round == 1 {
			revoke = func(args ...string) (string, string, error) { return c.viaNode(c.nodes[0].DataDir, args...) }
			how = "through node 0's admin socket"
		}
		cliStart := time.Now()
		if _, errOut, err := revoke("license", "revoke", "--id", id); err != nil {
			t.Fatalf("license revoke %s: %v\n%s", how, err, errOut)
		}
		revoked := time.Now()
		took := make([]time.Duration, len(c.nodes))
		var wg sync.WaitGroup
		for i, node := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					status, body, err := check(node, key)
					switch {
					case err != nil:
						t.Errorf("round %d: node %d: %v", round, i, err)
						return
					case status == 401 && errorCode(body) == "license_disabled":
						took[i] = time.Since(revoked)
						return
					case status != 200:
						t.Errorf("round %d: node %d answered %d %v to a revoked license, want 401 license_disabled", round, i, status, body)
						return
					case time.Since(revoked) > 5*time.Second:
						t.Errorf("round %d: node %d still accepts the license 5 s after its revocation", round, i)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		for i, d := range took {
			worst = max(worst, d)
			if d >= time.Second {
				t.Errorf("round %d: node %d refused the revoked license %s after the revoke command returned, want under 1 s", round, i, d.Round(time.Millisecond))
			}
		}
		t.Logf("round %d: revoke command %s ran %s; refused by the nodes %v after it returned",
			round, how, revoked.Sub(cliStart).Round(time.Millisecond), roundAll(took))
	}
	t.Logf("revocation reached all 3 nodes within %s of the command's return (worst of %d rounds)", worst.Round(time.Millisecond), rounds)
}

// reportFailures fails t with the first few answers other than 200 that a load got, and their
// count: one broken guarantee makes hundreds of them.
func reportFailures(t *testing.T, failures []string) {
	t.Helper()
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more answers other than 200", len(failures)-i)
			break
		}
		t.Errorf("the load got an answer other than 200: %s", f)
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// balancer is the test's load balancer: round robin over a pool of live nodes, each behind
// net/http/httputil's ReverseProxy. A real one drops a node from its pool when the node's
// health check fails (a stopping node's /healthz answers 503 at once); this one is told
// instead, before the node is stopped, and waits for the requests it sent there to finish, as
// a balancer with connection draining does. Without the drop a stopping node would still get
// requests between its signal and the next health check: that is what --drain-timeout and the
// node's own drain are for, and shutdown_test.go tests them.
type balancer struct {
	mu   sync.Mutex
	pool []*backend
	next int
}

// backend is one node in the balancer's pool.
type backend struct {
	url      string
	proxy    *httputil.ReverseProxy
	inflight atomic.Int64
}

func (l *balancer) add(rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pool = append(l.pool, &backend{url: rawURL, proxy: proxy})
}

// drop takes the node at rawURL out of the pool and waits until the requests sent there have
// been answered.
func (l *balancer) drop(rawURL string) {
	l.mu.Lock()
	var gone *backend
	l.pool = slices.DeleteFunc(l.pool, func(b *backend) bool {
		if b.url == rawURL {
			gone = b
			return true
		}
		return false
	})
	l.mu.Unlock()
	if gone == nil {
		return
	}
	for gone.inflight.Load() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	gone.proxy.Transport.(*http.Transport).CloseIdleConnections()
}

func (l *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	if len(l.pool) == 0 {
		l.mu.Unlock()
		http.Error(w, "no node in the pool", http.StatusServiceUnavailable)
		return
	}
	b := l.pool[l.next%len(l.pool)]
	l.next++
	b.inflight.Add(1)
	l.mu.Unlock()
	defer b.inflight.Add(-1)
	b.proxy.ServeHTTP(w, r)
}

// Guarantee 6: a rolling restart of 3 nodes behind a load balancer, under a steady load of
// registrations and sign-ins through it, answers no 5xx (nor anything but 200), and every 200
// is durable. Each node in turn is dropped from the pool, stopped with SIGTERM (it must exit
// 0), started again on its data directory and put back once healthy.
func TestClusterRollingRestart(t *testing.T) {
	c := startCluster(t, 3)
	lb := &balancer{}
	for _, n := range c.nodes {
		lb.add(n.URL)
	}
	front := httptest.NewServer(lb)
	defer front.Close()
	load := newClusterLoad(c.License, func() (string, string) { return front.URL, front.URL })
	load.start(8, "rolling")
	started := time.Now()
	time.Sleep(500 * time.Millisecond)
	for i := range c.nodes {
		lb.drop(c.nodes[i].URL)
		if err := c.nodes[i].term(30 * time.Second); err != nil {
			t.Errorf("node %d after SIGTERM: %v\nstderr:\n%s", i, err, c.nodes[i].stderr.String())
		}
		p := c.restart(i)
		if err := p.waitHealthy(10 * time.Second); err != nil {
			t.Fatalf("node %d after its restart: %v", i, err)
		}
		lb.add(p.URL)
		time.Sleep(500 * time.Millisecond)
	}
	load.finish()
	elapsed := time.Since(started)
	if load.serverErrors > 0 {
		t.Errorf("%d answers were 5xx during the rolling restart", load.serverErrors)
	}
	reportFailures(t, load.failures)
	if load.lost > 0 {
		t.Errorf("%d requests got no answer from the load balancer", load.lost)
	}
	signedIn, regressions := verifyDurable(t, []string{front.URL}, c.License, load)
	t.Logf("rolling restart of 3 nodes in %s under 8 workers: %d registrations and %d sign-ins acknowledged, %d 5xx, %d other failures; "+
		"afterwards %d passkeys signed in, %d acknowledged counters refused on replay",
		elapsed.Round(time.Millisecond), len(load.acked), load.signIns, load.serverErrors, len(load.failures), signedIn, regressions)
}
