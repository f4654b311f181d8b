package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/persistence/postgres/pgtest"
)

// b64 is base64url without padding, as the lines carry binary values.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// lineOf is the import line of a software passkey p of user handle, in the default community.
func lineOf(p *passkey, handle []byte) httpapi.PasskeyLine {
	created := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	return httpapi.PasskeyLine{
		CommunityID: "elsewhere", RPID: p.rp.ID, Username: p.username, DisplayName: "Imported " + p.username,
		UserHandle: b64(handle), CredentialID: b64(p.cred.ID), PublicKey: b64(p.cred.Key.AttestationData()),
		Algorithm: -7, SignCount: 0, Transports: []string{"internal", "hybrid"}, AAGUID: "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4",
		AttestationFormat: "none", UserVerified: true, CreatedAt: &created,
	}
}

// encodeLines is lines as a file's text, one JSON object a line.
func encodeLines(t *testing.T, lines ...any) string {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		if s, ok := l.(string); ok {
			b.WriteString(s + "\n")
			continue
		}
		raw, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// writeFile writes text to a new file of the test and returns its name.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "passkeys.jsonl")
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// runOn runs webauthnd with args on dataDir and returns stdout, stderr and its error.
func runOn(dataDir string, args ...string) (string, string, error) {
	return runCommand(append(args, "--data-dir", dataDir)...)
}

// imported makes the software passkey p sign in as the imported user of handle.
func imported(p *passkey, handle []byte) *passkey {
	p.auth.Options.UserHandle = handle
	p.auth.AddCredential(p.cred)
	return p
}

// TestImportedPasskeysSignIn: passkeys whose keys the test made, imported while the server runs
// (through its admin socket), sign in by username and as discoverable credentials; a user with
// two passkeys keeps one handle; running the import again skips every line.
func TestImportedPasskeysSignIn(t *testing.T) {
	s := startServer(t, "")
	aliceHandle, bobHandle := []byte("alice-handle-0123456789"), []byte("bob-handle-0123456789")
	alice1, alice2, bob := newPasskey(localRP, "alice"), newPasskey(localRP, "alice"), newPasskey(localRP, "bob")
	// Bob's second line comes after others: a user's lines need not be together.
	file := writeFile(t, encodeLines(t, lineOf(alice1, aliceHandle), lineOf(bob, bobHandle), "", lineOf(alice2, aliceHandle)))

	out := s.admin(t, "passkeys", "import", "--community", "default", "--in", file)
	if !strings.Contains(out, "imported 3 passkeys (2 new users)") {
		t.Fatalf("import said %q", out)
	}
	for _, p := range []*passkey{imported(alice1, aliceHandle), imported(alice2, aliceHandle), imported(bob, bobHandle)} {
		for _, byUsername := range []bool{true, false} {
			res := s.signIn(t, s.License, "default", p, byUsername)
			if res["data"].(map[string]any)["sub"] != p.username {
				t.Fatalf("sign-in of %s (by username %v) = %v", p.username, byUsername, res)
			}
		}
	}
	// After those sign-ins the counters moved on: the lines are still the stored passkeys.
	out = s.admin(t, "passkeys", "import", "--community", "default", "--in", file)
	if !strings.Contains(out, "imported 0 passkeys (0 new users)") || !strings.Contains(out, "3 already stored, skipped") {
		t.Fatalf("second import said %q; want everything skipped", out)
	}
}

// TestExportImportSameAnswers: a community's passkeys exported from one server (while it runs)
// and imported into an empty store (with no server, straight to the store) give the same
// answers there: link status, and sign-ins by the same authenticators.
func TestExportImportSameAnswers(t *testing.T) {
	a := startServer(t, "")
	alice, bob := newPasskey(localRP, "alice"), newPasskey(localRP, "bob")
	a.register(t, a.License, "default", alice)
	a.register(t, a.License, "default", bob)
	a.signIn(t, a.License, "default", alice, true)
	if status, body, _ := a.call(t, "PUT", linkPath("/webauthn/u1", "default", "did:example:alice", "alice", fidoKeyHashOf(alice)), lic(a.License), nil); status != 200 {
		t.Fatalf("link: %d %v", status, body)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if out := a.admin(t, "passkeys", "export", "--community", "default", "--out", file); !strings.Contains(out, "exported 2 passkeys") {
		t.Fatalf("export said %q", out)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v; want mode 0600", st, err)
	}

	// An empty store: a server makes its default community, then stops.
	dir := t.TempDir()
	b := startServer(t, dir)
	b.stop(t)
	if out, errOut, err := runOn(dir, "passkeys", "import", "--community", "default", "--in", file); err != nil || !strings.Contains(out, "imported 2 passkeys (2 new users)") {
		t.Fatalf("import without a server: %v %q %s", err, out, errOut)
	}
	b = startServer(t, dir)
	for _, user := range []string{"alice", "bob"} {
		_, want, _ := a.callRaw(t, "GET", statusPath("/webauthn/u1", "default", user), lic(a.License), nil)
		_, got, _ := b.callRaw(t, "GET", statusPath("/webauthn/u1", "default", user), lic(b.License), nil)
		if !bytes.Equal(got, want) {
			t.Errorf("link status of %s after the move:\n got %s\nwant %s", user, got, want)
		}
	}
	for _, p := range []*passkey{alice, bob} {
		res := b.signIn(t, b.License, "default", p, false)
		if res["data"].(map[string]any)["sub"] != p.username {
			t.Fatalf("sign-in of %s after the move = %v", p.username, res)
		}
	}
	// What b exports now is what a exported, but for what the sign-ins since changed.
	again := filepath.Join(t.TempDir(), "again.jsonl")
	b.admin(t, "passkeys", "export", "--community", "default", "--out", again)
	before, after := readLines(t, file), readLines(t, again)
	if len(before) != len(after) {
		t.Fatalf("export after the move has %d lines; want %d", len(after), len(before))
	}
	for i := range before {
		before[i].SignCount, after[i].SignCount, before[i].LastUsedAt, after[i].LastUsedAt = 0, 0, nil, nil
		x, _ := json.Marshal(before[i])
		y, _ := json.Marshal(after[i])
		if !bytes.Equal(x, y) {
			t.Errorf("line %d after the move:\n got %s\nwant %s", i+1, y, x)
		}
	}
}

// readLines reads an export.
func readLines(t *testing.T, name string) []httpapi.PasskeyLine {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []httpapi.PasskeyLine
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var pl httpapi.PasskeyLine
		if err := json.Unmarshal([]byte(l), &pl); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		out = append(out, pl)
	}
	return out
}

// TestPasskeyImportRefusals: each bad line is reported with its number and reason, and the
// import writes nothing, not even its good lines (all or nothing per run).
func TestPasskeyImportRefusals(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	stored := newPasskey(localRP, "stored")
	s.register(t, s.License, "default", stored)
	storedHandle := stored.auth.Options.UserHandle
	s.stop(t)

	handle := []byte("carol-handle")
	good := func(change func(*httpapi.PasskeyLine)) httpapi.PasskeyLine {
		l := lineOf(newPasskey(localRP, "carol"), handle)
		if change != nil {
			change(&l)
		}
		return l
	}
	first := good(nil) // line 1 of every file: valid on its own
	rsa := newPasskey(localRP, "carol")
	for _, tc := range []struct {
		name   string
		lines  []any // after line 1
		line   int
		reason string
	}{
		{"bad JSON", []any{`{"username": "carol",`}, 2, "not valid JSON"},
		{"an unknown field", []any{`{"communityId":"x","rpId":"localhost","username":"dave","userHandle":"aGg","credentialId":"aWQ","publicKey":"cGs","algorithm":-7,"counter":3}`}, 2, `unknown field "counter"`},
		{"a field spelt in another case", []any{strings.Replace(encodeLines(t, good(nil)), `"username"`, `"userName"`, 1)}, 2, "userName"},
		{"a field twice", []any{strings.Replace(encodeLines(t, good(nil)), `{`, `{"username":"x",`, 1)}, 2, "twice"},
		{"an rpId that is not the community's", []any{good(func(l *httpapi.PasskeyLine) { l.RPID = "evil.example" })}, 2, `rpId "evil.example" is not one of community "default"'s RP IDs`},
		{"a public key that is no COSE key", []any{good(func(l *httpapi.PasskeyLine) { l.PublicKey = b64([]byte("not a key")) })}, 2, "not a COSE key"},
		{"an algorithm other than the key's", []any{good(func(l *httpapi.PasskeyLine) { l.Algorithm = -257 })}, 2, "the COSE key's own algorithm is -7"},
		{"a credential id twice in the file", []any{good(func(l *httpapi.PasskeyLine) {
			l.CredentialID = first.CredentialID
			l.PublicKey = b64(rsa.cred.Key.AttestationData())
		})}, 2, "credentialId is also on line 1"},
		{"a credential id stored with other content", []any{good(func(l *httpapi.PasskeyLine) { l.CredentialID = b64(stored.cred.ID) })}, 2, "stored already, as another passkey"},
		{"a username with another handle in the file", []any{good(func(l *httpapi.PasskeyLine) { l.UserHandle = b64([]byte("other")) })}, 2, `user "carol" has another userHandle`},
		{"a handle of another username in the file", []any{good(func(l *httpapi.PasskeyLine) { l.Username = "dave" })}, 2, "userHandle is"},
		{"a username stored with another handle", []any{good(func(l *httpapi.PasskeyLine) { l.Username = "stored"; l.UserHandle = b64([]byte("x")) })}, 2, `user "stored" exists with another userHandle`},
		{"a handle stored for another username", []any{good(func(l *httpapi.PasskeyLine) { l.Username = "erin"; l.UserHandle = b64(storedHandle) })}, 2, `userHandle belongs to user "stored"`},
		{"a credential id that is not base64url", []any{good(func(l *httpapi.PasskeyLine) { l.CredentialID = "ab+/cd==" })}, 2, "credentialId is not base64url"},
		{"a padded user handle", []any{good(func(l *httpapi.PasskeyLine) {
			l.UserHandle = base64.URLEncoding.EncodeToString([]byte("carol-handle!"))
		})}, 2, "userHandle is not base64url"},
		{"a missing public key", []any{good(func(l *httpapi.PasskeyLine) { l.PublicKey = "" })}, 2, "publicKey is missing"},
		{"an AAGUID that is no UUID", []any{good(func(l *httpapi.PasskeyLine) { l.AAGUID = "yubikey" })}, 2, "aaguid"},
		{"a bad line after blank ones keeps its number", []any{"", "  ", "{}"}, 4, "userHandle is missing"},
		{"a line that is not UTF-8", []any{"{\"username\":\"\xff\"}"}, 2, "not valid UTF-8"},
		{"a line too long", []any{`{"displayName":"` + strings.Repeat("x", httpapi.MaxPasskeyLineBytes) + `"}`}, 2, "longer than 16 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, encodeLines(t, append([]any{first}, tc.lines...)...))
			out, errOut, err := runOn(dir, "passkeys", "import", "--community", "default", "--in", file)
			if err == nil || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("import = %v (%q); want a refusal that wrote nothing", err, out)
			}
			want := "line " + strconv.Itoa(tc.line) + ": "
			var found string
			for _, l := range strings.Split(errOut, "\n") {
				if strings.HasPrefix(l, want) {
					found = l
				}
			}
			if found == "" || !strings.Contains(found, tc.reason) {
				t.Fatalf("report:\n%s\nwant %q with %q", errOut, want, tc.reason)
			}
			if strings.Contains(errOut, "line 1: ") {
				t.Fatalf("the good line 1 was refused too:\n%s", errOut)
			}
			wantExported(t, dir, 1) // only the stored passkey: line 1 was not written
		})
	}
}

