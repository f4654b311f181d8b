package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// metricsTestServer is the real handler over the fakes of openapi_test.go, with metrics.
func metricsTestServer(t *testing.T, engine Ceremonies) (http.Handler, *Metrics) {
	t.Helper()
	envelope, err := NewEnvelopeKey(CurveSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(func(context.Context) map[string]int { return map[string]int{"default": 2} })
	passkeys, _ := engine.(Passkeys)
	return NewServer(Deps{
		Config: Config{PublicURL: "http://localhost:8080", Version: "test", CeremonyTimeout: time.Minute,
			TokenTTL: time.Minute, AllowedTimeSpan: time.Minute},
		Ceremonies: engine, Passkeys: passkeys,
		Licenses: openAPIFakeStore{}, Communities: openAPIFakeStore{},
		Health:    HealthChecks{},
		Draining:  func() bool { return false },
		TokenKeys: func() any { return []any{} },
		Envelope:  NewKeyring(envelope),
		Metrics:   m,
		Log:       zap.NewNop(),
	}), m
}

// collected returns what c collects (prometheus/testutil would do, at the price of one more
// module).
func collected(c prometheus.Collector) []prometheus.Metric {
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	var out []prometheus.Metric
	for m := range ch {
		out = append(out, m)
	}
	return out
}

// countOf is the number of series c has.
func countOf(c prometheus.Collector) int { return len(collected(c)) }

// valueOf is the value of a counter or gauge c.
func valueOf(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ms := collected(c)
	if len(ms) != 1 {
		t.Fatalf("%d series, want 1", len(ms))
	}
	var pb dto.Metric
	if err := ms[0].Write(&pb); err != nil {
		t.Fatal(err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	}
	t.Fatalf("not a counter or a gauge: %v", &pb)
	return 0
}

// samplesOf is the number of observations of histogram h.
func samplesOf(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var pb dto.Metric
	if err := h.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetHistogram().GetSampleCount()
}

// scrape answers GET /metrics of m's handler.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics answered %d", rec.Code)
	}
	return rec.Body.String()
}

// TestMetricsLabelRequestsByRoutePattern checks that a request is counted under the pattern of
// the route that took it, never its path (which names users), and that requests no route took
// get fixed labels and a bounded method.
func TestMetricsLabelRequestsByRoutePattern(t *testing.T) {
	const secret = "alice-at-example" // a username in the path: it must reach no label
	good := map[string]string{"licensekey": "good-key"}
	cases := []struct {
		name, method, path string
		headers            map[string]string
		route, label       string // the route label and the method label
		status             string
	}{
		{name: "a path with a username is labelled with its pattern", method: "GET",
			path: "/webauthn/u1/link/community/default/user/" + secret + "/status", headers: good,
			route: "/webauthn/u1/link/community/:communityId/user/:userId/status", label: "GET", status: "200"},
		{name: "an escaped username too", method: "DELETE",
			path: "/webauthn/u1/unregister/community/default/user/" + secret + "%2Fx/did_or_fidokey/did%3Aweb%3A" + secret, headers: good,
			route: "/webauthn/u1/unregister/community/:communityId/user/:userId/did_or_fidokey/:identifier", label: "DELETE", status: "200"},
		{name: "a public route", method: "GET", path: "/webauthn/healthz", route: "/webauthn/healthz", label: "GET", status: "200"},
		{name: "a ceremony route refused for its license", method: "POST", path: "/webauthn/u1/assertion/options",
			route: "/webauthn/u1/assertion/options", label: "POST", status: "401"},
		{name: "a path that matches no route", method: "GET", path: "/users/" + secret, route: "unmatched", label: "GET", status: "404"},
		{name: "a made-up method on no route", method: "X" + strings.ToUpper(secret), path: "/" + secret,
			route: "unmatched", label: "other", status: "404"},
		{name: "a route without the method", method: "DELETE", path: "/webauthn/u1/assertion/options",
			route: "method_not_allowed", label: "DELETE", status: "405"},
		{name: "a made-up method on a route", method: "BREW", path: "/webauthn/healthz",
			route: "method_not_allowed", label: "other", status: "405"},
		{name: "refused before routing", method: "GET", path: "/webauthn/u1/link/community/default/user/" + secret + "/status",
			headers: map[string]string{"privateKey": "x"}, route: "unmatched", label: "GET", status: "400"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, m := metricsTestServer(t, openAPIEngine)
			req := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if n := countOf(m.requests); n != 1 {
				t.Errorf("%d request series, want 1", n)
			}
			if got := valueOf(t, m.requests.WithLabelValues(tc.route, tc.label, tc.status)); got != 1 {
				t.Errorf("requests{route=%q,method=%q,status=%q} = %v, want 1 (answered %d)\n%s", tc.route, tc.label, tc.status, got,
					rec.Code, scrape(t, m))
			}
			if n := samplesOf(t, m.requestDuration.WithLabelValues(tc.route, tc.label).(prometheus.Histogram)); n != 1 {
				t.Errorf("%d request durations observed for the route, want 1", n)
			}
			if out := scrape(t, m); strings.Contains(strings.ToLower(out), secret) {
				t.Errorf("the scrape carries the path's username:\n%s", out)
			}
		})
	}
}

