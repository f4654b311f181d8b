package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/webauthnd/webauthnd/messages"
)

// TestHealthzSaysWhy checks that /healthz answers 503 with the reason a load balancer or an
// operator acts on, and 200 with no reason when the service can take every request.
func TestHealthzSaysWhy(t *testing.T) {
	cases := []struct {
		name     string
		health   error
		draining bool
		status   int
		reason   string
	}{
		{name: "healthy", status: 200},
		{name: "draining after SIGTERM", draining: true, status: 503, reason: "draining"},
		{name: "draining wins over a full disk", draining: true, health: messages.Errorf(messages.CodeStorageFull, "full"), status: 503, reason: "draining"},
		{name: "free space below the reserve", health: messages.Wrap(messages.CodeStorageFull, "full", io.ErrShortWrite), status: 503, reason: "storage_full"},
		{name: "store does not answer", health: io.ErrUnexpectedEOF, status: 503, reason: "unavailable"},
		{name: "engine does not answer in time", health: messages.Errorf(messages.CodeUnavailable, "no answer"), status: 503, reason: "unavailable"},
		{name: "another coded error is no reason of its own", health: messages.Errorf(messages.CodeInternal, "x"), status: 503, reason: "unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := openAPITestServer(t, openAPIEngine, func(context.Context) error { return tc.health }, tc.draining)
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webauthn/healthz", nil))
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("not JSON: %q", rec.Body.Bytes())
			}
			if rec.Code != tc.status || body["reason"] != tc.reason {
				t.Errorf("answered %d %v, want %d with reason %q", rec.Code, body, tc.status, tc.reason)
			}
		})
	}
}
