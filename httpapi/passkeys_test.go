package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// seedLine is a valid line with every field set.
const seedLine = `{"communityId":"old","rpId":"example.com","username":"alice","displayName":"Alice","userHandle":"aGFuZGxl",` +
	`"credentialId":"Y3JlZC0x","publicKey":"pQECAyYgASFYIG1AJfej4Hc1zYQScij470CUkLT7G1jwxOpAy97G3fHYIlggyJpl8tm84Ce4pX9_RrCfJnzYBK1Fz2eibvcZIwRd7KU",` +
	`"algorithm":-7,"signCount":41,"transports":["internal","hybrid"],"aaguid":"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4",` +
	`"attestationFormat":"packed","attestationTrusted":true,"userVerified":true,"backupEligible":true,"backupState":true,` +
	`"cloneWarning":false,"createdAt":"2024-05-06T07:08:09.123456789Z","lastUsedAt":"2025-01-02T03:04:05Z","did":"did:example:alice"}`

// TestPasskeyLineRoundTrip: a line parses into the records it describes, in the target
// community, and the line of those records is the line again (but for the source's community).
func TestPasskeyLineRoundTrip(t *testing.T) {
	u, c, err := ParsePasskeyLine([]byte(seedLine), "new")
	if err != nil {
		t.Fatal(err)
	}
	if u.CommunityID != "new" || c.CommunityID != "new" || string(u.Handle) != "handle" || string(c.ID) != "cred-1" ||
		c.SignCount != 41 || c.DID != "did:example:alice" || !c.LastUsed.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("records %+v %+v", u, c)
	}
	again, err := json.Marshal(PasskeyLineOf(u, c))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(seedLine, `"communityId":"old"`, `"communityId":"new"`, 1); string(again) != want {
		t.Fatalf("line of the records:\n got %s\nwant %s", again, want)
	}
}

// FuzzPasskeyLine feeds untrusted lines (an import file is whatever a relying party made) to the
// line parser. It must never panic; a line it accepts describes records that pass the store's
// own checks, and the line of those records parses into the same records.
func FuzzPasskeyLine(f *testing.F) {
	f.Add([]byte(seedLine))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"username":"a","userName":"b"}`))
	f.Add([]byte(`{"rpId":"x","rpId":"y"}`))
	f.Add([]byte(`{"userHandle":"aGFuZGxl==","transports":[""],"createdAt":"yesterday"}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		u, c, err := ParsePasskeyLine(raw, "target")
		if err != nil {
			return
		}
		if err := persistence.Check(persistence.AddCredential{Credential: c, DisplayName: u.DisplayName}); err != nil {
			t.Fatalf("an accepted line fails the store's checks: %v", err)
		}
		if !persistence.StorableTime(c.Created) || !persistence.StorableTime(c.LastUsed) || c.CommunityID != "target" {
			t.Fatalf("an accepted line has records the store cannot keep: %+v", c)
		}
		line, err := json.Marshal(PasskeyLineOf(u, c))
		if err != nil {
			t.Fatal(err)
		}
		u2, c2, err := ParsePasskeyLine(line, "target")
		if err != nil {
			t.Fatalf("the line of accepted records is refused: %v\n%s", err, line)
		}
		if !reflect.DeepEqual(u, u2) || !reflect.DeepEqual(c, c2) {
			t.Fatalf("records change in a round trip:\n%+v %+v\n%+v %+v", u, c, u2, c2)
		}
	})
}

