package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/messages"
)

// fakePasskeys answers the link routes with one user's passkeys.
type fakePasskeys struct{ res messages.UserPasskeys }

func (f fakePasskeys) Passkeys(context.Context, messages.ListPasskeys) (messages.UserPasskeys, error) {
	return f.res, nil
}
func (fakePasskeys) Link(context.Context, messages.Link) error                    { return nil }
func (fakePasskeys) Unlink(context.Context, messages.Link) error                  { return nil }
func (fakePasskeys) Unregister(context.Context, messages.Unregister) (int, error) { return 1, nil }

// TestLinkStatusTimes: a passkey's times are RFC 3339, and one without a creation time (an
// import may store a zero Created) is listed with createdAt null, not answered with a 500.
func TestLinkStatusTimes(t *testing.T) {
	lc, key := fuzzLicenses(t)
	used := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name         string
		created      time.Time
		wantCreated  any
		lastUsed     time.Time
		wantLastUsed any
	}{
		{"both times", used, "2025-03-04T05:06:07Z", used, "2025-03-04T05:06:07Z"},
		{"never used", used, "2025-03-04T05:06:07Z", time.Time{}, nil},
		{"no creation time", time.Time{}, nil, time.Time{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			engine := fakePasskeys{messages.UserPasskeys{Found: true, UserHandle: []byte("h"), DisplayName: "Alice",
				Passkeys: []messages.Passkey{{CredentialID: []byte("c1"), FidoKeyHash: "ab", AAGUID: "00000000-0000-0000-0000-000000000000",
					Created: tc.created, LastUsed: tc.lastUsed}}}}
			r := httprouter.New()
			r.PanicHandler = func(w http.ResponseWriter, _ *http.Request, _ any) { w.WriteHeader(http.StatusInternalServerError) }
			r.Handler(http.MethodGet, "/link/community/:communityId/user/:userId/status", handleLinkStatus(lc, engine, zap.NewNop()))
			req := httptest.NewRequest(http.MethodGet, "/link/community/default/user/alice/status", nil)
			req.Header.Set("licensekey", key)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			var got struct {
				FidoKeys []map[string]any `json:"fidoKeys"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got.FidoKeys) != 1 {
				t.Fatalf("answer %s: %v", w.Body, err)
			}
			if k := got.FidoKeys[0]; k["createdAt"] != tc.wantCreated || k["lastUsedAt"] != tc.wantLastUsed {
				t.Fatalf("createdAt %v, lastUsedAt %v; want %v, %v", k["createdAt"], k["lastUsedAt"], tc.wantCreated, tc.wantLastUsed)
			}
		})
	}
}
