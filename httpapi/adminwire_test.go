package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/webauthnd/webauthnd/persistence"
	"go.uber.org/zap"
)

// TestAdminRequestsAreWireTypes: the admin socket decodes its own wire types, not storage
// structs, so a request can ask for no more than an operator may: a license cannot be re-keyed
// or created disabled through it, and each request becomes exactly its store operation.
func TestAdminRequestsAreWireTypes(t *testing.T) {
	var got []persistence.Op
	srv := NewAdminServer(AdminDeps{
		Write: func(_ context.Context, op persistence.Op) (any, error) {
			got = append(got, op)
			return map[string]string{}, nil
		},
		Log: zap.NewNop(),
	})
	yes := true
	for _, tc := range []struct {
		name, path, method, body string
		want                     persistence.Op
	}{
		{"a license, with rekey and disabled ignored", "/admin/licenses", http.MethodPost,
			`{"id":"lic_1","keyHash":"AAEC","level":"system","rekey":true,"disabled":true}`,
			persistence.PutLicense{License: persistence.License{ID: "lic_1", KeyHash: []byte{0, 1, 2}, Level: "system"}}},
		{"a community", "/admin/communities", http.MethodPost,
			`{"community":{"id":"shop","tenantId":"acme","name":"Shop","rpIds":["shop.example"],"origins":["https://shop.example"],"userVerification":"required","created":"2020-01-01T00:00:00Z"},"tenantDns":["shop.example"]}`,
			persistence.PutCommunity{Create: true, TenantDNS: []string{"shop.example"}, Community: persistence.Community{ID: "shop",
				TenantID: "acme", Name: "Shop", RPIDs: []string{"shop.example"}, Origins: []string{"https://shop.example"}, UserVerification: "required"}}},
		{"a community patch", "/admin/communities", http.MethodPatch, `{"id":"shop","blockClones":true,"attestationTrust":"required"}`,
			persistence.PatchCommunity{ID: "shop", BlockClones: &yes, AttestationTrust: "required"}},
		{"a revocation", "/admin/licenses/revoke", http.MethodPost, `{"id":"lic_1"}`, persistence.RevokeLicense{ID: "lic_1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if w.Code != http.StatusOK || len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("%d %s: wrote %#v, want %#v", w.Code, w.Body, got, tc.want)
			}
		})
	}
}