// wantExported checks how many passkeys the default community of dir holds, by an export.
func wantExported(t *testing.T, dir string, n int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "check.jsonl")
	out, errOut, err := runOn(dir, "passkeys", "export", "--community", "default", "--out", file)
	if err != nil {
		t.Fatalf("export: %v %s", err, errOut)
	}
	if want := "exported " + strconv.Itoa(n) + " passkeys"; !strings.Contains(out, want) {
		t.Fatalf("export said %q; want %q", out, want)
	}
}

// TestPasskeyImportDryRun: --dry-run checks and counts every line and writes nothing; the same
// file imported afterwards writes it all.
func TestPasskeyImportDryRun(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir).stop(t)
	file := writeFile(t, encodeLines(t, lineOf(newPasskey(localRP, "a"), []byte("ha")), lineOf(newPasskey(localRP, "b"), []byte("hb"))))
	out, errOut, err := runOn(dir, "passkeys", "import", "--community", "default", "--in", file, "--dry-run")
	if err != nil || !strings.Contains(out, "dry run: 2 lines checked: 2 passkeys to import (2 new users), 0 already stored; nothing written") {
		t.Fatalf("dry run: %v %q %s", err, out, errOut)
	}
	wantExported(t, dir, 0)
	if out, errOut, err := runOn(dir, "passkeys", "import", "--community", "default", "--in", file); err != nil || !strings.Contains(out, "imported 2 passkeys") {
		t.Fatalf("import: %v %q %s", err, out, errOut)
	}
	wantExported(t, dir, 2)
}