// TestMetricsCountRefusalsByCode checks that the refusals are counted by the code the error
// writer answered, and that a ceremony's own failures are not refusals.
func TestMetricsCountRefusalsByCode(t *testing.T) {
	engine := func(code messages.Code) openAPIFakeEngine {
		e := openAPIEngine
		e.err = messages.Errorf(code, "refused")
		return e
	}
	cases := []struct {
		name    string
		engine  openAPIFakeEngine
		headers map[string]string // instead of the good license
		reason  messages.Code     // "": no refusal
	}{
		{name: "no license", engine: openAPIEngine, headers: map[string]string{}, reason: messages.CodeLicenseMissing},
		{name: "an unknown license", engine: openAPIEngine, headers: map[string]string{"licensekey": "nope"}, reason: messages.CodeLicenseInvalid},
		{name: "busy", engine: engine(messages.CodeBusy), reason: messages.CodeBusy},
		{name: "rate limited", engine: engine(messages.CodeRateLimited), reason: messages.CodeRateLimited},
		{name: "store unavailable", engine: engine(messages.CodeUnavailable), reason: messages.CodeUnavailable},
		{name: "disk full", engine: engine(messages.CodeStorageFull), reason: messages.CodeStorageFull},
		{name: "a private key", engine: openAPIEngine, headers: map[string]string{"privateKey": "x"}, reason: messages.CodePrivateKeyRefused},
		{name: "a failed verification is no refusal", engine: engine(messages.CodeSignatureInvalid)},
		{name: "a success is no refusal", engine: openAPIEngine},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, m := metricsTestServer(t, tc.engine)
			req := httptest.NewRequest(http.MethodPost, "/webauthn/u1/assertion/options", strings.NewReader(`{"dns":"localhost"}`))
			if tc.headers == nil {
				req.Header.Set("licensekey", "good-key")
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			srv.ServeHTTP(httptest.NewRecorder(), req)
			for _, reason := range refusalReasons {
				want := 0.0
				if reason == tc.reason {
					want = 1
				}
				if got := valueOf(t, m.refusals[reason]); got != want {
					t.Errorf("refusals{reason=%q} = %v, want %v", reason, got, want)
				}
			}
		})
	}
}

