package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
)

// slowResult starts a registration result whose body the caller sends in two parts, so that
// the request is in flight (its handler reading the body) for as long as the caller wants.
// finish sends the rest; the answer's status arrives on the channel (0: no answer).
func slowResult(t *testing.T, s *testServer, p *passkey) (finish func(), answer <-chan int) {
	t.Helper()
	opts, _ := s.registrationOptions(t, s.License, "default", p)
	body, _ := json.Marshal(ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(p.rp, p.auth, p.cred, *opts), "localhost", "default"))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/webauthn/u1/attestation/result", pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("licensekey", s.License)
	out := make(chan int, 1)
	go func() {
		res, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			out <- 0
			return
		}
		res.Body.Close()
		out <- res.StatusCode
	}()
	t.Cleanup(func() { _ = pw.CloseWithError(errors.New("test over")) })
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	return func() {
		_, _ = pw.Write(body[len(body)/2:])
		_ = pw.Close()
		p.auth.Options.UserHandle = []byte(opts.UserID)
		p.auth.AddCredential(p.cred)
	}, out
}

// TestSIGTERMDrainsThenClosesCleanly is guarantee 7, on the built binary: on SIGTERM /healthz
// answers 503 at once (on new connections: the listener stays open while requests are in
// flight), requests in flight finish (one whose body completes after the signal gets its 200;
// a load of registrations sees no 5xx), the process exits 0 within --drain-timeout and a
// margin even though one request never completes, and the next start replays no write-ahead
// log (Badger was closed cleanly) and has every passkey.
func TestSIGTERMDrainsThenClosesCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const drain = 3 * time.Second
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startProc(t, bin, dir, "--drain-timeout", drain.String(), "--log-level", "debug")
	s := p.server()
	alice := newPasskey(localRP, "alice")
	s.register(t, s.License, "default", alice)

	bob := newPasskey(localRP, "bob")
	finishBob, bobAnswer := slowResult(t, s, bob)
	hung := newPasskey(localRP, "hung") // its body never completes
	_, hungAnswer := slowResult(t, s, hung)

	// A load of registrations runs through the signal.
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		stopLoad = make(chan struct{})
		loadOK   int
		loadBad  []string
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				err := tryRegister(client, s.URL, s.License, "default", newPasskey(localRP, fmt.Sprintf("load-%d-%d", w, i)))
				mu.Lock()
				switch {
				case err == nil:
					loadOK++
				case errors.Is(err, errTransport): // after the listener closed
				default:
					loadBad = append(loadBad, err.Error())
				}
				mu.Unlock()
				if errors.Is(err, errTransport) {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // bob's and hung's handlers are reading their bodies

	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	fresh := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var unhealthyAfter time.Duration
	for time.Since(sigterm) < time.Second {
		res, err := fresh.Get(s.URL + "/webauthn/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusServiceUnavailable {
				unhealthyAfter = time.Since(sigterm)
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	switch {
	case unhealthyAfter == 0:
		t.Errorf("/healthz never answered 503 on a new connection in the second after SIGTERM")
	case unhealthyAfter > 100*time.Millisecond:
		t.Errorf("/healthz answered 503 only %s after SIGTERM", unhealthyAfter)
	}

	time.Sleep(200 * time.Millisecond)
	finishBob()
	if status := <-bobAnswer; status != http.StatusOK {
		t.Errorf("a registration in flight at SIGTERM answered %d, want 200", status)
	}

	var exitAfter time.Duration
	select {
	case err := <-p.done:
		exitAfter = time.Since(sigterm)
		if err != nil {
			t.Errorf("webauthnd exited with %v, want 0\n%s", err, p.stderr.String())
		}
	case <-time.After(drain + 5*time.Second):
		t.Fatalf("webauthnd still runs %s after SIGTERM (--drain-timeout %s)", drain+5*time.Second, drain)
	}
	close(stopLoad)
	wg.Wait()
	if exitAfter > drain+2*time.Second {
		t.Errorf("webauthnd exited %s after SIGTERM, want within --drain-timeout %s + 2s", exitAfter, drain)
	}
	select {
	case status := <-hungAnswer:
		if status >= 500 {
			t.Errorf("the request whose body never completed answered %d", status)
		}
	case <-time.After(time.Second): // Go's client may wait on its body writer; the server is gone
	}
	for _, b := range loadBad {
		t.Errorf("a request during the drain: %s", b)
	}

	p2 := startProc(t, bin, dir, "--log-level", "debug")
	if p2.replayedWAL() {
		t.Errorf("the start after a clean shutdown replayed Badger's write-ahead log (a recovery)")
	}
	s2 := p2.server()
	s2.signIn(t, s2.License, "default", alice, true)
	s2.signIn(t, s2.License, "default", bob, true)
	t.Logf("SIGTERM: /healthz 503 after %s; exit 0 after %s (--drain-timeout %s, one request never completing); "+
		"%d registrations of the load acknowledged, none 5xx; next start in %s, WAL replayed: %v",
		unhealthyAfter.Round(time.Millisecond), exitAfter.Round(time.Millisecond), drain, loadOK, p2.startup.Round(time.Millisecond), p2.replayedWAL())
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p2.done
}
