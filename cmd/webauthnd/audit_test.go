package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence/postgres/pgtest"
)

// auditLines reads an audit log: one JSON object of strings per line.
func auditLines(t *testing.T, path string) []map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the audit log: %v", err)
	}
	var out []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var line map[string]string
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("an audit line is not a JSON object of strings: %v: %s", err, sc.Bytes())
		}
		out = append(out, line)
	}
	return out
}

// auditSecrets collects what must never reach the audit trail: license keys, challenges,
// clientDataJSON, authenticator data, signatures, attestation objects and tokens.
type auditSecrets []string

func (s *auditSecrets) add(values ...any) {
	for _, v := range values {
		switch v := v.(type) {
		case string:
			if v != "" {
				*s = append(*s, v)
			}
		case []byte:
			*s = append(*s, base64.RawURLEncoding.EncodeToString(v), base64.StdEncoding.EncodeToString(v))
		}
	}
}

// addResponse collects the binary members of a credential's response.
func (s *auditSecrets) addResponse(body map[string]any) {
	response, _ := body["response"].(map[string]any)
	for _, k := range []string{"clientDataJSON", "attestationObject", "authenticatorData", "signature"} {
		if v, ok := response[k].(string); ok {
			s.add(v)
		}
	}
}

// licenseCreate runs `license create` and returns the key (stdout) and the license id (stderr).
func licenseCreate(t *testing.T, args ...string) (key, id string) {
	t.Helper()
	stdout, stderr, err := runCommand(append([]string{"license", "create"}, args...)...)
	if err != nil {
		t.Fatalf("license create: %v\n%s", err, stderr)
	}
	m := regexp.MustCompile(`license id (\S+) `).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("license create said no id: %s", stderr)
	}
	return strings.TrimSpace(stdout), m[1]
}

const anyValue = "?" // in a wanted line: present, whatever its value