// TestMetricsCountCeremonyOutcomes checks what the engine's reports become: a ceremony counted
// by kind, community and outcome, its time observed only when a result came.
func TestMetricsCountCeremonyOutcomes(t *testing.T) {
	cases := []struct {
		name      string
		kind      messages.CeremonyKind
		outcome   messages.Code
		took      time.Duration
		durations uint64 // observations of the kind's duration
	}{
		{name: "a sign-in that signed in", kind: messages.KindSignIn, outcome: messages.OutcomeOK, took: 2 * time.Second, durations: 1},
		{name: "a registration whose attestation failed", kind: messages.KindRegistration, outcome: messages.CodeAttestationInvalid,
			took: time.Second, durations: 1},
		{name: "a discoverable sign-in with a bad signature", kind: messages.KindDiscoverable, outcome: messages.CodeSignatureInvalid,
			took: time.Second, durations: 1},
		{name: "an expired ceremony has no duration", kind: messages.KindSignIn, outcome: messages.OutcomeExpired},
		{name: "one that failed at its options has none", kind: messages.KindRegistration, outcome: messages.CodeRPIDNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics(nil)
			m.CeremonyEnded(tc.kind, "default", tc.outcome, tc.took)
			if got := valueOf(t, m.ceremonies.WithLabelValues(string(tc.kind), "default", string(tc.outcome))); got != 1 {
				t.Errorf("ceremonies{kind=%q,outcome=%q} = %v, want 1", tc.kind, tc.outcome, got)
			}
			out := scrape(t, m)
			want := `webauthnd_ceremony_duration_seconds_count{kind="` + string(tc.kind) + `"} ` + map[bool]string{true: "1", false: "0"}[tc.durations == 1]
			if !strings.Contains(out, want) {
				t.Errorf("the scrape lacks %s:\n%s", want, out)
			}
		})
	}
}

// metricNames are the series names that PromQL expressions use in text: webauthnd's, the Go
// runtime's and the process's.
var metricNames = regexp.MustCompile(`\b(?:webauthnd|go|process)_[a-z0-9_]+`)

// TestOperationsDocsUseExistingMetrics checks that every series that docs/operations.md's alert
// rules and docs/grafana-dashboard.json's panels query is one that the registry has after a
// request, a ceremony, a commit, a clone warning and a token: renaming a metric without the
// docs fails here.
func TestOperationsDocsUseExistingMetrics(t *testing.T) {
	srv, m := metricsTestServer(t, openAPIEngine)
	req := httptest.NewRequest(http.MethodPost, "/webauthn/u1/assertion/options", strings.NewReader(`{"dns":"localhost"}`))
	srv.ServeHTTP(httptest.NewRecorder(), req) // a refusal: no license
	m.CeremonyEnded(messages.KindSignIn, "default", messages.OutcomeOK, time.Second)
	m.Committed(3, time.Millisecond)
	m.CloneWarning("default")
	m.TokenIssued("default")
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
	}
	exists := func(name string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && have[base] {
				return true
			}
		}
		return false
	}

	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var rules []string // the expressions of the YAML blocks
	for _, block := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		rules = append(rules, block[1])
	}
	if len(rules) == 0 {
		t.Fatal("docs/operations.md has no ```yaml block of alert rules")
	}
	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard any
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	var exprs []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dashboard)
	if len(exprs) == 0 {
		t.Fatal("docs/grafana-dashboard.json has no panel expression")
	}

	for source, texts := range map[string][]string{"docs/operations.md": rules, "docs/grafana-dashboard.json": exprs} {
		var used []string
		for _, text := range texts {
			used = append(used, metricNames.FindAllString(text, -1)...)
		}
		if len(used) == 0 {
			t.Errorf("%s uses no metric", source)
		}
		slices.Sort(used)
		for _, name := range slices.Compact(used) {
			if !exists(name) {
				t.Errorf("%s uses %s, which the registry does not have", source, name)
			}
		}
	}
	// And every metric of webauthnd is in the docs' table, which says what it tells.
	for name := range have {
		if strings.HasPrefix(name, "webauthnd_") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/operations.md does not describe %s", name)
		}
	}
}

// TestMetricsHandlerServesOnlyMetrics checks that the metrics listener's handler answers
// /metrics in the text format and nothing else.
func TestMetricsHandlerServesOnlyMetrics(t *testing.T) {
	m := NewMetrics(nil)
	for path, want := range map[string]int{"/metrics": 200, "/": 404, "/webauthn/healthz": 404, "/metrics/x": 404} {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s answered %d, want %d", path, rec.Code, want)
		}
		if want == 200 {
			body, _ := io.ReadAll(rec.Body)
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want the text format", ct)
			}
			for _, series := range []string{"go_goroutines", "process_cpu_seconds_total", `webauthnd_refusals_total{reason="busy"} 0`} {
				if !strings.Contains(string(body), series) {
					t.Errorf("the scrape lacks %s", series)
				}
			}
		}
	}
}
