package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
	"github.com/webauthnd/webauthnd/persistence/postgres"
)

// storeFlags are the flags of every command that opens the store: --store (WEBAUTHND_STORE)
// names it, and --store-max-conns sizes the pool of a server or a migration.
type storeFlags struct {
	url      string
	maxConns int
	// fromArgs is whether --store came from the command line rather than the environment:
	// only then is a password in it refused.
	fromArgs bool
}

// defaultStoreMaxConns is a node's PostgreSQL pool when --store-max-conns is not given: the
// writer actor holds one connection per batch, and reads (license and community look-ups, a
// sign-in's credential) take one each for a round trip, so a few per core cover a node's 2 to
// 8 cores with room; a management command uses a pool of its own of managementMaxConns.
const (
	defaultStoreMaxConns = 16
	managementMaxConns   = 2
)

// register adds --store to fs, and --store-max-conns when pool (a server, a migration).
func (s *storeFlags) register(fs *flag.FlagSet, pool bool) {
	fs.StringVar(&s.url, "store", "", "the store: a postgres:// or postgresql:// URL, without its password (give it in PGPASSWORD, "+
		"PGPASSFILE or WEBAUTHND_STORE); default Badger in --data-dir")
	if pool {
		fs.IntVar(&s.maxConns, "store-max-conns", defaultStoreMaxConns, "the most connections to PostgreSQL this process opens")
	}
}

// parsed checks the flags after fs parsed them and returns the store they name.
func (s *storeFlags) parsed(fs *flag.FlagSet) (storeTarget, error) {
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "store" {
			s.fromArgs = true
		}
	})
	if fs.Lookup("store-max-conns") != nil && s.maxConns < 1 {
		return storeTarget{}, fmt.Errorf("--store-max-conns %d: give at least 1", s.maxConns)
	}
	source := "WEBAUTHND_STORE"
	if s.fromArgs {
		source = "--store"
	}
	return parseStoreURL(s.url, source, s.fromArgs)
}

// storeTarget is a store named by --store: Badger in the data directory (postgres false), or a
// PostgreSQL database.
type storeTarget struct {
	postgres bool
	// url is the URL as given, password included: for the driver only, never for a log or an
	// error.
	url string
	// redacted is the URL with its password replaced by xxxxx, for logs and errors.
	redacted string
	// secrets are the URL's password values, which scrub removes from errors.
	secrets []string
}

// passwordParams are the query parameters of a PostgreSQL URL that carry a secret (libpq's
// names): a password in the query is as visible in argv as one in the user info.
var passwordParams = []string{"password", "sslpassword"}

// parseStoreURL reads a --store URL (source names where it came from, for errors). No URL is
// Badger; a postgres:// or postgresql:// URL is PostgreSQL; anything else is an error. From
// the command line (inArgs), a URL that carries a password is refused: every user of the
// machine can read a process's argv (/proc/PID/cmdline, ps).
func parseStoreURL(raw, source string, inArgs bool) (storeTarget, error) {
	if raw == "" {
		return storeTarget{}, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// url.Parse's error quotes the whole URL, password included: say what to check instead.
		return storeTarget{}, fmt.Errorf("%s does not parse as a URL such as postgres://webauthnd@db.example.com:5432/webauthnd "+
			"(a character of the user name or password outside letters, digits and -._~ must be percent-encoded)", source)
	}
	t := storeTarget{url: raw}
	// Each secret as it means and as it is written (percent-encoded), either of which an error
	// could quote.
	if pw, ok := u.User.Password(); ok && pw != "" {
		_, encoded, _ := strings.Cut(u.User.String(), ":")
		t.secrets = append(t.secrets, pw, encoded)
	}
	q := u.Query()
	for _, kv := range strings.Split(u.RawQuery, "&") {
		k, encoded, _ := strings.Cut(kv, "=")
		name, _ := url.QueryUnescape(k)
		if !slices.ContainsFunc(passwordParams, func(p string) bool { return strings.EqualFold(p, name) }) {
			continue
		}
		if v, err := url.QueryUnescape(encoded); err == nil && v != "" {
			t.secrets = append(t.secrets, v)
		}
		if encoded != "" {
			t.secrets = append(t.secrets, encoded)
		}
		q[name] = []string{"xxxxx"}
	}
	red := *u
	red.RawQuery = q.Encode()
	t.redacted = red.Redacted()
	switch strings.ToLower(u.Scheme) {
	case "postgres", "postgresql":
		t.postgres = true
	default:
		return storeTarget{}, fmt.Errorf("%s %s: the store is a postgres:// or postgresql:// URL, or no %s at all for Badger in --data-dir",
			source, t.redacted, source)
	}
	if inArgs && len(t.secrets) > 0 {
		return storeTarget{}, fmt.Errorf("%s %s: the URL holds a password, and a command line is visible to every user of this machine "+
			"(ps, /proc/PID/cmdline): give the password in PGPASSWORD or a PGPASSFILE (~/.pgpass), or the whole URL in WEBAUTHND_STORE",
			source, t.redacted)
	}
	return t, nil
}

