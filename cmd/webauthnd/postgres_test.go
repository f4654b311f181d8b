package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence/postgres"
	"github.com/webauthnd/webauthnd/persistence/postgres/pgtest"
)

// fresh is how soon a change made through one node or a management command must reach every
// node over one database (the "within a second").
const fresh = time.Second

// runEnv runs a webauthnd command with an environment and returns its stdout, stderr and error.
func runEnv(env map[string]string, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustRun runs a webauthnd command and fails the test unless it succeeds.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runEnv(nil, args...)
	if err != nil {
		t.Fatalf("webauthnd %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return strings.TrimSpace(out)
}

// startNodes starts n servers at once over the database dbURL, each in a data directory of its
// own, and waits until every one answers /healthz.
func startNodes(t *testing.T, dbURL string, n int, args ...string) []*testServer {
	t.Helper()
	nodes := make([]*testServer, n)
	for i := range nodes {
		nodes[i] = spawnNode(t, "", nil, append([]string{"--store", dbURL}, args...)...)
	}
	for _, s := range nodes {
		s.awaitListening(t)
	}
	for _, s := range nodes {
		s.waitHealthy(t)
	}
	return nodes
}

// defaultKeyOf returns the default license key from the one node that created it, failing the
// test unless exactly one did (and none left a pending key file).
func defaultKeyOf(t *testing.T, nodes []*testServer) string {
	t.Helper()
	var keys []string
	for _, s := range nodes {
		if _, err := os.Stat(filepath.Join(s.DataDir, defaultKeyFile+".pending")); err == nil {
			t.Errorf("%s holds a pending key file", s.DataDir)
		}
		raw, err := os.ReadFile(filepath.Join(s.DataDir, defaultKeyFile))
		if err == nil {
			keys = append(keys, strings.TrimSpace(string(raw)))
		}
	}
	if len(keys) != 1 {
		t.Fatalf("%d of %d nodes wrote a default license key, want exactly one", len(keys), len(nodes))
	}
	return keys[0]
}

// publishedKeys returns what a node publishes at /webauthn/publickeys: the envelope key and the
// token keys' kids, in order.
func publishedKeys(t *testing.T, s *testServer) (envelope string, kids []string) {
	t.Helper()
	status, body, _ := s.call(t, "GET", "/webauthn/publickeys", nil, nil)
	if status != 200 {
		t.Fatalf("publickeys: %d %v", status, body)
	}
	raw, _ := json.Marshal(body["keys"])
	var jwks []struct{ Kid string }
	if err := json.Unmarshal(raw, &jwks); err != nil {
		t.Fatal(err)
	}
	for _, k := range jwks {
		kids = append(kids, k.Kid)
	}
	envelope, _ = body["publicKey"].(string)
	return envelope, kids
}

// within polls cond until it holds, failing the test with what it last said after d.
func within(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, said := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, d, said)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// samePublishedKeys waits until every node publishes the same keys, for which want (when not
// nil) holds, and returns them.
func samePublishedKeys(t *testing.T, nodes []*testServer, what string, want func(env string, kids []string) bool) (string, []string) {
	t.Helper()
	var env string
	var kids []string
	within(t, fresh, what, func() (bool, string) {
		env, kids = publishedKeys(t, nodes[0])
		if want != nil && !want(env, kids) {
			return false, fmt.Sprintf("%s publishes %s %v", nodes[0].URL, env, kids)
		}
		for _, s := range nodes[1:] {
			e, k := publishedKeys(t, s)
			if e != env || !slices.Equal(k, kids) {
				return false, fmt.Sprintf("%s publishes %s %v, %s publishes %s %v", nodes[0].URL, env, kids, s.URL, e, k)
			}
		}
		return true, ""
	})
	return env, kids
}

// TestPostgresNodesStartingTogetherCreateOneDefault starts three nodes at once on one new
// database: exactly one creates the embedded default (one license, one key file), the others
// wait for it, and the key works on every node; every node publishes the same keys.
func TestPostgresNodesStartingTogetherCreateOneDefault(t *testing.T) {
	db := pgtest.NewDatabase(t)
	nodes := startNodes(t, db, 3)
	key := defaultKeyOf(t, nodes)

	list := mustRun(t, "license", "list", "--store", db)
	if lines := strings.Split(list, "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], defaultLicenseID+" ") {
		t.Fatalf("license list shows\n%s\nwant the one default license", list)
	}
	samePublishedKeys(t, nodes, "the same keys on every node", nil)
	for i, s := range nodes {
		p := newPasskey(localRP, fmt.Sprintf("user%d", i))
		s.register(t, key, "default", p)
		nodes[(i+1)%len(nodes)].signIn(t, key, "default", p, true)
	}
}

// TestPostgresKeysRotateOnEveryNode shows that a token from one node verifies with another's
// JWK set, and that a rotation, by a management command on the database or through one
// node's admin socket, reaches every node within a second, with the retired key still
// published (its grace window comes from the rotation time stored with it: a node started
// after the rotation publishes it too).
func TestPostgresKeysRotateOnEveryNode(t *testing.T) {
	db := pgtest.NewDatabase(t)
	nodes := startNodes(t, db, 2)
	a, b := nodes[0], nodes[1]
	key := defaultKeyOf(t, nodes)
	p := newPasskey(localRP, "alice")
	a.register(t, key, "default", p)

	first := a.signIn(t, key, "default", p, true)["signature_token"].(string)
	b.verifyToken(t, first)
	env0, kids0 := samePublishedKeys(t, nodes, "the same keys on every node", nil)

	mustRun(t, "keys", "rotate", "--signing", "--store", db)
	_, kids1 := samePublishedKeys(t, nodes, "the rotated signing key on every node", func(_ string, kids []string) bool { return len(kids) == 2 })
	if kids1[1] != kids0[0] {
		t.Fatalf("after a rotation the nodes publish %v, want a new key and the retired %s", kids1, kids0[0])
	}
	second := b.signIn(t, key, "default", p, true)["signature_token"].(string)
	a.verifyToken(t, second)
	b.verifyToken(t, first) // the retired key's tokens still verify

	// Through node a's admin socket, as the command does without --store.
	mustRun(t, "keys", "rotate", "--envelope", "--data-dir", a.DataDir)
	samePublishedKeys(t, nodes, "the rotated envelope key on every node", func(env string, _ []string) bool { return env != env0 })

	c := startNodes(t, db, 1)[0]
	if _, kids := publishedKeys(t, c); !slices.Equal(kids, kids1) {
		t.Fatalf("a node started after the rotation publishes %v, the others %v", kids, kids1)
	}
	c.verifyToken(t, first)
}

// TestPostgresManagementCommandsWriteTheDatabase runs the management commands with --store
// against a database that nodes serve: their changes reach every node within a second, with no
// admin socket; what needs Badger is refused with what to use instead; a password on the
// command line is refused, and taken from WEBAUTHND_STORE.
func TestPostgresManagementCommandsWriteTheDatabase(t *testing.T) {
	db := pgtest.NewDatabase(t)
	nodes := startNodes(t, db, 2)

	mustRun(t, "community", "create", "--store", db, "--id", "shop", "--tenant", "acme", "--rp-id", "shop.example",
		"--origin", "https://shop.example", "--tenant-dns", "login.shop.example")
	shopKey := mustRun(t, "license", "create", "--store", db, "--level", "community", "--community", "shop")
	for _, s := range nodes {
		within(t, fresh, "the new community and license on "+s.URL, func() (bool, string) {
			status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/options", lic(shopKey),
				map[string]any{"dns": "shop.example", "communityId": "shop", "username": "nobody"})
			return status == 200, fmt.Sprintf("%d %v", status, body)
		})
	}
	var id string
	for _, line := range strings.Split(mustRun(t, "license", "list", "--store", db), "\n") {
		if strings.Contains(line, " shop ") {
			id = strings.Fields(line)[0]
		}
	}
	mustRun(t, "license", "revoke", "--store", db, "--id", id)
	for _, s := range nodes {
		within(t, fresh, "the revocation on "+s.URL, func() (bool, string) {
			status, body, _ := s.call(t, "POST", "/webauthn/u1/assertion/options", lic(shopKey),
				map[string]any{"dns": "shop.example", "communityId": "shop", "username": "nobody"})
			return status == 401, fmt.Sprintf("%d %v", status, body)
		})
	}

	withPassword := strings.Replace(db, "postgres://postgres@", "postgres://postgres:s3cret@", 1)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error; empty: success
	}{
		{"metadata list", nil, []string{"metadata", "list", "--store", db}, "no MDS BLOB has been imported"},
		{"backup", nil, []string{"backup", "--store", db, "--out", filepath.Join(t.TempDir(), "b")}, "pg_dump"},
		{"restore", nil, []string{"restore", "--store", db, "--in", "x", "--data-dir", t.TempDir()}, "point-in-time recovery"},
		{"a password on the command line", nil, []string{"license", "list", "--store", withPassword}, "PGPASSWORD"},
		{"a password on serve's command line", nil, []string{"serve", "--store", withPassword, "--data-dir", t.TempDir()}, "WEBAUTHND_STORE"},
		{"another scheme", nil, []string{"license", "list", "--store", "mysql://db/x"}, "postgres://"},
		// Trust authentication takes any password: from the environment it is used.
		{"a password in WEBAUTHND_STORE", map[string]string{"WEBAUTHND_STORE": withPassword}, []string{"license", "list"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runEnv(tc.env, tc.args...)
			if tc.want == "" {
				if err != nil || !strings.Contains(out, defaultLicenseID) {
					t.Fatalf("%v\n%s%s", err, out, errOut)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if strings.Contains(err.Error()+out+errOut, "s3cret") {
				t.Fatalf("the password is shown: %v", err)
			}
		})
	}
}

// TestPostgresManagementCommandsRefuseAnotherSchema: a management command opens the database
// without migrating it, and refuses one whose schema version is not its own, naming both.
func TestPostgresManagementCommandsRefuseAnotherSchema(t *testing.T) {
	mine := postgres.SchemaVersion()
	empty := pgtest.NewDatabase(t)
	_, _, err := runEnv(nil, "license", "list", "--store", empty)
	if want := fmt.Sprintf("version %d", mine); err == nil || !strings.Contains(err.Error(), "version 0") || !strings.Contains(err.Error(), want) {
		t.Fatalf("license list on a database without a schema: %v, want both versions named", err)
	}

	newer := pgtest.NewDatabase(t)
	startNodes(t, newer, 1)[0].stop(t)
	pgtest.Exec(t, newer, "INSERT INTO schema_version (version, name) VALUES ($1, 'from_the_future.sql')", mine+1)
	_, _, err = runEnv(nil, "community", "create", "--store", newer, "--id", "x", "--rp-id", "x.example", "--origin", "https://x.example")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("version %d", mine+1)) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", mine)) {
		t.Fatalf("community create on a newer schema: %v, want both versions named", err)
	}
}

