// Package pgtest gives a test a PostgreSQL database of its own, for the tests of every package
// that runs against PostgreSQL (the store's, cmd/webauthnd's end-to-end tests). It keeps the
// conventions of the store's tests: WEBAUTHND_TEST_POSTGRES is an admin URL (by default the
// local server's postgres user, without a password); each test gets a new empty database,
// dropped when it ends; when the server cannot be reached the test skips, or fails under
// WEBAUTHND_REQUIRE_POSTGRES=1 (as CI sets it).
//
// It imports pgx, and so lives under persistence/postgres, the one folder that may.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultAdminURL is the admin URL when WEBAUTHND_TEST_POSTGRES is not set.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	probeOnce sync.Once
	probeErr  error
	// runID tells this process's databases from those of tests running beside it.
	runID = func() string {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		return fmt.Sprintf("%d_%s", os.Getpid()%100000, hex.EncodeToString(b))
	}()
	databases atomic.Int64
)

// AdminURL is the URL of the admin database tests create their databases from.
func AdminURL() string {
	if u := os.Getenv("WEBAUTHND_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// exec runs sql with args on the database dbURL names.
func exec(ctx context.Context, dbURL, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// Require skips the test, or fails it under WEBAUTHND_REQUIRE_POSTGRES=1, when the server of
// AdminURL cannot be reached.
func Require(t testing.TB) {
	t.Helper()
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		probeErr = exec(ctx, AdminURL(), "SELECT 1")
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
	t.Skipf("PostgreSQL at %s cannot be reached (%v): skipped; set WEBAUTHND_TEST_POSTGRES to an admin URL, "+
		"or WEBAUTHND_REQUIRE_POSTGRES=1 to fail instead", where, probeErr)
}

// NewDatabase creates an empty database for the test, dropped (its connections closed first)
// when the test ends, and returns its URL: AdminURL with the database's name as its path.
func NewDatabase(t testing.TB) string {
	t.Helper()
	Require(t)
	name := fmt.Sprintf("wad_test_%s_%d", runID, databases.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, AdminURL(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, AdminURL(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatalf("WEBAUTHND_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Exec runs sql with args on the database dbURL names, and fails the test if it fails: for a
// test that must set up what no store operation makes (a schema from a future version, say).
func Exec(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec(ctx, dbURL, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