// TestAuditTrail is the spec of the audit trail, one event kind after another through real
// ceremonies, the admin socket and the CLI: each change writes exactly one line, with exactly
// the fields wanted, before its answer (the file is read as soon as the answer is in); a
// request refused before it reaches the engine writes none; and no license key, challenge,
// client data, signature or token is ever in the file.
func TestAuditTrail(t *testing.T) {
	mds := mdsTestFiles(t)
	s := startServer(t, "")
	path := filepath.Join(s.DataDir, "audit.log")
	var secrets auditSecrets
	secrets.add(s.License)
	sealed := newSealedClient(t, s)
	alice := newPasskey(localRP, "alice")
	var shopKey, shopLicense string
	const requestID = "0e5a1a4e-8c1f-4f47-9d33-3f2d1b8a7c11"
	did := "did:web:example.com:alice"
	aliceHash := func() string { return fidoKeyHashOf(alice) }

	// signIn runs a sign-in of alice with the caller's request id, collecting its secrets, and
	// returns the result's status and body. clientData, when set, changes the client data.
	signIn := func(t *testing.T, byUsername bool, clientData map[string]any) (int, map[string]any) {
		username := ""
		if byUsername {
			username = alice.username
		}
		opts, _ := s.signInOptions(t, s.License, "default", "localhost", username)
		secrets.add(opts.Challenge)
		alice.cred.Counter++
		cred := virtualwebauthn.CreateAssertionResponse(alice.rp, alice.auth, alice.cred, *opts)
		if clientData != nil {
			cred = assertion(alice, opts, clientData, flagUP|flagUV, alice.cred.Counter)
		}
		body := ceremonyBody(t, cred, "localhost", "default")
		secrets.addResponse(body)
		headers := lic(s.License)
		headers["requestid"] = requestID
		st, res, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", headers, body)
		if tok, ok := res["signature_token"].(string); ok {
			secrets.add(tok)
		}
		return st, res
	}
	u1 := func(t *testing.T, method, path string, want int) {
		t.Helper()
		if st, body, _ := s.call(t, method, path, lic(s.License), nil); st != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, st, body, want)
		}
	}
	vendorPut := map[string]any{"aaguid": aaguidYubikey, "metadata": yubikeyStatement(t), "name": "YubiKey 5", "updatedBy": "ops@example.com"}

	ceremony := func(event string) map[string]string {
		return map[string]string{"event": event, "outcome": "ok", "tenant": "default", "community": "default", "username": "alice",
			"fidoKeyHash": anyValue, "licenseId": defaultLicenseID, "remoteAddr": "127.0.0.1", "requestId": requestID}
	}
	passkeyChange := func(event, outcome string, extra ...string) map[string]string {
		m := map[string]string{"event": event, "outcome": outcome, "tenant": "default", "community": "default",
			"licenseId": defaultLicenseID, "remoteAddr": "127.0.0.1", "requestId": anyValue}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	local := func(event string, extra ...string) map[string]string {
		m := map[string]string{"event": event, "outcome": "ok", "remoteAddr": "local", "requestId": anyValue}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}

	steps := []struct {
		name string
		do   func(t *testing.T)
		// want is the one line the step writes (nil: none); its time is checked apart.
		want func() map[string]string
	}{
		{"community created", func(t *testing.T) {
			s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--rp-id", "shop.localhost", "--origin", "https://shop.localhost")
		}, func() map[string]string { return local("community.created", "community", "shop", "tenant", "acme") }},
		{"community changed", func(t *testing.T) {
			s.admin(t, "community", "update", "--id", "shop", "--user-verification", "required")
		}, func() map[string]string { return local("community.changed", "community", "shop") }},
		{"license created", func(t *testing.T) {
			shopKey, shopLicense = licenseCreate(t, "--level", "community", "--community", "shop", "--data-dir", s.DataDir)
			secrets.add(shopKey)
		}, func() map[string]string {
			return local("license.created", "licenseId", shopLicense, "community", "shop")
		}},
		{"registration", func(t *testing.T) {
			opts, _ := s.registrationOptions(t, s.License, "default", alice)
			secrets.add(opts.Challenge)
			body := ceremonyBody(t, virtualwebauthn.CreateAttestationResponse(alice.rp, alice.auth, alice.cred, *opts), "localhost", "default")
			secrets.addResponse(body)
			headers := lic(s.License)
			headers["requestid"] = requestID
			if st, res, _ := s.call(t, "POST", "/webauthn/u1/attestation/result", headers, body); st != 200 {
				t.Fatalf("registration: %d %v", st, res)
			}
			alice.auth.Options.UserHandle = []byte(opts.UserID)
			alice.auth.AddCredential(alice.cred)
		}, func() map[string]string { m := ceremony("registration"); m["fidoKeyHash"] = aliceHash(); return m }},
		{"sign-in", func(t *testing.T) {
			if st, res := signIn(t, true, nil); st != 200 {
				t.Fatalf("sign-in: %d %v", st, res)
			}
		}, func() map[string]string { m := ceremony("signin"); m["fidoKeyHash"] = aliceHash(); return m }},
		{"discoverable sign-in", func(t *testing.T) {
			if st, res := signIn(t, false, nil); st != 200 {
				t.Fatalf("discoverable sign-in: %d %v", st, res)
			}
		}, func() map[string]string {
			m := ceremony("signin.discoverable")
			m["fidoKeyHash"] = aliceHash()
			return m
		}},
		{"failed sign-in, with its code", func(t *testing.T) {
			if st, res := signIn(t, true, map[string]any{"origin": "https://evil.example"}); st != 400 || res["code"] != "origin_not_allowed" {
				t.Fatalf("sign-in from another origin: %d %v", st, res)
			}
		}, func() map[string]string {
			// The engine names no user for a failure: the passkey presented names its owner.
			m := ceremony("signin")
			m["outcome"], m["fidoKeyHash"] = "origin_not_allowed", aliceHash()
			delete(m, "username")
			return m
		}},
		{"failed discoverable sign-in: the same event as its success", func(t *testing.T) {
			if st, res := signIn(t, false, map[string]any{"origin": "https://evil.example"}); st != 400 || res["code"] != "origin_not_allowed" {
				t.Fatalf("discoverable sign-in from another origin: %d %v", st, res)
			}
		}, func() map[string]string {
			m := ceremony("signin.discoverable")
			m["outcome"], m["fidoKeyHash"] = "origin_not_allowed", aliceHash()
			delete(m, "username")
			return m
		}},
		{"a request refused before the engine writes no line", func(t *testing.T) {
			st, _, _ := s.call(t, "POST", "/webauthn/u1/assertion/result", lic("not-a-license"), map[string]any{"dns": "localhost"})
			if st != 401 {
				t.Fatalf("a bad license answered %d", st)
			}
		}, nil},
		{"passkey linked", func(t *testing.T) {
			u1(t, "PUT", linkPath("/webauthn/u1", "default", did, "alice", aliceHash()), 200)
		}, func() map[string]string {
			return passkeyChange("passkey.linked", "ok", "username", "alice", "fidoKeyHash", aliceHash(), "did", did)
		}},
		{"passkey linked to another DID: refused, with its code", func(t *testing.T) {
			u1(t, "PUT", linkPath("/webauthn/u1", "default", "did:example:other", "alice", aliceHash()), 409)
		}, func() map[string]string {
			return passkeyChange("passkey.linked", "conflict", "username", "alice", "fidoKeyHash", aliceHash(), "did", "did:example:other")
		}},
		{"passkey unlinked", func(t *testing.T) {
			u1(t, "DELETE", linkPath("/webauthn/u1", "default", did, "alice", aliceHash()), 200)
		}, func() map[string]string {
			return passkeyChange("passkey.unlinked", "ok", "username", "alice", "fidoKeyHash", aliceHash(), "did", did)
		}},
		{"passkey linked on the sealed route", func(t *testing.T) {
			if st, body := sealed.call(t, s, "PUT", linkPath("/webauthn", "default", did, "alice", aliceHash()), s.License); st != 200 {
				t.Fatalf("sealed link: %d %v", st, body)
			}
		}, func() map[string]string {
			return passkeyChange("passkey.linked", "ok", "username", "alice", "fidoKeyHash", aliceHash(), "did", did)
		}},
		{"vendor metadata created", func(t *testing.T) {
			if st, raw, _ := s.callRaw(t, "PUT", "/webauthn/vendormetadata/default", lic(s.License), vendorPut); st != 200 {
				t.Fatalf("vendor PUT: %d %s", st, raw)
			}
		}, func() map[string]string {
			return passkeyChange("vendor_metadata.changed", "ok", "aaguid", aaguidYubikey)
		}},
		{"vendor metadata changed", func(t *testing.T) {
			if st, raw, _ := s.callRaw(t, "PATCH", "/webauthn/vendormetadata/default/aaguid/"+aaguidYubikey, lic(s.License),
				map[string]any{"disabled": true, "updatedBy": "ops@example.com"}); st != 200 {
				t.Fatalf("vendor PATCH: %d %s", st, raw)
			}
		}, func() map[string]string {
			return passkeyChange("vendor_metadata.changed", "ok", "aaguid", aaguidYubikey)
		}},
		{"keys rotated", func(t *testing.T) { s.admin(t, "keys", "rotate", "--signing") },
			func() map[string]string { return local("keys.rotated") }},
		{"MDS imported", func(t *testing.T) {
			s.admin(t, "metadata", "import", "--blob", mds.blob9, "--root", mds.rootR3, "--at", atBlob9)
		}, func() map[string]string { return local("mds.imported") }},
		{"backup", func(t *testing.T) {
			if _, stderr, err := runCommand("backup", "--out", filepath.Join(t.TempDir(), "b"), "--data-dir", s.DataDir); err != nil {
				t.Fatalf("backup: %v %s", err, stderr)
			}
		}, func() map[string]string { return local("backup") }},
		{"license revoked", func(t *testing.T) { s.admin(t, "license", "revoke", "--id", shopLicense) },
			func() map[string]string { return local("license.revoked", "licenseId", shopLicense) }},
		{"passkey removed", func(t *testing.T) {
			u1(t, "DELETE", unregisterPath("/webauthn/u1", "default", "alice", aliceHash()), 200)
		}, func() map[string]string {
			return passkeyChange("passkey.removed", "ok", "username", "alice", "fidoKeyHash", aliceHash())
		}},
		{"passkey removed by DID, which names none any more: refused, with its code", func(t *testing.T) {
			u1(t, "DELETE", unregisterPath("/webauthn/u1", "default", "", did), 404)
		}, func() map[string]string { return passkeyChange("passkey.removed", "not_found", "did", did) }},
	}
	start := time.Now().Add(-time.Second)
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			before := len(auditLines(t, path))
			step.do(t)
			// Read as soon as the answer is in: the line was written before it.
			lines := auditLines(t, path)
			if step.want == nil {
				if len(lines) != before {
					t.Fatalf("wrote %d lines, want none: %v", len(lines)-before, lines[before:])
				}
				return
			}
			if len(lines) != before+1 {
				t.Fatalf("wrote %d lines, want 1: %v", len(lines)-before, lines[before:])
			}
			checkAuditLine(t, lines[before], step.want(), start)
		})
	}
	s.stop(t)

	// With no server running, the CLI writes the lines of what it writes to the store itself;
	// with no request, they have no request id.
	cli := func(event string, extra ...string) map[string]string {
		m := local(event, extra...)
		delete(m, "requestId")
		return m
	}
	var revokeID string
	direct := []struct {
		name string
		do   func(t *testing.T)
		want func() map[string]string
	}{
		{"community created", func(t *testing.T) {
			mustRun(t, "community", "create", "--id", "blog", "--tenant", "acme", "--rp-id", "blog.localhost", "--origin", "https://blog.localhost", "--data-dir", s.DataDir)
		}, func() map[string]string { return cli("community.created", "community", "blog", "tenant", "acme") }},
		{"community changed", func(t *testing.T) {
			mustRun(t, "community", "update", "--id", "blog", "--name", "Blog", "--data-dir", s.DataDir)
		}, func() map[string]string { return cli("community.changed", "community", "blog") }},
		{"license created", func(t *testing.T) {
			var key string
			key, revokeID = licenseCreate(t, "--level", "service", "--tenant", "acme", "--data-dir", s.DataDir)
			secrets.add(key)
		}, func() map[string]string { return cli("license.created", "licenseId", revokeID, "tenant", "acme") }},
		{"license revoked", func(t *testing.T) { mustRun(t, "license", "revoke", "--id", revokeID, "--data-dir", s.DataDir) },
			func() map[string]string { return cli("license.revoked", "licenseId", revokeID) }},
		{"keys rotated", func(t *testing.T) { mustRun(t, "keys", "rotate", "--envelope", "--data-dir", s.DataDir) },
			func() map[string]string { return cli("keys.rotated") }},
		{"MDS imported", func(t *testing.T) {
			mustRun(t, "metadata", "import", "--blob", mds.blob9, "--root", mds.rootR3, "--at", atBlob9, "--force", "--data-dir", s.DataDir)
		}, func() map[string]string { return cli("mds.imported") }},
		{"MDS import refused, with its code", func(t *testing.T) {
			if _, _, err := runCommand("metadata", "import", "--blob", mds.tampered, "--root", mds.rootR3, "--at", atBlob9, "--force", "--data-dir", s.DataDir); err == nil {
				t.Fatal("a tampered BLOB was imported")
			}
		}, func() map[string]string { m := cli("mds.imported"); m["outcome"] = anyValue; return m }},
		{"license listed: not an event", func(t *testing.T) { mustRun(t, "license", "list", "--data-dir", s.DataDir) }, nil},
	}
	backupFile := filepath.Join(t.TempDir(), "webauthnd.backup") // outlives the subtest that writes it
	direct = append(direct, struct {
		name string
		do   func(t *testing.T)
		want func() map[string]string
	}{"backup", func(t *testing.T) {
		mustRun(t, "backup", "--out", backupFile, "--data-dir", s.DataDir)
	}, func() map[string]string { return cli("backup") }})
	for _, step := range direct {
		t.Run("without a server/"+step.name, func(t *testing.T) {
			before := len(auditLines(t, path))
			step.do(t)
			lines := auditLines(t, path)
			if step.want == nil {
				if len(lines) != before {
					t.Fatalf("wrote %d lines, want none: %v", len(lines)-before, lines[before:])
				}
				return
			}
			if len(lines) != before+1 {
				t.Fatalf("wrote %d lines, want 1: %v", len(lines)-before, lines[before:])
			}
			checkAuditLine(t, lines[before], step.want(), start)
		})
	}
	t.Run("without a server/restore", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "restored")
		mustRun(t, "restore", "--in", backupFile, "--data-dir", dir)
		lines := auditLines(t, filepath.Join(dir, "audit.log"))
		if len(lines) != 1 {
			t.Fatalf("the restored data dir's audit log has %d lines, want 1: %v", len(lines), lines)
		}
		checkAuditLine(t, lines[0], cli("restore"), start)
	})

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range secrets {
		if len(secret) >= 16 && bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the audit log holds a secret: %.24s…", secret)
		}
	}
	if len(secrets) < 20 {
		t.Fatalf("only %d secrets collected: the check proves little", len(secrets))
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("audit.log mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
}

// checkAuditLine checks that line has exactly the fields of want (anyValue: present) and a
// time, in UTC, not before start and not in the future.
func checkAuditLine(t *testing.T, line, want map[string]string, start time.Time) {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, line["time"])
	if err != nil || !strings.HasSuffix(line["time"], "Z") || at.Before(start) || at.After(time.Now()) {
		t.Errorf("time %q (%v): want an ISO 8601 UTC time of now", line["time"], err)
	}
	for k, v := range want {
		switch got, ok := line[k]; {
		case !ok || got == "":
			t.Errorf("%s is missing (line %v)", k, line)
		case v != anyValue && got != v:
			t.Errorf("%s = %q, want %q (line %v)", k, got, v, line)
		}
	}
	for k := range line {
		if _, ok := want[k]; !ok && k != "time" {
			t.Errorf("unexpected field %s = %q (line %v)", k, line[k], line)
		}
	}
}

