package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/storetest"
)

// TestContract runs the contract suite of the persistence boundary against PostgreSQL, each
// case on an empty database of its own (see emptyDatabases).
func TestContract(t *testing.T) {
	requirePostgres(t)
	dbs := emptyDatabases(t)
	storetest.Run(t, func(t *testing.T) persistence.Store { return mustOpen(t, dbs.get(t)) })
}

// TestContractCeremonies runs the contract of persistence.Ceremonies: the ceremony table that
// lets any node finish a ceremony another started.
func TestContractCeremonies(t *testing.T) {
	requirePostgres(t)
	dbs := emptyDatabases(t)
	storetest.RunCeremonies(t, func(t *testing.T) persistence.Ceremonies { return mustOpen(t, dbs.get(t)) })
}

// TestContractShared runs the contract of two nodes over one database: two stores, each with
// its own pool and its own LISTEN connection, as two processes hold them.
func TestContractShared(t *testing.T) {
	requirePostgres(t)
	dbs := emptyDatabases(t)
	storetest.RunShared(t, func(t *testing.T) (a, b persistence.Store) {
		url := dbs.get(t)
		return mustOpen(t, url), mustOpen(t, url)
	})
}

// dbPool hands out empty, migrated databases. Creating, migrating and dropping a database
// takes seconds on a busy machine, and the suites open hundreds of stores one after another:
// a database whose test ended is emptied (every table truncated but the schema's version and
// the config versions, which only grow) and handed out again; a new one is made only when every
// database is in use. The databases are dropped when the top-level test ends.
type dbPool struct {
	top  *testing.T
	mu   sync.Mutex
	free []string
}

func emptyDatabases(top *testing.T) *dbPool { return &dbPool{top: top} }

// get returns the URL of an empty database for t, handed back when t ends (after the stores
// t opened on it are closed: cleanups run last-registered first).
func (d *dbPool) get(t *testing.T) string {
	t.Helper()
	d.mu.Lock()
	var url string
	if n := len(d.free); n > 0 {
		url, d.free = d.free[n-1], d.free[:n-1]
	}
	d.mu.Unlock()
	if url == "" {
		url = newDatabase(d.top)
		// Migrate it now, so that the stores of the test find it ready like the others.
		mustOpen(t, url).Close()
	} else if err := empty(url); err != nil {
		t.Fatalf("empty the database for reuse: %v", err)
	}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.free = append(d.free, url)
	})
	return url
}

// empty truncates every table of the database at url but schema_version and config_versions.
func empty(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT quote_ident(tablename) FROM pg_tables
		WHERE schemaname = current_schema() AND tablename NOT IN ('schema_version', 'config_versions')`)
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(tables) == 0 {
		return fmt.Errorf("no tables to empty")
	}
	_, err = conn.Exec(ctx, "TRUNCATE "+strings.Join(tables, ", ")+" RESTART IDENTITY")
	return err
}
