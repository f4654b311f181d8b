// Package pgtest gives the tests of any package a fresh PostgreSQL database of their own, as
// net/http/httptest gives them a server. It lives beside persistence/postgres so that pgx stays
// inside that folder: a test elsewhere (the multi-node tests of cmd/webauthnd) gets a URL and
// never a driver.
//
// The databases are made on the server that WEBAUTHND_TEST_POSTGRES names (an admin URL, by
// default DefaultAdminURL). When that server cannot be reached, a test skips with a message
// that says how to run it, or fails when WEBAUTHND_REQUIRE_POSTGRES=1, as CI sets it: there a
// missing PostgreSQL is a broken build, not a reason to pass.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAdminURL is the admin URL when WEBAUTHND_TEST_POSTGRES is not set: the local server's
// postgres user, as a developer machine or CI has it.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	probeOnce sync.Once
	probeErr  error
	// runID tells this test binary's databases from those of others running at the same time
	// on the same server (other packages, other checkouts).
	runID = func() string {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		return fmt.Sprintf("%d_%s", os.Getpid()%100000, hex.EncodeToString(b))
	}()
	databases atomic.Int64
)

// AdminURL is the URL of the database that NewDatabase connects to to create and drop others.
func AdminURL() string {
	if u := os.Getenv("WEBAUTHND_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// Require skips t, or fails it under WEBAUTHND_REQUIRE_POSTGRES=1, when the admin server cannot
// be reached. The server is probed once per test binary.
func Require(t testing.TB) {
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
	if u, err := url.Parse(AdminURL()); err == nil {
		where = u.Redacted()
	}
	if os.Getenv("WEBAUTHND_REQUIRE_POSTGRES") == "1" {
		t.Fatalf("PostgreSQL is required (WEBAUTHND_REQUIRE_POSTGRES=1) but %s cannot be reached: %v", where, probeErr)
	}
	t.Skipf("PostgreSQL at %s cannot be reached (%v): skipped; start it, set WEBAUTHND_TEST_POSTGRES to an admin URL, "+
		"or set WEBAUTHND_REQUIRE_POSTGRES=1 to fail instead", where, probeErr)
}

// prefixRE is what a database name's prefix may hold, so that it needs no quoting.
var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,20}$`)

// NewDatabase creates an empty database named after prefix (lower-case letters, digits and
// underscores), dropped when t ends (connections still open to it are ended), and returns its
// URL: the admin URL with the new database's name. It calls Require first.
func NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	if !prefixRE.MatchString(prefix) {
		t.Fatalf("pgtest.NewDatabase: prefix %q: give lower-case letters, digits and underscores, a letter first, at most 21", prefix)
	}
	Require(t)
	u, err := url.Parse(AdminURL())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("WEBAUTHND_TEST_POSTGRES must be a postgres:// URL")
	}
	name := fmt.Sprintf("wad_%s_%s_%d", prefix, runID, databases.Add(1))
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
	u.Path = "/" + name
	return u.String()
}

// adminExec runs sql on the admin database.
func adminExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
