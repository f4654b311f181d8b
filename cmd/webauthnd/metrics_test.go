package main

import (
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// metricsURL is the /metrics URL that a server started with --metrics-addr printed.
func (s *testServer) metricsURL(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(s.stdout.String(), "\n") {
		if url, ok := strings.CutPrefix(line, "webauthnd metrics on "); ok {
			return strings.TrimSpace(url)
		}
	}
	t.Fatalf("the server printed no metrics address:\n%s", s.stdout.String())
	return ""
}

// get answers GET url's status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body)
}

// TestMetricsAfterRealCeremonies runs a registration, a sign-in by username and a
// discoverable one, and checks the scrape of --metrics-addr: the series of each, by route
// pattern, kind and outcome, with no username or credential id anywhere; and that neither the
// public port serves /metrics nor the metrics listener outlives the server.
func TestMetricsAfterRealCeremonies(t *testing.T) {
	s := startServer(t, "", "--metrics-addr", "127.0.0.1:0")
	metrics := s.metricsURL(t)

	if status, _ := get(t, s.URL+"/metrics"); status != http.StatusNotFound {
		t.Errorf("the public port answered /metrics with %d, want 404", status)
	}
	if status, _ := get(t, strings.TrimSuffix(metrics, "/metrics")+"/webauthn/healthz"); status != http.StatusNotFound {
		t.Errorf("the metrics listener answered the API's healthz with %d, want 404", status)
	}

	const username = "zoe-metrics-user"
	p := newPasskey(localRP, username)
	reg := s.register(t, s.License, "default", p)
	s.signIn(t, s.License, "default", p, true)
	s.signIn(t, s.License, "default", p, false)
	s.call(t, "GET", "/webauthn/u1/link/community/default/user/"+username+"/status", lic(s.License), nil)
	s.call(t, "POST", "/webauthn/u1/assertion/options", nil, map[string]any{"dns": "localhost"}) // no license

	want := []string{
		`webauthnd_ceremonies_total{community="default",kind="registration",outcome="ok"} 1`,
		`webauthnd_ceremonies_total{community="default",kind="signin",outcome="ok"} 1`,
		`webauthnd_ceremonies_total{community="default",kind="discoverable",outcome="ok"} 1`,
		`webauthnd_ceremony_duration_seconds_count{kind="signin"} 1`,
		`webauthnd_tokens_issued_total{community="default"} 2`,
		`webauthnd_http_requests_total{method="POST",route="/webauthn/u1/assertion/result",status="200"} 2`,
		`webauthnd_http_requests_total{method="POST",route="/webauthn/u1/attestation/options",status="200"} 1`,
		`webauthnd_http_requests_total{method="GET",route="/webauthn/u1/link/community/:communityId/user/:userId/status",status="200"} 1`,
		`webauthnd_http_requests_total{method="GET",route="/webauthn/healthz",status="200"}`,
		`webauthnd_http_request_duration_seconds_count{method="POST",route="/webauthn/u1/assertion/options"} 3`,
		`webauthnd_refusals_total{reason="license_missing"} 1`,
		`webauthnd_live_ceremonies{community="default"}`,
		`webauthnd_store_commit_batch_size_count`,
		`webauthnd_store_commit_duration_seconds_bucket`,
		"go_goroutines", "process_cpu_seconds_total",
	}
	// A ceremony reports its end as it stops, just after its answer: wait for the last ones.
	var scrape string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var status int
		status, scrape = get(t, metrics)
		if status != http.StatusOK {
			t.Fatalf("GET %s answered %d", metrics, status)
		}
		missing := []string{}
		for _, w := range want {
			if !strings.Contains(scrape, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scrape lacks\n%s\n\n%s", strings.Join(missing, "\n"), scrape)
		}
	}
	credentialID, _ := reg["credentialId"].(string)
	for _, secret := range []string{username, s.License, credentialID,
		base64.RawURLEncoding.EncodeToString(p.cred.ID), base64.StdEncoding.EncodeToString(p.cred.ID)} {
		if secret != "" && strings.Contains(scrape, secret) {
			t.Errorf("the scrape carries %q", secret)
		}
	}

	s.stop(t)
	if res, err := http.Get(metrics); err == nil {
		res.Body.Close()
		t.Errorf("the metrics listener still answers after shutdown (%d)", res.StatusCode)
	}
}

// TestMetricsAreOffByDefault checks that a server started without --metrics-addr opens no
// metrics listener, and that WEBAUTHND_METRICS_ADDR opens one as the flag does.
func TestMetricsAreOffByDefault(t *testing.T) {
	s := startServer(t, "")
	if strings.Contains(s.stdout.String(), "webauthnd metrics on") {
		t.Errorf("metrics on without --metrics-addr:\n%s", s.stdout.String())
	}
	env := launchNode(t, "", map[string]string{"WEBAUTHND_METRICS_ADDR": "127.0.0.1:0"})
	if status, body := get(t, env.metricsURL(t)); status != http.StatusOK || !strings.Contains(body, "webauthnd_refusals_total") {
		t.Errorf("WEBAUTHND_METRICS_ADDR: /metrics answered %d\n%s", status, body)
	}
}
