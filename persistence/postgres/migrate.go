package postgres

import (
	"context"
	"embed"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// The schema's migrations, applied in order by Open: migrations/NNNN_what.sql, numbered from
// 0001 without gaps. A migration is never changed once released; a change of the schema is a
// new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in version order.
func loadMigrations() ([]migration, error) {
	entries, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %q is not named NNNN_what.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run from 1 without gaps", m.name)
		}
	}
	return out, nil
}

// SchemaVersion is the version of the schema this binary knows: that of its last migration.
func SchemaVersion() int {
	ms, err := loadMigrations()
	if err != nil {
		panic(err) // the files are embedded: this fails in every test or never
	}
	return len(ms)
}

// SchemaMismatchError refuses a database whose schema version this binary cannot use: newer
// than it knows, or (WithExactSchema) any other than its own.
type SchemaMismatchError struct {
	// Database is the schema version of the database (0: no schema yet), Binary this binary's.
	Database, Binary int
	// Exact is set when any difference was refused (WithExactSchema).
	Exact bool
}

func (e *SchemaMismatchError) Error() string {
	switch {
	case e.Database > e.Binary:
		return fmt.Sprintf("the database's schema is version %d, newer than this webauthnd's schema version %d: "+
			"use a webauthnd at least as new as the one that migrated the database", e.Database, e.Binary)
	case e.Database == 0:
		return fmt.Sprintf("the database has no webauthnd schema yet (version 0; this webauthnd's is version %d): "+
			"start webauthnd serve on it once, which creates the schema", e.Binary)
	default:
		return fmt.Sprintf("the database's schema is version %d and this webauthnd's is version %d: "+
			"a management command works only on a database of its own version; start webauthnd serve of this version once, which migrates the database", e.Database, e.Binary)
	}
}

// migrationLock is the key of the advisory lock under which migrations run, so that nodes
// starting together apply each migration once: one migrates, the others wait and find the
// schema current. (The bytes of "wadschem".)
const migrationLock int64 = 0x7761647363686d6d

// migrate brings the schema of the database conn is connected to up to date, or with exact only
// checks that it is this binary's. A current schema is found without a lock; one that is not
// is migrated under the session advisory lock, which migrate releases (or, if it cannot, closes
// conn, which releases it too).
func migrate(ctx context.Context, conn *pgx.Conn, exact bool, log *zap.Logger) (err error) {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	v, err := storedVersion(ctx, conn)
	switch {
	case err != nil:
		return err
	case exact && v != len(ms):
		return &SchemaMismatchError{Database: v, Binary: len(ms), Exact: true}
	case v > len(ms):
		return &SchemaMismatchError{Database: v, Binary: len(ms)}
	case v == len(ms):
		return nil
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		conn.Close(context.Background()) // the lock may have been granted as the wait ended
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrationLock); uerr != nil {
			conn.Close(context.Background())
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version integer PRIMARY KEY,
		name    text NOT NULL,
		applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create the schema_version table: %w", err)
	}
	// Another node may have migrated while this one waited for the lock.
	if v, err = storedVersion(ctx, conn); err != nil {
		return err
	}
	if v > len(ms) {
		return &SchemaMismatchError{Database: v, Binary: len(ms)}
	}
	for _, m := range ms[v:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_version (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.name, err)
		}
		log.Info("applied a schema migration", zap.Int("version", m.version), zap.String("migration", m.name))
	}
	return nil
}

// storedVersion is the database's schema version, 0 when it has none.
func storedVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	return v, nil
}