// scrub removes the URL's passwords from err's text, should a driver's error quote them: an
// error ends up in logs and on terminals. The error keeps its chain when there is nothing to
// remove.
func (t storeTarget) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	scrubbed := msg
	if t.url != "" {
		scrubbed = strings.ReplaceAll(scrubbed, t.url, t.redacted)
	}
	for _, s := range t.secrets {
		scrubbed = strings.ReplaceAll(scrubbed, s, "xxxxx")
	}
	if scrubbed == msg {
		return err
	}
	return errors.New(scrubbed)
}

// openPostgres opens the PostgreSQL store t names, with a pool of at most maxConns
// connections. A server and a migration bring the schema up to date (under the store's
// advisory lock, so nodes that start together do not race); a management command (exact)
// refuses a database whose schema is older or newer than this binary's, naming both versions,
// so that a command of one version never changes or misreads a cluster of another. The URL
// is logged only without its password, and no error carries it.
func openPostgres(ctx context.Context, t storeTarget, maxConns int, exact bool, log *zap.Logger) (*postgres.Store, error) {
	opts := []postgres.Option{postgres.WithLogger(log), postgres.WithMaxConns(int32(min(maxConns, math.MaxInt32)))}
	if exact {
		opts = append(opts, postgres.WithExactSchema())
	}
	log.Info("opening the PostgreSQL store", zap.String("store", t.redacted), zap.Int("maxConns", maxConns))
	store, err := postgres.Open(ctx, t.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", t.redacted, t.scrub(err))
	}
	return store, nil
}

// openServeStore opens a server's store: Badger in the data directory, with its free-space
// reserve, or PostgreSQL. It returns with it the store's backup (nil for PostgreSQL, backed up
// with its own tools) and what to call once the store is closed. A node over PostgreSQL locks
// its data directory, which holds its admin socket, key file and TLS files: two nodes sharing
// one would take each other's socket (on Badger, the store's own lock does that).
func openServeStore(ctx context.Context, t storeTarget, cfg serveConfig, log *zap.Logger) (persistence.Store, func(io.Writer) error, func(), error) {
	if !t.postgres {
		if err := refuseNodeDir(cfg.dataDir); err != nil {
			return nil, nil, nil, err
		}
		store, err := badger.Open(filepath.Join(cfg.dataDir, "badger"), log, badger.WithReserve(cfg.minFreeDisk))
		if err != nil {
			return nil, nil, nil, err
		}
		return store, store.Backup, func() {}, nil
	}
	unlock, err := lockDataDir(cfg.dataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := openPostgres(ctx, t, cfg.store.maxConns, false, log.Named("postgres"))
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return store, nil, unlock, nil
}

// nodeLockFile is the file a node over PostgreSQL locks in its data directory; its presence
// also marks the directory as a PostgreSQL node's.
const nodeLockFile = "node.lock"

// refuseNodeDir refuses to use the Badger store of a data directory that a node over
// PostgreSQL used: a node restarted without its --store (WEBAUTHND_STORE lost from its unit
// file, say) would otherwise come up on an empty Badger store of its own, with a default
// community and license of its own, beside the cluster, and a management command would write
// where no node reads.
func refuseNodeDir(dataDir string) error {
	if _, err := os.Lstat(filepath.Join(dataDir, nodeLockFile)); err != nil {
		return nil
	}
	return fmt.Errorf("data dir %s belongs to a node over PostgreSQL (it holds %s): give --store or WEBAUTHND_STORE; "+
		"to use a Badger store in it again, remove %s", dataDir, nodeLockFile, filepath.Join(dataDir, nodeLockFile))
}

// lockDataDir takes an exclusive lock on <dataDir>/node.lock, held until unlock (or the
// process's end), and refuses a data directory that another process holds.
func lockDataDir(dataDir string) (unlock func(), err error) {
	path := filepath.Join(dataDir, nodeLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another webauthnd process: every node needs a data directory of its own", dataDir)
		}
		return nil, fmt.Errorf("lock the data dir: %w", err)
	}
	return func() { f.Close() }, nil
}
