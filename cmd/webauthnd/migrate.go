package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// migrateCommand implements `webauthnd migrate --from DATA_DIR --to postgres://…`: it copies
// everything the Badger store of a data directory holds into an empty PostgreSQL database,
// with the server stopped, then reads every record back to verify the copy (see
// persistence.Copy and persistence.VerifyCopy). The Badger store is only read: it stays as it
// was, to go back to.
func migrateCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		from string
		to   storeFlags
	)
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.StringVar(&from, "from", "", "the data directory whose Badger store to copy (its server stopped)")
	fs.StringVar(&to.url, "to", "", "the PostgreSQL database to copy into, empty: a postgres:// URL without its password "+
		"(give it in PGPASSWORD, PGPASSFILE or WEBAUTHND_STORE); default WEBAUTHND_STORE")
	fs.IntVar(&to.maxConns, "store-max-conns", defaultStoreMaxConns, "the most connections to PostgreSQL the migration opens")
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) { to.fromArgs = to.fromArgs || f.Name == "to" })
	source := "--to"
	if to.url == "" {
		to.url, source = getenv("WEBAUTHND_STORE"), "WEBAUTHND_STORE"
	} else if !to.fromArgs {
		source = "WEBAUTHND_TO"
	}
	switch {
	case from == "":
		return errors.New("migrate: --from is required: the data directory of the Badger store to copy")
	case to.url == "":
		return errors.New("migrate: --to is required (or WEBAUTHND_STORE): the postgres:// URL of the database to copy into")
	case to.maxConns < 1:
		return fmt.Errorf("migrate: --store-max-conns %d: give at least 1", to.maxConns)
	}
	target, err := parseStoreURL(to.url, source, to.fromArgs)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if !target.postgres {
		return fmt.Errorf("migrate: %s: give the postgres:// URL of the database to copy into", source)
	}

	src, err := openMigrationSource(ctx, from, stderr)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer src.Close()
	log, _ := newLogger("info", stderr)
	dst, err := openPostgres(ctx, target, to.maxConns, false, log.Named("postgres"))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer dst.Close()

	progress := func(s string) { fmt.Fprintf(stderr, "migrate: %s\n", s) }
	progress(fmt.Sprintf("copying %s into %s", from, target.redacted))
	report, err := persistence.Copy(ctx, src, dst, progress)
	if err != nil {
		return fmt.Errorf("migrate: %w; the database now holds part of the store: drop it, create it empty and migrate again", target.scrub(err))
	}
	progress("reading every record back from the database to compare it")
	verified, err := persistence.VerifyCopy(ctx, src, dst, report)
	if err != nil {
		return fmt.Errorf("migrate: the copy differs from the store (%w): do not start servers on the database; drop it, create it empty and migrate again",
			target.scrub(err))
	}
	for _, left := range report.Left {
		fmt.Fprintf(stderr, "migrate: left out %s\n", left)
	}
	if err := revokeDemoLicense(ctx, dst); err != nil {
		return fmt.Errorf("migrate: %w", target.scrub(err))
	}
	if wait := time.Until(report.ReplaysUntil); wait > 0 {
		// A sealed request accepted by the stopped server could be replayed to a new one
		// until its record expires: the database cannot hold those records (see
		// persistence.ExportedReplay), so no server may start on it before then.
		progress(fmt.Sprintf("waiting %s, until the replay records of the last sealed requests expire", wait.Round(time.Second)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate: interrupted while waiting for the replay records to expire: the copy is complete and verified, "+
				"but start no server on the database before %s", report.ReplaysUntil.Format(time.RFC3339))
		case <-time.After(wait):
		}
	}
	fmt.Fprintf(stdout, "migrated %s to %s, and read every record back:\n", from, target.redacted)
	for _, kind := range persistence.CopyKinds {
		fmt.Fprintf(stdout, "  %-14s %d\n", kind, verified[kind])
	}
	fmt.Fprintf(stdout, "Start the servers with --store (WEBAUTHND_STORE) naming this database. %s still holds the Badger store, "+
		"unchanged: keep it to go back to, but start no server on it again (what it accepted would not reach PostgreSQL). "+
		"A community's created and updated times are now the migration's; license keys, passkeys and the service's keys carry over.\n", from)
	return nil
}

// openMigrationSource opens the Badger store of dataDir for a migration: it must exist, and no
// server may run on it (its admin socket answers, or Badger's directory lock is held), since
// what a running server accepts during the copy would be lost.
func openMigrationSource(ctx context.Context, dataDir string, stderr io.Writer) (*badger.Store, error) {
	dir := filepath.Join(dataDir, "badger")
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no Badger store in %s: %w", dataDir, err)
	}
	if up, err := probeAdmin(ctx, socketPath(dataDir)); err != nil {
		return nil, err
	} else if up {
		return nil, fmt.Errorf("a server runs on %s (its admin socket %s answers): stop it first, so that nothing it accepts during the copy is lost",
			dataDir, socketPath(dataDir))
	}
	log, _ := newLogger("info", stderr)
	if err := secureDataDir(dataDir, log); err != nil {
		return nil, err
	}
	store, err := badger.Open(dir, zap.NewNop())
	if err != nil {
		return nil, fmt.Errorf("open the Badger store in %s (a server still running on it holds its lock: stop it first): %w", dataDir, err)
	}
	return store, nil
}

// revokeDemoLicense revokes the demo's license in a migrated store when it is active: its key
// was in the stopped server's memory only, and no key of a process gone may stay valid (a node
// started with --demo gives it a new key).
func revokeDemoLicense(ctx context.Context, store persistence.Store) error {
	licenses, err := store.AllLicenses(ctx)
	if err != nil {
		return err
	}
	for _, l := range licenses {
		if l.ID == demoLicenseID && !l.Disabled {
			_, err := persistence.ApplyOne(ctx, store, persistence.RevokeLicense{ID: demoLicenseID})
			return err
		}
	}
	return nil
}