// TestPostgresNodeDataDir: two nodes over one database with one data directory would take
// each other's admin socket, so the second is refused; and a node's data directory is not
// used as a Badger store by a command or a restart that lost its --store (it would come up as
// a lone node beside the cluster), until its node.lock is removed.
func TestPostgresNodeDataDir(t *testing.T) {
	db := pgtest.NewDatabase(t)
	first := startNodes(t, db, 1)[0]
	_, _, err := runEnv(nil, "serve", "--addr", "127.0.0.1:0", "--store", db, "--data-dir", first.DataDir)
	if err == nil || !strings.Contains(err.Error(), "data directory of its own") {
		t.Fatalf("a second node on the same data dir: %v", err)
	}
	// Through the running node's admin socket, a command without --store reaches the database.
	if list := mustRun(t, "license", "list", "--data-dir", first.DataDir); !strings.Contains(list, defaultLicenseID) {
		t.Fatalf("license list through the node's socket:\n%s", list)
	}
	first.stop(t)
	for _, args := range [][]string{
		{"license", "list", "--data-dir", first.DataDir},
		{"serve", "--addr", "127.0.0.1:0", "--data-dir", first.DataDir},
	} {
		if _, _, err := runEnv(nil, args...); err == nil || !strings.Contains(err.Error(), "belongs to a node over PostgreSQL") {
			t.Fatalf("webauthnd %s on a stopped node's data dir: %v", strings.Join(args, " "), err)
		}
	}
	if _, err := os.Stat(filepath.Join(first.DataDir, "badger")); err == nil {
		t.Fatal("a Badger store was created in the node's data dir")
	}
}