// TestAdminPasskeyRoutes: what the admin routes of an import refuse before any line is read.
func TestAdminPasskeyRoutes(t *testing.T) {
	var got []PasskeyImport
	var recorded bytes.Buffer
	h := NewAdminServer(AdminDeps{
		Log:   zap.NewNop(),
		Audit: NewAudit(&recorded, nil),
		ImportPasskeys: func(_ context.Context, req PasskeyImport) (PasskeyImportReport, error) {
			got = append(got, req)
			return PasskeyImportReport{Imported: len(req.Lines), Refused: []RefusedLine{}}, nil
		},
	})
	huge := `{"communityId":"c","lines":["` + strings.Repeat("x", adminPasskeysBodyLimit) + `"]}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"a chunk within the limit is passed on", "POST", AdminPasskeysImportPath, `{"communityId":"c","firstLine":1,"lines":["{}"],"dryRun":true}`, 200},
		{"a chunk over the import's body limit is 413", "POST", AdminPasskeysImportPath, huge, 413},
		{"a chunk that is no JSON is 400", "POST", AdminPasskeysImportPath, `{"lines":`, 400},
		{"a run's counts are written to the audit trail", "POST", AdminPasskeysImportedPath, `{"communityId":"c","imported":3,"outcome":"ok"}`, 200},
		{"a run's outcome is a code, not free text", "POST", AdminPasskeysImportedPath, `{"communityId":"c","outcome":"ok; rm -rf"}`, 400},
		{"negative counts are refused", "POST", AdminPasskeysImportedPath, `{"communityId":"c","imported":-1,"outcome":"ok"}`, 400},
		{"an export without a store to read is 404", "GET", AdminPasskeysExportPath + "?community=c", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)))
			if rec.Code != tc.status {
				t.Fatalf("%s %s = %d %s; want %d", tc.method, tc.path, rec.Code, rec.Body.String(), tc.status)
			}
		})
	}
	if len(got) != 1 || got[0].CommunityID != "c" || !got[0].DryRun || got[0].FirstLine != 1 {
		t.Fatalf("the importer got %+v; want the one chunk within the limit", got)
	}
	if lines := strings.Count(recorded.String(), "passkeys.imported"); lines != 1 || !strings.Contains(recorded.String(), `"imported":3`) {
		t.Fatalf("audit trail:\n%s\nwant one passkeys.imported line with imported 3", recorded.String())
	}
}

// oneByOne hides a store's PasskeyLookups: the importer then reads each line on its own.
type oneByOne struct{ PasskeyStore }

// TestPasskeyImporterReadsAlike: the importer judges a chunk the same whether the store reads
// its lines in three batched reads (PasskeyLookups) or three reads per line.
func TestPasskeyImporterReadsAlike(t *testing.T) {
	store, err := badger.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := persistence.ApplyOne(t.Context(), store, persistence.PutCommunity{Create: true, Community: persistence.Community{
		ID: "shop", TenantID: "shop", Name: "shop", RPIDs: []string{"shop.example"}, Origins: []string{"https://shop.example"},
		UserVerification: persistence.VerificationPreferred}}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	cred := func(id, user, handle string) (persistence.User, persistence.Credential) {
		u := persistence.User{CommunityID: "shop", Username: user, DisplayName: user, Handle: []byte(handle), Created: at}
		return u, persistence.Credential{ID: []byte(id), CommunityID: "shop", Username: user, UserHandle: []byte(handle),
			RPID: "shop.example", PublicKey: []byte("key-" + id), Algorithm: -7, Created: at}
	}
	su, sc := cred("stored", "alice", "ha")
	if err := store.Import(t.Context(), []persistence.User{su}, []persistence.Credential{sc}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, rec := range [][3]string{
		{"new-4", "carol", "ha"},  // alice's stored handle, before any line of alice: refused
		{"stored", "alice", "ha"}, // the stored passkey: skipped
		{"new-1", "alice", "ha"},  // a new passkey of alice
		{"new-2", "bob", "hb"},    // a new user
		{"new-3", "alice", "hx"},  // alice with another handle: refused
	} {
		u, c := cred(rec[0], rec[1], rec[2])
		raw, _ := json.Marshal(PasskeyLineOf(u, c))
		lines = append(lines, string(raw))
	}
	other, _ := json.Marshal(PasskeyLineOf(cred("stored", "dave", "hd"))) // the stored id, another user: refused
	lines = append(lines, string(other))
	req := PasskeyImport{CommunityID: "shop", FirstLine: 1, Lines: lines, DryRun: true}
	noKeyCheck := func([]byte, int64) error { return nil }
	batched, err := PasskeyImporter{Store: store, CheckKey: noKeyCheck}.Import(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	single, err := PasskeyImporter{Store: oneByOne{store}, CheckKey: noKeyCheck}.Import(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(batched, single) {
		t.Fatalf("batched reads: %+v\none by one: %+v", batched, single)
	}
	var refused []int
	for _, r := range batched.Refused {
		refused = append(refused, r.Line)
	}
	if batched.Skipped != 1 || !reflect.DeepEqual(refused, []int{1, 5, 6}) {
		t.Fatalf("report %+v; want line 2 skipped, lines 1, 5 and 6 refused", batched)
	}
}
