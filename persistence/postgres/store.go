package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// Store is webauthnd's PostgreSQL store: every node of a cluster opens one over the same
// database. It implements [persistence.Store] and [persistence.Ceremonies].
type Store struct {
	pool *pgxpool.Pool
	log  *zap.Logger
	// listenConfig is how the listener connects: the pool's connection settings, on a
	// connection of its own (LISTEN needs one that no transaction borrows).
	listenConfig *pgx.ConnConfig
	opts         options
	secret       redactor

	// config caches communities and licenses, which every request reads and operators rarely
	// change. Apply clears it after a batch that changed either; the listener clears it when
	// another process did (notify.go). configGen counts the clears, so that a read that raced
	// one is not cached; listening says whether notifications reach this process at all:
	// while they do not, nothing is served from the cache.
	config    sync.Map
	configGen atomic.Uint64
	listening atomic.Bool
	// vendorGen and keyringGen move on after every committed write of a vendor record or a
	// keyring, by this process (Apply) or another (the listener); mdsGen is the imported
	// BLOB's generation as the database holds it.
	vendorGen  atomic.Uint64
	keyringGen atomic.Uint64
	mdsGen     atomic.Uint64
	// mdsMu makes this process's imports of MDS BLOBs run one at a time (an advisory lock
	// does so across processes).
	mdsMu sync.Mutex

	// versions are the config_versions last seen (notify.go), under refreshMu.
	refreshMu sync.Mutex
	versions  map[string]int64

	roundTrips atomic.Uint64

	stop      context.CancelFunc
	done      sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ persistence.Store      = (*Store)(nil)
	_ persistence.Ceremonies = (*Store)(nil)
)

// Option changes how Open opens a store.
type Option func(*options)

type options struct {
	log          *zap.Logger
	maxConns     int32
	exactSchema  bool
	tracer       pgx.QueryTracer
	refreshEvery time.Duration
	sweepEvery   time.Duration
}

// WithLogger logs the store's background work (notifications, sweeps, reconnections) and its
// migrations to log; without it, nothing is logged. No line carries the connection string.
func WithLogger(log *zap.Logger) Option { return func(o *options) { o.log = log } }

// WithMaxConns bounds the pool's connections (pgxpool's default: 4, or the number of CPUs if
// more). The listener holds one more connection of its own.
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// WithExactSchema makes Open refuse a database whose schema version is not the one this binary
// knows, older or newer, without migrating it: what management commands use, so that a command
// of one version never changes, or misreads, the database of a cluster running another.
func WithExactSchema() Option { return func(o *options) { o.exactSchema = true } }

// WithTracer sets a pgx tracer on every connection of the pool (not the listener's), to log or
// measure queries; it may also implement pgx.BatchTracer, pgx.CopyFromTracer and
// pgx.PrepareTracer. Round trips are counted without one: see [Store.RoundTrips].
func WithTracer(t pgx.QueryTracer) Option { return func(o *options) { o.tracer = t } }

// WithRefreshEvery sets how often the store re-reads the config versions in case it missed a
// notification (default 5 s).
func WithRefreshEvery(d time.Duration) Option { return func(o *options) { o.refreshEvery = d } }

// WithSweepEvery sets how often the store deletes expired ceremonies and replay records
// (default 30 s).
func WithSweepEvery(d time.Duration) Option { return func(o *options) { o.sweepEvery = d } }