// TestAuditLogAcrossRestart: a restarted server appends to the audit log it wrote before,
// nothing truncated; X-Forwarded-For is ignored from a peer not trusted (a client could write
// any address there) and names the client behind a --trusted-proxy (here from
// WEBAUTHND_TRUSTED_PROXY, comma-separated).
func TestAuditLogAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	alice := newPasskey(localRP, "alice")
	link := func(s *testServer) {
		t.Helper()
		st, body, _ := s.call(t, "PUT", linkPath("/webauthn/u1", "default", "did:example:alice", "alice", fidoKeyHashOf(alice)),
			map[string]string{"licensekey": s.License, "X-Forwarded-For": "198.51.100.7"}, nil)
		if st != 200 {
			t.Fatalf("link: %d %v", st, body)
		}
	}

	s := startServer(t, dir)
	s.register(t, s.License, "default", alice)
	s.signIn(t, s.License, "default", alice, true)
	link(s)
	s.stop(t)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	s = launchNode(t, dir, map[string]string{"WEBAUTHND_TRUSTED_PROXY": "10.0.0.0/8, 127.0.0.1"})
	s.waitHealthy(t)
	key, _ := os.ReadFile(filepath.Join(dir, "default-license.key"))
	s.License = strings.TrimSpace(string(key))
	s.signIn(t, s.License, "default", alice, true)
	link(s)
	s.stop(t)

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, first) {
		t.Fatalf("the restart changed what the audit log held:\nbefore:\n%s\nafter:\n%s", first, raw)
	}
	var got []string
	for _, line := range auditLines(t, path) {
		got = append(got, line["event"]+" "+line["remoteAddr"])
	}
	// Each start writes what it creates itself: the default community and license on the
	// empty store, and the demo's license, re-keyed at every start.
	want := []string{"community.created local", "license.created local", "license.created local",
		"registration 127.0.0.1", "signin 127.0.0.1", "passkey.linked 127.0.0.1",
		"license.created local", "signin 127.0.0.1", "passkey.linked 198.51.100.7"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log across a restart:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAuditLogRotation: past --audit-log-max-size the log is renamed aside and a new one
// started (0600), no line lost or cut; --audit-log-keep bounds the files kept.
func TestAuditLogRotation(t *testing.T) {
	for _, keep := range []int{0, 1} {
		t.Run(fmt.Sprintf("keep %d", keep), func(t *testing.T) {
			dir := t.TempDir()
			flags := auditFlags{path: filepath.Join(dir, "audit.log"), maxSize: 1, keep: keep}
			audit, closeAudit, err := flags.open(dir, false, io.Discard, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Over 2 MiB of lines: two rotations or more at 1 MiB (lumberjack's smallest size).
			const n = 10_000
			for i := range n {
				audit.Record(messages.AuditEvent{Event: messages.AuditSignIn, Tenant: "default", Community: "default",
					Username: fmt.Sprintf("user%06d", i), FidoKeyHash: strings.Repeat("ab", 32), LicenseID: "default",
					RemoteAddr: "198.51.100.7", RequestID: "0e5a1a4e-8c1f-4f47-9d33-3f2d1b8a7c11"})
			}
			if err := closeAudit(); err != nil {
				t.Fatal(err)
			}
			files := func() []string {
				m, _ := filepath.Glob(filepath.Join(dir, "audit*.log"))
				return m
			}
			if keep == 0 {
				seen := map[string]bool{}
				for _, f := range files() {
					st, err := os.Stat(f)
					if err != nil || st.Mode().Perm() != 0o600 || st.Size() > 1<<20 {
						t.Fatalf("%s: %v, want mode 0600 and at most 1 MiB (%v)", f, st, err)
					}
					for _, line := range auditLines(t, f) {
						seen[line["username"]] = true
					}
				}
				if len(files()) < 3 || len(seen) != n {
					t.Fatalf("%d files holding %d distinct lines, want at least 3 (two rotations) and %d", len(files()), len(seen), n)
				}
				return
			}
			// lumberjack removes the files beyond keep in the background, after the rotation.
			for deadline := time.Now().Add(10 * time.Second); len(files()) > keep+1; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d files kept, want the log and %d rotated: %v", len(files()), keep, files())
				}
			}
		})
	}
}

// TestAuditLogThatCannotBeOpenedStopsTheStart: a server refuses to start without its audit
// trail, saying which file and what to do; "-" writes it to stderr.
func TestAuditLogThatCannotBeOpenedStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, path string }{
		{"a missing directory", filepath.Join(dir, "missing", "audit.log")},
		{"a directory", dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCommand("serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--audit-log", tc.path)
			if err == nil || !strings.Contains(err.Error(), "--audit-log "+tc.path+" cannot be opened") {
				t.Fatalf("serve with --audit-log %s: %v", tc.path, err)
			}
		})
	}
	for _, bad := range [][]string{{"--audit-log-max-size", "0"}, {"--audit-log-keep", "-1"}, {"--trusted-proxy", "proxy.example.com"}} {
		if _, _, err := runCommand(append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}, bad...)...); err == nil ||
			!strings.Contains(err.Error(), bad[0]) {
			t.Fatalf("serve %v: %v", bad, err)
		}
	}
	t.Run("stderr", func(t *testing.T) {
		s := startServer(t, "", "--audit-log", "-")
		s.register(t, s.License, "default", newPasskey(localRP, "alice"))
		if !strings.Contains(s.stderr.String(), `"event":"registration","outcome":"ok"`) {
			t.Fatalf("no registration line on stderr:\n%s", s.stderr.String())
		}
		if _, err := os.Stat(filepath.Join(s.DataDir, "audit.log")); err == nil {
			t.Fatal("--audit-log - wrote audit.log too")
		}
	})
}

