package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// healthzBody is /healthz's answer.
type healthzBody struct {
	Status  string            `json:"status"`
	Code    string            `json:"code"`
	Version string            `json:"version"`
	Reason  string            `json:"reason"`
	Checks  map[string]string `json:"checks"`
	Failed  []string          `json:"failed"`
}

func getHealthz(t *testing.T, h http.Handler) (int, healthzBody, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webauthn/healthz", nil))
	var body healthzBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("not JSON: %q", rec.Body.Bytes())
	}
	return rec.Code, body, rec.Body.String()
}

// TestHealthzSaysWhy checks that /healthz answers 503 saying which check failed and the
// reason a load balancer or an operator acts on, and 200 with every check ok when the service
// can take every request.
func TestHealthzSaysWhy(t *testing.T) {
	fail := func(err error) func(context.Context) error { return func(context.Context) error { return err } }
	full := fail(messages.Wrap(messages.CodeStorageFull, "full", io.ErrShortWrite))
	// A database's error can carry its address and user; none of it may reach the body.
	dsnErr := errors.New(`failed to connect to "postgres://webauthnd:hunter2@db.internal:5432/webauthnd"`)
	cases := []struct {
		name     string
		checks   HealthChecks
		draining bool
		status   int
		reason   string
		failed   []string
		results  map[string]string // the checks that are not ok
	}{
		{name: "healthy", status: 200, failed: []string{}},
		{name: "draining after SIGTERM", draining: true, status: 503, reason: "draining",
			failed: []string{"draining"}, results: map[string]string{"draining": "draining"}},
		{name: "draining wins over a full disk", draining: true, checks: HealthChecks{Storage: full}, status: 503, reason: "draining",
			failed: []string{"storage", "draining"}, results: map[string]string{"storage": "storage_full", "draining": "draining"}},
		{name: "free space below the reserve", checks: HealthChecks{Storage: full}, status: 503, reason: "storage_full",
			failed: []string{"storage"}, results: map[string]string{"storage": "storage_full"}},
		{name: "store does not answer", checks: HealthChecks{Store: fail(io.ErrUnexpectedEOF)}, status: 503, reason: "unavailable",
			failed: []string{"store"}, results: map[string]string{"store": "unavailable"}},
		{name: "engine does not answer in time", checks: HealthChecks{Actors: fail(messages.Wrap(messages.CodeUnavailable, "no answer", context.DeadlineExceeded))},
			status: 503, reason: "unavailable", failed: []string{"actors"}, results: map[string]string{"actors": "timeout"}},
		{name: "engine refuses", checks: HealthChecks{Actors: fail(messages.Errorf(messages.CodeUnavailable, "stopped"))},
			status: 503, reason: "unavailable", failed: []string{"actors"}, results: map[string]string{"actors": "unavailable"}},
		{name: "the free space cannot be read", checks: HealthChecks{Storage: fail(errors.New("statfs: permission denied"))},
			status: 503, reason: "unavailable", failed: []string{"storage"}, results: map[string]string{"storage": "unavailable"}},
		{name: "a store that does not answer outranks a full disk", checks: HealthChecks{Store: fail(io.ErrUnexpectedEOF), Storage: full},
			status: 503, reason: "unavailable", failed: []string{"store", "storage"}, results: map[string]string{"store": "unavailable", "storage": "storage_full"}},
		{name: "every check fails, in a fixed order", draining: true, checks: HealthChecks{Store: fail(dsnErr), Actors: fail(dsnErr), Storage: fail(dsnErr)},
			status: 503, reason: "draining", failed: []string{"store", "actors", "storage", "draining"},
			results: map[string]string{"store": "unavailable", "actors": "unavailable", "storage": "unavailable", "draining": "draining"}},
		{name: "another coded error is no reason of its own", checks: HealthChecks{Store: fail(messages.Errorf(messages.CodeInternal, "x"))},
			status: 503, reason: "unavailable", failed: []string{"store"}, results: map[string]string{"store": "unavailable"}},
		{name: "the database's error stays in the log", checks: HealthChecks{Store: fail(dsnErr)}, status: 503, reason: "unavailable",
			failed: []string{"store"}, results: map[string]string{"store": "unavailable"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := openAPITestServer(t, openAPIEngine, tc.checks, tc.draining)
			status, body, raw := getHealthz(t, srv)
			want := map[string]string{"store": "ok", "actors": "ok", "storage": "ok", "draining": "ok"}
			for k, v := range tc.results {
				want[k] = v
			}
			if status != tc.status || body.Reason != tc.reason || !reflect.DeepEqual(body.Failed, tc.failed) || !reflect.DeepEqual(body.Checks, want) {
				t.Errorf("answered %d %s, want %d with reason %q, failed %v, checks %v", status, raw, tc.status, tc.reason, tc.failed, want)
			}
			if body.Version != "test" || body.Code != map[int]string{200: "200", 503: "503"}[tc.status] {
				t.Errorf("answered version %q code %q", body.Version, body.Code)
			}
			for _, secret := range []string{"hunter2", "postgres://", "db.internal", "failed to connect"} {
				if strings.Contains(raw, secret) {
					t.Errorf("the body carries the cause %q: %s", secret, raw)
				}
			}
		})
	}
}

// TestHealthzBoundsAHungCheck: a store that hangs, even one that ignores its context, makes
// its check answer "timeout" instead of hanging /healthz; and polls while it hangs share its one
// call instead of piling up goroutines.
func TestHealthzBoundsAHungCheck(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int32
	hung := func(context.Context) error { calls.Add(1); <-release; return nil }
	h := handleHealthz(HealthChecks{Store: hung}, func() bool { return false }, "test", 50*time.Millisecond, zap.NewNop())
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, raw := getHealthz(t, h)
			if status != 503 || body.Checks["store"] != "timeout" || body.Checks["actors"] != "ok" || body.Reason != "unavailable" {
				t.Errorf("answered %d %s while the store hangs, want 503 with store: timeout", status, raw)
			}
		}()
	}
	wg.Wait()
	if status, body, raw := getHealthz(t, h); status != 503 || body.Checks["store"] != "timeout" {
		t.Errorf("answered %d %s while the store still hangs", status, raw)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("6 polls of a hung store made %d calls of its check, want 1", n)
	}
}