// TestPasskeyCommandsRefuseMistakes: what an operator may get wrong is said plainly.
func TestPasskeyCommandsRefuseMistakes(t *testing.T) {
	dir := t.TempDir()
	startServer(t, dir).stop(t)
	file := writeFile(t, encodeLines(t, lineOf(newPasskey(localRP, "a"), []byte("ha"))))
	outDir := t.TempDir()
	outFile := filepath.Join(outDir, "x")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no community", []string{"passkeys", "import", "--in", file}, "--community is required"},
		{"no file to read", []string{"passkeys", "import", "--community", "default"}, "--in is required"},
		{"no file to write", []string{"passkeys", "export", "--community", "default"}, "--out is required"},
		{"an unknown community to import into", []string{"passkeys", "import", "--community", "nope", "--in", file}, `community "nope" does not exist`},
		{"an unknown community to export", []string{"passkeys", "export", "--community", "nope", "--out", outFile}, `community "nope" does not exist`},
		{"a file that does not exist", []string{"passkeys", "import", "--community", "default", "--in", filepath.Join(dir, "missing")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runOn(dir, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("webauthnd %v = %v; want %q", tc.args, err, tc.want)
			}
		})
	}
	// A failed export leaves nothing behind: no file that looks like a (short) export.
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		t.Fatalf("a failed export left %v", left)
	}
}

