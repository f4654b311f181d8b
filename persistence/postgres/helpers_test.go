package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/postgres"
)

// The tests run against the PostgreSQL server that WEBAUTHND_TEST_POSTGRES names (an admin URL,
// by default the local server's postgres user), each in a database of its own that it creates
// and drops. When the server cannot be reached they skip, or fail with
// WEBAUTHND_REQUIRE_POSTGRES=1 (as CI sets it).
const defaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	probeOnce sync.Once
	probeErr  error
	runID     = func() string {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		return fmt.Sprintf("%d_%s", os.Getpid()%100000, hex.EncodeToString(b))
	}()
	databases atomic.Int64
)

func adminURL() string {
	if u := os.Getenv("WEBAUTHND_TEST_POSTGRES"); u != "" {
		return u
	}
	return defaultAdminURL
}

// adminExec runs sql on the admin database.
func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// requirePostgres skips the test, or fails it under WEBAUTHND_REQUIRE_POSTGRES=1, when the
// server cannot be reached.
func requirePostgres(t testing.TB) {
	t.Helper()
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		probeErr = adminExec(ctx, "SELECT 1")
	})
	if probeErr == nil {
		return
	}
	where := "the server of WEBAUTHND_TEST_POSTGRES"
	if u, err := url.Parse(adminURL()); err == nil {
		where = u.Redacted()
	}
	if os.Getenv("WEBAUTHND_REQUIRE_POSTGRES") == "1" {
		t.Fatalf("PostgreSQL is required (WEBAUTHND_REQUIRE_POSTGRES=1) but %s cannot be reached: %v", where, probeErr)
	}
	t.Skipf("PostgreSQL at %s cannot be reached (%v): skipped; set WEBAUTHND_TEST_POSTGRES to an admin URL, "+
		"or WEBAUTHND_REQUIRE_POSTGRES=1 to fail instead", where, probeErr)
}

// newDatabase creates an empty database for the test, dropped when it ends, and returns its URL.
func newDatabase(t testing.TB) string {
	t.Helper()
	requirePostgres(t)
	name := fmt.Sprintf("wad_pgtest_%s_%d", runID, databases.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminURL())
	if err != nil {
		t.Fatalf("WEBAUTHND_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// The run's database holds a schema per test that needs no database of its own: creating a
// schema and its tables takes milliseconds, a database far longer, and the contract suite opens
// hundreds of stores.
var (
	runDatabase     = "wad_pgtest_" + runID
	runDatabaseOnce sync.Once
	runDatabaseURL  string
	runDatabaseErr  error
	schemas         atomic.Int64
)

// TestMain drops the run's database after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if runDatabaseURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := adminExec(ctx, "DROP DATABASE IF EXISTS "+runDatabase+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", runDatabase, err)
		}
		cancel()
	}
	os.Exit(code)
}

// ensureRunDatabase creates the run's database the first time a test needs it.
func ensureRunDatabase(t testing.TB) {
	t.Helper()
	requirePostgres(t)
	runDatabaseOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if runDatabaseErr = adminExec(ctx, "CREATE DATABASE "+runDatabase); runDatabaseErr != nil {
			return
		}
		u, err := url.Parse(adminURL())
		if err != nil {
			runDatabaseErr = fmt.Errorf("WEBAUTHND_TEST_POSTGRES must be a postgres:// URL: %w", err)
			return
		}
		u.Path = "/" + runDatabase
		runDatabaseURL = u.String()
	})
	if runDatabaseErr != nil {
		t.Fatalf("create database %s: %v", runDatabase, runDatabaseErr)
	}
}

// newSchema creates an empty schema for the test in the run's database, dropped when the test
// ends, and returns a URL whose connections use it (search_path).
func newSchema(t testing.TB) string {
	t.Helper()
	ensureRunDatabase(t)
	name := fmt.Sprintf("t%d", schemas.Add(1))
	if err := runDatabaseExec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := runDatabaseExec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return schemaURL(name)
}

