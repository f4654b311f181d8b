package postgres_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/persistence/postgres"
)

// Nodes starting together on an empty database: each migration runs once (under the advisory
// lock), and every node opens.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dbURL := newSchema(t)
	const nodes = 6
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	start := make(chan struct{})
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(bg(), 30*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, dbURL, postgres.WithMaxConns(2))
			if err == nil {
				err = s.Ping(ctx)
				_ = s.Close()
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: Open: %v", i, err)
		}
	}
	var versions, max int
	if err := rawConn(t, dbURL).QueryRow(bg(), `SELECT count(*), max(version) FROM schema_version`).Scan(&versions, &max); err != nil {
		t.Fatal(err)
	}
	if versions != postgres.SchemaVersion() || max != postgres.SchemaVersion() {
		t.Fatalf("schema_version holds %d rows up to %d, want each of the %d migrations once", versions, max, postgres.SchemaVersion())
	}
}

// Opening a database that is current again migrates nothing.
func TestReopenIsANoOp(t *testing.T) {
	dbURL := newSchema(t)
	s := mustOpen(t, dbURL)
	seedCommunity(t, s, "shop")
	before := digest(t, dbURL, "config_versions")
	mustOpen(t, dbURL)
	if after := digest(t, dbURL, "config_versions"); after != before {
		t.Fatal("a second Open changed the database")
	}
}

// wantMismatch checks that err refuses the database's schema version got against this binary's,
// naming both.
func wantMismatch(t *testing.T, err error, database int) {
	t.Helper()
	var me *postgres.SchemaMismatchError
	if !errors.As(err, &me) || me.Database != database || me.Binary != postgres.SchemaVersion() {
		t.Fatalf("err = %v, want a SchemaMismatchError of database version %d", err, database)
	}
	for _, v := range []int{database, postgres.SchemaVersion()} {
		if !strings.Contains(err.Error(), "version "+strconv.Itoa(v)) {
			t.Fatalf("%q does not name version %d", err, v)
		}
	}
}

func TestSchemaVersionRefusals(t *testing.T) {
	current := postgres.SchemaVersion()
	open := func(dbURL string, opts ...postgres.Option) error {
		s, err := postgres.Open(bg(), dbURL, opts...)
		if err == nil {
			_ = s.Close()
		}
		return err
	}
	t.Run("a schema newer than the binary's is refused", func(t *testing.T) {
		dbURL := newSchema(t)
		mustOpen(t, dbURL)
		if _, err := rawConn(t, dbURL).Exec(bg(), `INSERT INTO schema_version (version, name) VALUES ($1, 'from the future')`, current+1); err != nil {
			t.Fatal(err)
		}
		wantMismatch(t, open(dbURL), current+1)
		wantMismatch(t, open(dbURL, postgres.WithExactSchema()), current+1)
	})
	t.Run("exact: a database without the schema is refused, and not migrated", func(t *testing.T) {
		dbURL := newSchema(t)
		wantMismatch(t, open(dbURL, postgres.WithExactSchema()), 0)
		var exists bool
		if err := rawConn(t, dbURL).QueryRow(bg(), `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil || exists {
			t.Fatalf("schema_version exists = %v, %v; want an untouched database", exists, err)
		}
	})
	t.Run("exact: an older schema is refused, and not migrated", func(t *testing.T) {
		dbURL := newSchema(t)
		mustOpen(t, dbURL)
		// The database as a binary one migration behind would have left it.
		conn := rawConn(t, dbURL)
		if _, err := conn.Exec(bg(), `DELETE FROM schema_version WHERE version = $1`, current); err != nil {
			t.Fatal(err)
		}
		wantMismatch(t, open(dbURL, postgres.WithExactSchema()), current-1)
		var max int
		if err := conn.QueryRow(bg(), `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&max); err != nil || max != current-1 {
			t.Fatalf("schema version after the refusal = %d, %v; want %d", max, err, current-1)
		}
	})
	t.Run("exact: the binary's own version opens", func(t *testing.T) {
		dbURL := newSchema(t)
		mustOpen(t, dbURL)
		if err := open(dbURL, postgres.WithExactSchema()); err != nil {
			t.Fatal(err)
		}
	})
}

// Open gives up when its context ends, for instance while another node holds the migration lock.
func TestOpenHonoursItsContext(t *testing.T) {
	dbURL := newSchema(t)
	conn := rawConn(t, dbURL)
	if _, err := conn.Exec(bg(), `SELECT pg_advisory_lock($1)`, int64(0x7761647363686d6d)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg(), 300*time.Millisecond)
	defer cancel()
	s, err := postgres.Open(ctx, dbURL)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open migrated while another node held the migration lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}
