package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
)

// TestClientThatNeverFinishesItsHeadersIsCutOff is guarantee 4's slow client: a client that
// sends its request line and then one header byte every half second, never ending its
// headers, is disconnected 10 s after it connected (ReadHeaderTimeout), however it trickles.
func TestClientThatNeverFinishesItsHeadersIsCutOff(t *testing.T) {
	t.Parallel() // it mostly waits
	s := startServer(t, "")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("POST /webauthn/u1/assertion/options HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	held := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still held the connection after %s", held)
	}
	if held < 9*time.Second || held > 11*time.Second {
		t.Fatalf("the connection ended after %s (%q, %v), want about 10 s", held, buf[:n], err)
	}
	t.Logf("a client trickling its headers was cut off after %s", held.Round(10*time.Millisecond))
}

// TestHeaderOverTheCapIs431 is the cap on header bytes: 64 KiB (net/http allows 4 KiB of
// slack on top); a request just under it is served, one over it answers 431.
func TestHeaderOverTheCapIs431(t *testing.T) {
	s := startServer(t, "")
	for _, tc := range []struct {
		size int
		want int
	}{{60 << 10, http.StatusOK}, {80 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/webauthn/healthz", nil)
		req.Header.Set("X-Pad", strings.Repeat("a", tc.size))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d header bytes: %v", tc.size, err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("a header of %d bytes answered %d, want %d", tc.size, res.StatusCode, tc.want)
		}
	}
}

// TestBeyondMaxCeremoniesIs429 is guarantee 4's cap: with --max-ceremonies 5, a flood of
// options calls beyond the cap answers 429 busy with Retry-After at once, never a 5xx or a
// hang; the cap is per community; and a ceremony that ends frees its place.
func TestBeyondMaxCeremoniesIs429(t *testing.T) {
	s := startServer(t, "", "--max-ceremonies", "5", "--max-ceremonies-per-license", "5")
	// The flood leaves connections the client opened and never used; net/http's Shutdown
	// waits 5 s for such connections unless the client closes them.
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--rp-id", "shop.localhost", "--origin", "https://shop.localhost")
	shopKey := s.admin(t, "license", "create", "--level", "community", "--community", "shop")

	first := newPasskey(localRP, "first")
	opts, _ := s.registrationOptions(t, s.License, "default", first)
	for i := range 4 {
		s.signInOptions(t, s.License, "default", "localhost", fmt.Sprintf("user%d", i))
	}

	const flood = 64
	type answer struct {
		status     int
		code       any
		retryAfter string
		took       time.Duration
	}
	answers := make([]answer, flood)
	var wg sync.WaitGroup
	for i := range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, body := "/webauthn/u1/assertion/options", map[string]any{"dns": "localhost", "communityId": "default"}
			if i%2 == 0 {
				path, body = "/webauthn/u1/attestation/options", map[string]any{"dns": "localhost", "username": fmt.Sprintf("flood%d", i), "communityId": "default"}
			}
			start := time.Now()
			status, res, hdr := s.call(t, "POST", path, lic(s.License), body)
			answers[i] = answer{status, res["code"], hdr.Get("Retry-After"), time.Since(start)}
		}()
	}
	wg.Wait()
	var slowest time.Duration
	for i, a := range answers {
		slowest = max(slowest, a.took)
		if a.status != http.StatusTooManyRequests || a.code != "busy" {
			t.Errorf("options call %d beyond the cap: %d %v, want 429 busy", i, a.status, a.code)
		}
		if secs, err := strconv.Atoi(a.retryAfter); err != nil || secs < 1 {
			t.Errorf("options call %d: Retry-After %q, want whole seconds >= 1", i, a.retryAfter)
		}
	}
	if slowest > 2*time.Second {
		t.Errorf("the slowest 429 took %s", slowest)
	}
	t.Logf("%d options calls beyond --max-ceremonies 5: all 429 busy with Retry-After, slowest %s", flood, slowest.Round(time.Millisecond))

	// Another community has its own cap.
	status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/options", lic(shopKey), map[string]any{"dns": "shop.localhost", "communityId": "shop"})
	if status != http.StatusOK {
		t.Fatalf("another community's options while default is full: %d %v", status, body)
	}

	// A finished ceremony frees its place.
	status, body, _ = s.call(t, "POST", "/webauthn/u1/attestation/result", lic(s.License),
		ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(first.rp, first.auth, first.cred, *opts), "localhost", "default"))
	if status != http.StatusOK {
		t.Fatalf("the registration within the cap: %d %v", status, body)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		status, body, _ = s.call(t, "POST", "/webauthn/u1/assertion/options", lic(s.License), map[string]any{"dns": "localhost", "communityId": "default"})
		if status == http.StatusOK {
			break
		}
		if status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("options after a ceremony ended: %d %v", status, body)
		}
	}
}

// TestCeremonyCapPerLicense: one license holds at most --max-ceremonies-per-license of a
// community's ceremonies (a quarter of --max-ceremonies by default); beyond it, 429 busy with
// Retry-After, while another license of the same community still starts ceremonies.
func TestCeremonyCapPerLicense(t *testing.T) {
	s := startServer(t, "", "--max-ceremonies", "8")
	other := s.admin(t, "license", "create", "--level", "community", "--community", "default")
	for i := range 2 {
		s.signInOptions(t, s.License, "default", "localhost", fmt.Sprintf("user%d", i))
	}
	for _, path := range []string{"/webauthn/u1/assertion/options", "/webauthn/u1/attestation/options"} {
		status, body, hdr := s.call(t, "POST", path, lic(s.License), map[string]any{"dns": "localhost", "username": "one-more", "communityId": "default"})
		if status != http.StatusTooManyRequests || body["code"] != "busy" {
			t.Fatalf("%s beyond the license's share: %d %v, want 429 busy", path, status, body)
		}
		if secs, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || secs < 1 {
			t.Fatalf("Retry-After %q, want whole seconds >= 1", hdr.Get("Retry-After"))
		}
	}
	for i := range 2 {
		s.signInOptions(t, other, "default", "localhost", fmt.Sprintf("user%d", i))
	}

	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--data-dir", t.TempDir(), "--max-ceremonies", "8", "--max-ceremonies-per-license", "9"},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "--max-ceremonies-per-license 9") {
		t.Fatalf("a share above the community's cap: %v, want it refused naming the flag", err)
	}
}
