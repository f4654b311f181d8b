package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// backupCommand implements `webauthnd backup --out FILE`: a consistent snapshot of the store,
// taken by a running server (through its admin socket) or from the store directly when none
// runs. The file is written under a temporary name, checked, and renamed to FILE (mode 0600:
// it holds the service's private keys).
func backupCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		at  storeLocation
		out string
	)
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	at.register(fs)
	fs.StringVar(&out, "out", "", "the backup file to write (mode 0600; it holds the service's private keys)")
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	if err := at.parsed(fs); err != nil {
		return err
	}
	if at.target.postgres {
		return fmt.Errorf("backup: the store is PostgreSQL (%s): back it up with PostgreSQL's tools, pg_dump for a snapshot or "+
			"continuous archiving with point-in-time recovery (PITR); webauthnd backup is for the embedded Badger store", at.target.redacted)
	}
	dataDir := at.dataDir
	if out == "" {
		return errors.New("--out is required")
	}
	tmp, err := createTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() {
		tmp.Close()
		_ = os.Remove(tmp.Name()) // gone already when renamed
	}()
	via, err := backupTo(ctx, at, tmp, stderr)
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := badger.CheckBackup(tmp); err != nil {
		return fmt.Errorf("backup: the written file fails its check, %s not written: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stderr, "backup of %s (%s) written to %s: %d bytes, mode 0600; it holds the service's private keys, keep it like one\n",
		dataDir, via, out, size)
	return nil
}

// backupTo writes a backup of dataDir's store to w, through a running server's admin socket
// when one answers, otherwise from the store itself. It says which way it went.
func backupTo(ctx context.Context, at storeLocation, w, stderr io.Writer) (string, error) {
	dataDir := at.dataDir
	sock := socketPath(dataDir)
	if up, err := probeAdmin(ctx, sock); err != nil {
		return "", fmt.Errorf("backup: %w", err)
	} else if up {
		return "through the running server", backupViaSocket(ctx, sock, w)
	}
	dir := filepath.Join(dataDir, "badger")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("backup: no store in %s: %w", dir, err)
	}
	store, err := openStoreDirect(dataDir, stderr)
	if err != nil {
		return "", fmt.Errorf("backup: %w", err)
	}
	defer store.Close()
	_, err = at.direct(stderr, func() (any, error) { return nil, store.Backup(w) }, func(err error) messages.AuditEvent {
		return messages.AuditEvent{Event: messages.AuditBackup, Outcome: messages.AuditOutcome(err)}
	})
	return "from the store, no server running", err
}

func backupViaSocket(ctx context.Context, sock string, w io.Writer) error {
	client := adminClient(sock, 0) // a backup takes as long as it takes; ctx ends it
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin/admin/backup", nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		var e struct{ Message string }
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("backup: the server answered %d: %s", res.StatusCode, e.Message)
	}
	if _, err := io.Copy(w, res.Body); err != nil {
		return fmt.Errorf("backup: the stream from the server broke off: %w", err)
	}
	return nil
}

// restoreCommand implements `webauthnd restore --in FILE` into an empty (or new) data dir.
func restoreCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		dataDir, in string
		store       storeFlags
		audit       auditFlags
	)
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.StringVar(&dataDir, "data-dir", "./data", "the data directory to restore into; it must be empty or not exist")
	fs.StringVar(&in, "in", "", "the backup file written by webauthnd backup")
	store.register(fs, false)
	audit.register(fs)
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	if target, err := store.parsed(fs); err != nil {
		return err
	} else if target.postgres {
		return fmt.Errorf("restore: the store is PostgreSQL (%s): restore it with PostgreSQL's tools (pg_restore of a pg_dump, or "+
			"point-in-time recovery); to move a Badger backup there, restore it into an empty --data-dir without --store, "+
			"then run webauthnd migrate --from that directory", target.redacted)
	}
	if in == "" {
		return errors.New("--in is required")
	}
	if err := emptyOrAbsent(dataDir); err != nil {
		return err
	}
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	log, _ := newLogger("info", stderr)
	if err := secureDataDir(dataDir, log); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := badger.Restore(filepath.Join(dataDir, "badger"), f, zap.NewNop()); err != nil {
		return fmt.Errorf("restore from %s: %w", in, err)
	}
	// Only a restore that happened is written, to the restored data dir's audit log: one that
	// failed changed nothing and leaves the data dir as it found it, empty.
	if err := recordRestore(audit, dataDir, stderr, log); err != nil {
		return fmt.Errorf("restored %s into %s, but %w", in, dataDir, err)
	}
	fmt.Fprintf(stdout, "restored %s into %s; start the server on it. License keys are stored only as hashes, so the keys "+
		"your relying parties hold keep working (default-license.key is not part of a backup)\n", in, dataDir)
	return nil
}

// emptyOrAbsent refuses a data dir that holds anything: a restore never merges into, or
// replaces, a store.
func emptyOrAbsent(dataDir string) error {
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("restore: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("restore: %s is not empty (it holds %s); restore only into an empty or new data directory "+
			"(stop the server and move the old directory aside first)", dataDir, entries[0].Name())
	}
	return nil
}

// recordRestore writes the audit line of a restore into dataDir.
func recordRestore(flags auditFlags, dataDir string, stderr io.Writer, log *zap.Logger) error {
	audit, closeAudit, err := flags.open(dataDir, false, stderr, log)
	if err != nil {
		return err
	}
	audit.Record(messages.AuditEvent{Event: messages.AuditRestore, Outcome: messages.AuditOK, RemoteAddr: httpapi.LocalOperator})
	return closeAudit()
}
