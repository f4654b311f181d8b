package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestBodyLimits: every route reads at most 64 KiB, a route wrapped in bodyUpTo its own limit,
// and the 413 says which limit the route has.
func TestBodyLimits(t *testing.T) {
	var decoded struct {
		V string `json:"v"`
	}
	h := handle(zap.NewNop(), func(w http.ResponseWriter, r *http.Request) error {
		if err := decode(r, &decoded); err != nil {
			return err
		}
		encode(w, http.StatusOK, map[string]int{"len": len(decoded.V)})
		return nil
	})
	body := func(n int) string { return `{"v":"` + strings.Repeat("v", n-len(`{"v":""}`)) + `"}` }
	cases := []struct {
		name    string
		handler http.Handler
		size    int
		status  int
		says    string
	}{
		{"64 KiB on a route of the default limit", limitBody(h), 64 << 10, 200, ""},
		{"one byte more", limitBody(h), 64<<10 + 1, 413, "larger than 64 KiB"},
		{"1 MiB on a route of 1 MiB", limitBody(bodyUpTo(1<<20, h)), 1 << 20, 200, ""},
		{"one byte more on a route of 1 MiB", limitBody(bodyUpTo(1<<20, h)), 1<<20 + 1, 413, "larger than 1 MiB"},
		{"a route may also lower its limit", limitBody(bodyUpTo(1000, h)), 1001, 413, "larger than 1000 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body(tc.size))))
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.says) {
				t.Fatalf("answered %d %.200s, want %d saying %q", rec.Code, rec.Body.String(), tc.status, tc.says)
			}
		})
	}
}