// Open connects to the PostgreSQL database that url names (a postgres:// URL or a keyword/value
// connection string; a password is better given by PGPASSWORD or PGPASSFILE), brings its schema
// up to date under an advisory lock (or, WithExactSchema, only checks it), and starts the
// store's listener and sweeps, which Close stops. No error and no log line carries the password.
func Open(ctx context.Context, url string, with ...Option) (*Store, error) {
	o := options{log: zap.NewNop(), refreshEvery: 5 * time.Second, sweepEvery: 30 * time.Second}
	for _, opt := range with {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts what it recognises as a password; a malformed string can hide one where
		// it does not look, so nothing of the string is repeated.
		return nil, errors.New("the PostgreSQL connection string cannot be parsed (it is not repeated here, as it may hold a password): " +
			"give a postgres://user@host:port/database URL or keyword=value pairs")
	}
	s := &Store{log: o.log, opts: o, secret: passwordsOf(cfg.ConnConfig), versions: map[string]int64{}}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	configureConn(cfg.ConnConfig)
	s.listenConfig = cfg.ConnConfig.Copy()
	// Operators (and tests) tell the listener's connection from the pool's by its name.
	s.listenConfig.RuntimeParams["application_name"] += " listener"
	// The pool's connections count their round trips (the listener's do not: they are no
	// request's).
	cfg.ConnConfig.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, conn net.Conn) (net.Conn, error) {
		return &countingConn{Conn: conn, n: &s.roundTrips}, nil
	}
	if o.tracer != nil {
		cfg.ConnConfig.Tracer = o.tracer
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, s.secret.error(fmt.Errorf("open the PostgreSQL pool: %w", err))
	}
	s.pool = pool
	if err := s.prepare(ctx); err != nil {
		pool.Close()
		return nil, s.secret.error(err)
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.done.Add(2)
	go s.listen(bg)
	go s.maintain(bg)
	return s, nil
}

// prepare migrates the schema (or checks it) and reads the config versions, on the pool's first
// connection.
func (s *Store) prepare(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Release()
	if err := migrate(ctx, conn.Conn(), s.opts.exactSchema, s.log); err != nil {
		return err
	}
	if err := s.refresh(ctx, conn.Conn(), true); err != nil {
		return fmt.Errorf("read the config versions: %w", err)
	}
	return nil
}

// passwordsOf is the redactor of the password c sends (its fallbacks share it).
func passwordsOf(c *pgx.ConnConfig) redactor {
	return newRedactor(c.Password)
}

// configureConn sets what every connection of the store relies on.
func configureConn(c *pgx.ConnConfig) {
	// The ops take the row locks they need and decide on what each statement reads (see
	// apply.go): that is READ COMMITTED, whatever the database's default.
	c.RuntimeParams["default_transaction_isolation"] = "read committed"
	if c.RuntimeParams["application_name"] == "" {
		c.RuntimeParams["application_name"] = "webauthnd"
	}
}

// Close stops the listener and the sweeps and closes the pool; nothing may use the store
// afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.done.Wait()
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.secret.error(s.pool.Ping(ctx))
}

// CheckSpace returns nil: PostgreSQL refuses writes it cannot make on its own, and each such
// write fails as any failed write does. The free-space reserve is the embedded store's.
func (s *Store) CheckSpace(context.Context) error { return nil }

// Empty reports whether the store holds no community yet.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var empty bool
	err := s.pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM communities)`).Scan(&empty)
	return empty, s.secret.error(err)
}

// RoundTrips counts the round trips the pool's connections made to the database since Open:
// each time a connection sent something after it had read an answer. A pipelined batch is one
// round trip; the first use of a statement on a connection costs one more (pgx prepares it).
// The listener's connection is not counted.
func (s *Store) RoundTrips() uint64 { return s.roundTrips.Load() }

// countingConn counts a round trip at each write that follows a read.
type countingConn struct {
	net.Conn
	n *atomic.Uint64
	// wrote is set by a write and cleared by a read: a write while it is clear starts a round
	// trip. Reads and writes may come from two goroutines (pgconn reads in the background
	// while it writes a large batch).
	wrote atomic.Bool
}

func (c *countingConn) Write(p []byte) (int, error) {
	if !c.wrote.Swap(true) {
		c.n.Add(1)
	}
	return c.Conn.Write(p)
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.wrote.Store(false)
	}
	return n, err
}

// Exclusive runs fn while no other caller of Exclusive with the same name, in this process or
// any other on the database, runs: a session advisory lock on a connection of its own (not the
// pool's, which fn may use), held until fn returns. It is how nodes starting together on an
// empty database let one of them create the embedded default, and the others find it made.
func (s *Store) Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg := s.listenConfig.Copy()
	cfg.RuntimeParams["application_name"] = strings.TrimSuffix(cfg.RuntimeParams["application_name"], " listener") + " lock"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return s.secret.error(fmt.Errorf("connect to PostgreSQL: %w", err))
	}
	// Closing the session releases its lock, whatever happened.
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('webauthnd exclusive: ' || $1, 0))`, name); err != nil {
		return s.secret.error(fmt.Errorf("take the lock %q: %w", name, err))
	}
	return fn(ctx)
}
