package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestAdminBodyLimits: the admin API keeps the 64 KiB limit on every request but the MDS
// import, which takes a BLOB of megabytes up to 17 MiB; the 413 says the route's limit, and the
// import's body is decoded with the strict decoder.
func TestAdminBodyLimits(t *testing.T) {
	var imported MetadataImport
	srv := NewAdminServer(AdminDeps{
		ImportMetadata: func(_ context.Context, req MetadataImport) (MetadataImported, error) {
			imported = req
			return MetadataImported{Number: 9, Entries: 98}, nil
		},
		Log: zap.NewNop(),
	})
	blob := func(n int) string { return `{"blob":"` + strings.Repeat("a", n) + `","force":true}` }
	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"a 3 MB BLOB", AdminMetadataImportPath, blob(3 << 20), http.StatusOK, `"number":9`},
		{"a BLOB beyond 17 MiB", AdminMetadataImportPath, blob(17 << 20), http.StatusRequestEntityTooLarge, "larger than 17 MiB"},
		{"a name in another case", AdminMetadataImportPath, `{"BLOB":"x"}`, http.StatusBadRequest, "BLOB"},
		{"another admin route keeps 64 KiB", "/admin/communities", `{"community":{"id":"` + strings.Repeat("a", 70<<10) + `"}}`,
			http.StatusRequestEntityTooLarge, "64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imported = MetadataImport{}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body)))
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("%d %s, want %d saying %q", w.Code, w.Body.String(), tc.status, tc.want)
			}
			if tc.status == http.StatusOK && (len(imported.Blob) != 3<<20 || !imported.Force) {
				t.Fatalf("the handler got a BLOB of %d bytes, force %v", len(imported.Blob), imported.Force)
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
		})
	}
}