// TestMigrateBadgerToPostgres moves a Badger store with a passkey registered through a real
// ceremony to PostgreSQL, with a record of every kind beside it (a second community with a host
// name, a revoked license, rotated keys, a link to a DID, a vendor record changed since its
// creation, the 98 entries of a production MDS BLOB): migrate refuses while the server runs,
// copies and verifies every record once it stopped, and a node over the database signs the
// same passkey in, with the default license's key from the Badger data directory, the same
// token keys and the DID link. A second migration into the same database, and a password on
// the command line, are refused.
func TestMigrateBadgerToPostgres(t *testing.T) {
	s := startServer(t, "")
	p := newPasskey(localRP, "alice")
	s.register(t, s.License, "default", p)
	const did = "did:example:alice"
	if status, body, _ := s.call(t, "PUT", linkPath("/webauthn/u1", "default", did, "alice", fidoKeyHashOf(p)), lic(s.License), nil); status != 200 {
		t.Fatalf("link: %d %v", status, body)
	}
	s.admin(t, "community", "create", "--id", "shop", "--tenant", "acme", "--rp-id", "shop.example", "--origin", "https://shop.example",
		"--tenant-dns", "login.shop.example")
	s.admin(t, "license", "create", "--level", "service", "--tenant", "acme")
	for _, line := range strings.Split(s.admin(t, "license", "list"), "\n") {
		if strings.Contains(line, " acme ") {
			s.admin(t, "license", "revoke", "--id", strings.Fields(line)[0])
		}
	}
	s.admin(t, "keys", "rotate", "--signing", "--envelope")
	vendor := "/webauthn/vendormetadata/default"
	if status, body, _ := s.call(t, "PUT", vendor, lic(s.License), map[string]any{"aaguid": aaguidYubikey, "metadata": yubikeyStatement(t),
		"name": "YubiKey 5", "updatedBy": "ops@example.com"}); status != 200 {
		t.Fatalf("vendor record: %d %v", status, body)
	}
	if status, body, _ := s.call(t, "PATCH", vendor+"/aaguid/"+aaguidYubikey, lic(s.License),
		map[string]any{"disabled": false, "name": "YubiKey 5 NFC", "updatedBy": "sec@example.com"}); status != 200 {
		t.Fatalf("vendor record patch: %d %v", status, body)
	}
	f := mdsTestFiles(t)
	s.admin(t, "metadata", "import", "--blob", f.blob9, "--root", f.rootR3, "--at", atBlob9)
	s.signIn(t, s.License, "default", p, true)
	_, kids := publishedKeys(t, s)
	db := pgtest.NewDatabase(t)

	if _, _, err := runEnv(nil, "migrate", "--from", s.DataDir, "--to", db); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("migrate while the server runs: %v", err)
	}
	s.stop(t)
	withPassword := strings.Replace(db, "postgres://postgres@", "postgres://postgres:s3cret@", 1)
	if _, _, err := runEnv(nil, "migrate", "--from", s.DataDir, "--to", withPassword); err == nil || !strings.Contains(err.Error(), "PGPASSWORD") {
		t.Fatalf("migrate with a password on the command line: %v", err)
	}

	out, errOut, err := runEnv(map[string]string{"WEBAUTHND_STORE": db}, "migrate", "--from", s.DataDir)
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, errOut)
	}
	for _, want := range []string{"tenants        2", "communities    2", "licenses       3", "keyrings       2", "users          1",
		"credentials    1", "vendor records 1", "MDS entries    98"} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate's summary lacks %q:\n%s", want, out)
		}
	}

	if list := mustRun(t, "license", "list", "--store", db); !regexp.MustCompile(`(?m)^demo .* revoked$`).MatchString(list) {
		t.Errorf("the demo's license, whose key the stopped server held in memory only, is not revoked:\n%s", list)
	}
	node := startNodes(t, db, 1)[0]
	if _, err := os.Stat(filepath.Join(node.DataDir, defaultKeyFile)); err == nil {
		t.Error("a node on the migrated database created a default of its own")
	}
	token := node.signIn(t, s.License, "default", p, true)["signature_token"].(string)
	if claims := node.verifyToken(t, token); claims["did"] != did {
		t.Errorf("the token's did is %v, want the link's %s", claims["did"], did)
	}
	if _, now := publishedKeys(t, node); len(kids) != 2 || !slices.Equal(now, kids) {
		t.Errorf("the node publishes %v, the Badger server published %v", now, kids)
	}

	if _, _, err := runEnv(nil, "migrate", "--from", s.DataDir, "--to", db); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a second migrate into the same database: %v", err)
	}
}

