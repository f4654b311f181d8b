package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/messages"
)

// auditFlags say where a process writes its audit trail (httpapi.Audit): the server for what
// it does, a management command for what it writes straight to a store.
type auditFlags struct {
	path    string
	maxSize int
	keep    int
}

// register adds --audit-log, --audit-log-max-size and --audit-log-keep to fs.
func (a *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.path, "audit-log", "", "the audit trail, one JSON line per security event (default: <data-dir>/audit.log, "+
		"or stderr for a management command over --store); - for stderr (a cluster over PostgreSQL: journald or a log shipper)")
	fs.IntVar(&a.maxSize, "audit-log-max-size", 100, "MiB at which the audit log is rotated (renamed audit-<time>.log)")
	fs.IntVar(&a.keep, "audit-log-keep", 10, "rotated audit logs to keep (0 keeps them all)")
}

// auditFile is the path of the audit log: --audit-log, or the data directory's audit.log; "-"
// is stderr. A management command over PostgreSQL has no data directory of its own: without
// --audit-log its lines go to stderr, with the command's other messages.
func (a auditFlags) auditFile(dataDir string, postgresCommand bool) string {
	switch {
	case a.path != "":
		return a.path
	case postgresCommand:
		return "-"
	}
	return filepath.Join(dataDir, "audit.log")
}

// open opens the audit log and returns its writer and what closes it. A file that cannot be
// opened for appending stops the process before it changes anything: an auth service that
// runs without its audit trail would lose every line unseen. Once open, a line that cannot be
// written is reported on log and the process goes on (see httpapi.NewAudit).
func (a auditFlags) open(dataDir string, postgresCommand bool, stderr io.Writer, log *zap.Logger) (*httpapi.Audit, func() error, error) {
	switch {
	case a.maxSize < 1:
		return nil, nil, fmt.Errorf("--audit-log-max-size %d: give at least 1 (MiB)", a.maxSize)
	case a.keep < 0:
		return nil, nil, fmt.Errorf("--audit-log-keep %d: give 0 (keep all) or more", a.keep)
	}
	path := a.auditFile(dataDir, postgresCommand)
	if path == "-" {
		return httpapi.NewAudit(stderr, log), func() error { return nil }, nil
	}
	// lumberjack opens the file at the first line, and creates a missing one 0600; this checks
	// now that it can be written, appending (a restart never truncates it), and creates it 0600
	// whatever the umask. An existing file keeps its mode: an operator may have opened it to a
	// log shipper's group (0640), which rotation keeps.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("--audit-log %s cannot be opened for appending: %w; give a writable file, or - for stderr", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, nil, fmt.Errorf("--audit-log %s: %w", path, err)
	}
	w := &lumberjack.Logger{Filename: path, MaxSize: a.maxSize, MaxBackups: a.keep}
	return httpapi.NewAudit(w, log), w.Close, nil
}

// direct makes a change straight on a store (no server runs, or the store is PostgreSQL) and
// writes its audit line, event of the change's error. The audit log is opened first: a
// command that cannot write its line changes nothing. Through the admin socket the server
// writes the line instead, so a change is written once.
func (l storeLocation) direct(stderr io.Writer, change func() (any, error), event func(error) messages.AuditEvent) (any, error) {
	log, _ := newLogger("info", stderr)
	audit, closeAudit, err := l.audit.open(l.dataDir, l.target.postgres, stderr, log)
	if err != nil {
		return nil, err
	}
	defer closeAudit() // after the line was written: a failure to close loses nothing
	v, err := change()
	e := event(err)
	if e.RemoteAddr == "" {
		e.RemoteAddr = httpapi.LocalOperator
	}
	audit.Record(e)
	return v, err
}

// recordAdmin writes the audit line of a change that the server makes by itself, at start, as
// the admin API would write it had an operator asked for it (the default community and
// license, the demo's license).
func recordAdmin(audit *httpapi.Audit, req httpapi.AdminRequest, err error) {
	if e, ok := httpapi.AuditOfAdmin(req, err); ok {
		audit.Record(e)
	}
}