// runDatabaseExec runs sql on the run's database.
func runDatabaseExec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, runDatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// schemaURL is the URL of the run's database with search_path set to schema.
func schemaURL(schema string) string {
	u, _ := url.Parse(runDatabaseURL)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// emptied are schemas of the contract suite, migrated and emptied again, for its next store:
// a store on one is as empty as on a new schema (the suite sees a store only through the
// boundary's interfaces), and it saves the migration, whose UNLOGGED table costs a sync of
// its files.
var emptied = make(chan string, 100)

// contractStore opens a store for the contract suite: on an emptied schema when there is one.
func contractStore(t *testing.T) *postgres.Store {
	t.Helper()
	var name string
	select {
	case name = <-emptied:
	default:
		ensureRunDatabase(t)
		name = fmt.Sprintf("t%d", schemas.Add(1))
		if err := runDatabaseExec("CREATE SCHEMA " + name); err != nil {
			t.Fatalf("create schema %s: %v", name, err)
		}
	}
	// Registered before the store's Close, so it runs after it.
	t.Cleanup(func() {
		err := runDatabaseExec(`SET search_path = ` + name + `;
			DELETE FROM attestation_objects; DELETE FROM credentials; DELETE FROM users;
			DELETE FROM licenses; DELETE FROM communities; DELETE FROM tenant_hosts; DELETE FROM tenants;
			DELETE FROM secrets; DELETE FROM keyrings; DELETE FROM replays; DELETE FROM vendor_records;
			DELETE FROM mds_blob; DELETE FROM mds_entries; DELETE FROM mds_key_identifiers;
			DELETE FROM shape_counts; DELETE FROM shape_modes; DELETE FROM ceremonies`)
		if err != nil {
			t.Errorf("empty schema %s: %v", name, err)
			return
		}
		select {
		case emptied <- name:
		default:
		}
	})
	return mustOpen(t, schemaURL(name))
}

// mustOpen opens a store on dbURL, closed when the test ends. Its pool is small: the tests share
// the server with others.
func mustOpen(t testing.TB, dbURL string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dbURL, append([]postgres.Option{postgres.WithMaxConns(4)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// freshStore opens a store on a new, empty schema.
func freshStore(t testing.TB, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	return mustOpen(t, newSchema(t), opts...)
}

// rawConn connects to dbURL directly, for what a test does behind the store's back.
func rawConn(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func bg() context.Context { return context.Background() }

// mustApply runs one op and fails the test when it is refused.
func mustApply(t testing.TB, s persistence.Writer, op persistence.Op) any {
	t.Helper()
	r := s.Apply(bg(), []persistence.Op{op})
	if len(r) != 1 {
		t.Fatalf("Apply(%T) returned %d results, want 1", op, len(r))
	}
	if r[0].Err != nil {
		t.Fatalf("Apply(%T): %v", op, describe(r[0].Err))
	}
	return r[0].Value
}

// applyErr runs one op and returns its error.
func applyErr(t testing.TB, s persistence.Writer, op persistence.Op) error {
	t.Helper()
	r := s.Apply(bg(), []persistence.Op{op})
	if len(r) != 1 {
		t.Fatalf("Apply(%T) returned %d results, want 1", op, len(r))
	}
	return r[0].Err
}

// wantCode fails the test unless err is a *messages.Error with code.
func wantCode(t testing.TB, err error, code messages.Code) {
	t.Helper()
	var me *messages.Error
	if !errors.As(err, &me) || me.Code != code {
		t.Fatalf("err = %s, want a *messages.Error with code %q", describe(err), code)
	}
}

// wantNotFound fails the test unless err is ErrNotFound.
func wantNotFound(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("%s: err = %s, want ErrNotFound", what, describe(err))
	}
}

// describe renders err with its cause chain.
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	out := err.Error()
	for c := errors.Unwrap(err); c != nil; c = errors.Unwrap(c) {
		out += " <- " + c.Error()
	}
	return out
}

// community returns a valid community of tenant "acme" for RP ID example.com.
func community(id string) persistence.Community {
	return persistence.Community{
		ID:               id,
		TenantID:         "acme",
		Name:             "Community " + id,
		RPIDs:            []string{"example.com"},
		Origins:          []string{"https://example.com", "https://login.example.com"},
		UserVerification: persistence.VerificationPreferred,
	}
}

// seedCommunity creates community id.
func seedCommunity(t testing.TB, s persistence.Writer, id string) persistence.Community {
	t.Helper()
	return mustApply(t, s, persistence.PutCommunity{Community: community(id), Create: true}).(persistence.Community)
}

var (
	t0 = time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
	t1 = time.Date(2025, 4, 5, 6, 7, 8, 900, time.UTC)
)

// user is a user of a community with a handle.
func user(community, name, handle string) persistence.User {
	return persistence.User{CommunityID: community, Username: name, Handle: []byte(handle)}
}

// credential returns a fully populated credential of a user.
func credential(id string, u persistence.User) persistence.Credential {
	return persistence.Credential{
		ID:                []byte(id),
		CommunityID:       u.CommunityID,
		Username:          u.Username,
		UserHandle:        u.Handle,
		RPID:              "example.com",
		PublicKey:         []byte{0xa5, 0x01, 0x02, 0x03, 0x26},
		Algorithm:         -7,
		AAGUID:            make([]byte, 16),
		AttestationFormat: "none",
		AttestationType:   "None",
		AttestationObject: []byte{0xa3, 0x63},
		Transports:        []string{"internal", "hybrid"},
		Attachment:        "platform",
		UserPresent:       true,
		BackupEligible:    true,
		Created:           t0,
	}
}