// TestPostgresHealthzPingsTheDatabase: /healthz answers 503 unavailable while the database
// refuses connections (a load balancer then takes the node out), and 200 again once it takes
// them, with no restart.
func TestPostgresHealthzPingsTheDatabase(t *testing.T) {
	db := pgtest.NewDatabase(t)
	node := startNodes(t, db, 1)[0]
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	pgtest.Exec(t, pgtest.AdminURL(), "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS false")
	pgtest.Exec(t, pgtest.AdminURL(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
	within(t, 10*time.Second, "healthz 503 while the database refuses connections", func() (bool, string) {
		status, body := node.getJSON(t, "/webauthn/healthz")
		// It says the store failed, and nothing of the database's error (its name, its URL).
		said := fmt.Sprint(body)
		return status == 503 && body["reason"] == "unavailable" && fmt.Sprint(body["failed"]) == "[store]" &&
			!strings.Contains(said, name) && !strings.Contains(said, "postgres"), fmt.Sprintf("%d %v", status, body)
	})
	pgtest.Exec(t, pgtest.AdminURL(), "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS true")
	within(t, 10*time.Second, "healthz 200 once the database takes connections again", func() (bool, string) {
		status, body := node.getJSON(t, "/webauthn/healthz")
		return status == 200, fmt.Sprintf("%d %v", status, body)
	})
}

// TestPostgresBootstrapWithoutTheLockCreatesOneDefault is the store's own guard, under the
// lock that bootstrapOnce takes: stores of three nodes bootstrap one new database at once, with
// no lock, and still exactly one default license and one key file come out, and every node
// finds the default made.
func TestPostgresBootstrapWithoutTheLockCreatesOneDefault(t *testing.T) {
	db := pgtest.NewDatabase(t)
	target, err := parseStoreURL(db, "--store", true)
	if err != nil {
		t.Fatal(err)
	}
	community, _ := defaultCommunityFor("http://localhost:8080")
	const n = 3
	dirs := make([]string, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		dirs[i] = t.TempDir()
		store, err := openPostgres(t.Context(), target, 2, false, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		go func() {
			<-start
			errs <- bootstrap(t.Context(), store, community, dirs[i], io.Discard, "http://localhost:8080", nil, zap.NewNop())
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
	}
	var nodes []*testServer
	for _, d := range dirs {
		nodes = append(nodes, &testServer{DataDir: d})
	}
	defaultKeyOf(t, nodes)
	if list := mustRun(t, "license", "list", "--store", db); strings.Count(list, "\n") != 1 {
		t.Fatalf("license list shows\n%s\nwant one license", list)
	}
}

// TestPostgresAdminStatsCountRoundTrips: over PostgreSQL, /admin/stats carries the store's round
// trips so far (what the benchmark harness divides by the ceremonies of a run), and an options
// call moves it.
func TestPostgresAdminStatsCountRoundTrips(t *testing.T) {
	node := startNodes(t, pgtest.NewDatabase(t), 1)[0]
	key := defaultKeyOf(t, []*testServer{node})
	roundTrips := func() float64 {
		t.Helper()
		v, err := viaSocket(context.Background(), socketPath(node.DataDir), "GET", "/admin/stats", nil)
		if err != nil {
			t.Fatalf("admin stats: %v", err)
		}
		rt, ok := v.(map[string]any)["storeRoundTrips"].(float64)
		if !ok {
			t.Fatalf("admin stats over PostgreSQL = %v, want a storeRoundTrips count", v)
		}
		return rt
	}
	before := roundTrips()
	if before <= 0 {
		t.Errorf("storeRoundTrips = %v after start-up, which read the database", before)
	}
	node.signInOptions(t, key, "default", "localhost", "nobody")
	if after := roundTrips(); after <= before {
		t.Errorf("storeRoundTrips %v before an options call and %v after it, want more", before, after)
	}
}