// BenchmarkAuditRecord is the cost of one sign-in's audit line: encoding and one write(2) to
// the rotating file, no fsync.
func BenchmarkAuditRecord(b *testing.B) {
	dir := b.TempDir()
	audit, closeAudit, err := auditFlags{maxSize: 100, keep: 1}.open(dir, false, io.Discard, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer closeAudit()
	e := messages.AuditEvent{Event: messages.AuditSignIn, Tenant: "default", Community: "default", Username: "alice",
		FidoKeyHash: strings.Repeat("ab", 32), LicenseID: "default", RemoteAddr: "198.51.100.7",
		RequestID: "0e5a1a4e-8c1f-4f47-9d33-3f2d1b8a7c11"}
	b.ReportAllocs()
	for b.Loop() {
		audit.Record(e)
	}
}

// BenchmarkAuditRecordEncodeOnly is BenchmarkAuditRecord without the write: what the line's
// encoding costs, apart from the system call.
func BenchmarkAuditRecordEncodeOnly(b *testing.B) {
	audit := httpapi.NewAudit(io.Discard, nil)
	e := messages.AuditEvent{Event: messages.AuditSignIn, Tenant: "default", Community: "default", Username: "alice",
		FidoKeyHash: strings.Repeat("ab", 32), LicenseID: "default", RemoteAddr: "198.51.100.7",
		RequestID: "0e5a1a4e-8c1f-4f47-9d33-3f2d1b8a7c11"}
	b.ReportAllocs()
	for b.Loop() {
		audit.Record(e)
	}
}

// TestAuditOverPostgres: a management command over --store writes its line to stderr, having
// no data directory of its own, or to --audit-log; a server over PostgreSQL writes its own.
func TestAuditOverPostgres(t *testing.T) {
	db := pgtest.NewDatabase(t)
	s := startNodes(t, db, 1)[0] // creates the schema
	_, stderr, err := runCommand("community", "create", "--store", db, "--id", "shop", "--tenant", "acme",
		"--rp-id", "shop.example", "--origin", "https://shop.example")
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, `"event":`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkAuditLine(t, line, map[string]string{"event": "community.created", "outcome": "ok", "community": "shop",
		"tenant": "acme", "remoteAddr": "local"}, time.Now().Add(-time.Minute))

	file := filepath.Join(t.TempDir(), "audit.log")
	if _, stderr, err := runCommand("community", "update", "--store", db, "--id", "shop", "--name", "Shop", "--audit-log", file); err != nil ||
		strings.Contains(stderr, `"event":`) {
		t.Fatalf("update with --audit-log: %v, stderr %s", err, stderr)
	}
	if lines := auditLines(t, file); len(lines) != 1 || lines[0]["event"] != "community.changed" {
		t.Fatalf("--audit-log over --store: %v", lines)
	}

	key, err := os.ReadFile(filepath.Join(s.DataDir, "default-license.key"))
	if err != nil {
		t.Fatal(err)
	}
	s.register(t, strings.TrimSpace(string(key)), "default", newPasskey(localRP, "alice"))
	// The node that created the default community and license wrote their lines at start.
	if lines := auditLines(t, filepath.Join(s.DataDir, "audit.log")); len(lines) != 3 || lines[0]["event"] != "community.created" ||
		lines[1]["event"] != "license.created" || lines[2]["event"] != "registration" {
		t.Fatalf("a node over PostgreSQL wrote %v", lines)
	}
}

// TestAuditOfWhatAStartCreates: what a server writes to its store by itself at start leaves its
// lines like any other change: the default community and license of an empty store, the demo's
// license (re-keyed at every start with the demo on) and its revocation at a start without it.
func TestAuditOfWhatAStartCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	start := time.Now()
	local := func(event string, extra ...string) map[string]string {
		m := map[string]string{"event": event, "outcome": "ok", "remoteAddr": "local"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	check := func(t *testing.T, lines []map[string]string, want ...map[string]string) {
		t.Helper()
		if len(lines) != len(want) {
			t.Fatalf("%d lines, want %d: %v", len(lines), len(want), lines)
		}
		for i := range want {
			checkAuditLine(t, lines[i], want[i], start)
		}
	}

	s := startServer(t, dir, "--demo=true")
	s.stop(t)
	check(t, auditLines(t, path),
		local("community.created", "community", "default", "tenant", "default"),
		local("license.created", "licenseId", defaultLicenseID, "community", "default"),
		local("license.created", "licenseId", demoLicenseID, "community", "default"))

	s = startServer(t, dir, "--demo=false")
	s.stop(t)
	check(t, auditLines(t, path)[3:], local("license.revoked", "licenseId", demoLicenseID))
	var secrets auditSecrets
	secrets.add(s.License)
	raw, _ := os.ReadFile(path)
	for _, secret := range secrets {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the audit log holds the default license's key")
		}
	}
}