// passkeyAuditLines are the passkeys.imported lines of an audit log, values as JSON gave them.
func passkeyAuditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var line map[string]any
		if l == "" || json.Unmarshal([]byte(l), &line) != nil || line["event"] != "passkeys.imported" {
			continue
		}
		out = append(out, line)
	}
	return out
}

// TestPasskeyImportAuditLine: every import run that could write leaves exactly one
// passkeys.imported line with its community, outcome and counts, written by the server when
// the run went through its socket and by the command when it wrote straight to the store; a dry
// run leaves none.
func TestPasskeyImportAuditLine(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.log")
	good := writeFile(t, encodeLines(t, lineOf(newPasskey(localRP, "a"), []byte("ha")), lineOf(newPasskey(localRP, "b"), []byte("hb"))))
	bad := writeFile(t, encodeLines(t, lineOf(newPasskey(localRP, "c"), []byte("hc")), "{}"))
	want := func(n int, outcome string, counts map[string]float64) {
		t.Helper()
		lines := passkeyAuditLines(t, log)
		if len(lines) != n {
			t.Fatalf("%d passkeys.imported lines; want %d: %v", len(lines), n, lines)
		}
		l := lines[n-1]
		if l["outcome"] != outcome || l["community"] != "default" || l["remoteAddr"] != "local" {
			t.Fatalf("audit line %v; want outcome %s in community default, from local", l, outcome)
		}
		for k, v := range counts {
			if l[k] != v {
				t.Fatalf("audit line %v: %s = %v; want %v", l, k, l[k], v)
			}
		}
	}
	startServer(t, dir).stop(t)

	runOn(dir, "passkeys", "import", "--community", "default", "--in", good, "--dry-run")
	if n := len(passkeyAuditLines(t, log)); n != 0 {
		t.Fatalf("a dry run left %d audit lines", n)
	}
	if _, errOut, err := runOn(dir, "passkeys", "import", "--community", "default", "--in", good); err != nil {
		t.Fatalf("import: %v %s", err, errOut)
	}
	want(1, "ok", map[string]float64{"imported": 2, "skipped": 0, "refused": 0, "users": 2})
	runOn(dir, "passkeys", "import", "--community", "default", "--in", bad)
	want(2, "invalid_request", map[string]float64{"imported": 0, "refused": 1})

	s := startServer(t, dir)
	s.admin(t, "passkeys", "import", "--community", "default", "--in", good)
	want(3, "ok", map[string]float64{"imported": 0, "skipped": 2, "refused": 0})
	runOn(dir, "passkeys", "import", "--community", "default", "--in", bad)
	want(4, "invalid_request", map[string]float64{"refused": 1})
}

// TestPasskeysOverPostgres: over --store, both commands work on the database while its nodes
// run (a management command always opens the database itself): a passkey registered on one
// database, exported and imported into another, signs in on a node of the second, and the
// audit line of the import goes to --audit-log.
func TestPasskeysOverPostgres(t *testing.T) {
	pgtest.Require(t)
	from, to := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	a := startNodes(t, from, 1)[0]
	a.License = strings.TrimSpace(readFileString(t, filepath.Join(a.DataDir, defaultKeyFile)))
	alice := newPasskey(localRP, "alice")
	a.register(t, a.License, "default", alice)
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if out := mustRun(t, "passkeys", "export", "--store", from, "--community", "default", "--out", file); !strings.Contains(out, "exported 1 passkeys") {
		t.Fatalf("export said %q", out)
	}
	b := startNodes(t, to, 1)[0]
	b.License = strings.TrimSpace(readFileString(t, filepath.Join(b.DataDir, defaultKeyFile)))
	log := filepath.Join(t.TempDir(), "audit.log")
	if out := mustRun(t, "passkeys", "import", "--store", to, "--community", "default", "--in", file, "--audit-log", log); !strings.Contains(out, "imported 1 passkeys") {
		t.Fatalf("import said %q", out)
	}
	if res := b.signIn(t, b.License, "default", alice, true); res["data"].(map[string]any)["sub"] != "alice" {
		t.Fatalf("sign-in after the move = %v", res)
	}
	if lines := passkeyAuditLines(t, log); len(lines) != 1 || lines[0]["imported"] != float64(1) {
		t.Fatalf("audit lines %v; want one with imported 1", lines)
	}
}

func readFileString(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestPasskeyImportChunksFitTheSocket: lines whose JSON escapes double them (a display name
// of quotes) still go through a running server's admin socket: chunks are cut by their size
// in the request, not in the file, so none exceeds the route's body limit.
func TestPasskeyImportChunksFitTheSocket(t *testing.T) {
	s := startServer(t, "")
	quotes := strings.Repeat(`"`, 7000) // 14,000 bytes in the file, 28,000 in a request
	var lines []any
	for i := range 1300 {
		l := lineOf(newPasskey(localRP, "user-"+strconv.Itoa(i)), []byte("handle-"+strconv.Itoa(i)))
		l.DisplayName = quotes
		lines = append(lines, l)
	}
	file := writeFile(t, encodeLines(t, lines...))
	if out := s.admin(t, "passkeys", "import", "--community", "default", "--in", file); !strings.Contains(out, "imported 1300 passkeys") {
		t.Fatalf("import said %q", out)
	}
}
