package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/webauthnd/webauthnd/actors"
	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

type serveConfig struct {
	addr            string
	dataDir         string
	publicURL       string
	ceremonyTimeout time.Duration
	maxCeremonies   int
	maxPerLicense   int
	tokenTTL        time.Duration
	drainTimeout    time.Duration
	logLevel        string
	directory       listFlag
	tlsCert         string
	tlsKey          string
	ecCurve         string
	allowedSpan     time.Duration
	failuresPerMin  float64
	failureBurst    float64
	licenseFactor   float64
	minFreeDisk     badger.Reserve
	demo            autoBool
	store           storeFlags
	audit           auditFlags
	trustedProxies  listFlag
	metricsAddr     string
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.dataDir, "data-dir", "./data", "directory of the Badger store (without --store), the default license key, the admin socket; one node's own")
	fs.StringVar(&cfg.publicURL, "public-url", "http://localhost:8080", "the service's external URL; the default community's RP ID and origin")
	fs.DurationVar(&cfg.ceremonyTimeout, "ceremony-timeout", 300*time.Second, "how long a ceremony waits for its result")
	fs.IntVar(&cfg.maxCeremonies, "max-ceremonies", 100_000, "live ceremonies per community; beyond it options answer 429")
	fs.IntVar(&cfg.maxPerLicense, "max-ceremonies-per-license", 0, "live ceremonies one license may hold in one community (0: a quarter of --max-ceremonies, at least 1); beyond it options answer 429")
	fs.DurationVar(&cfg.tokenTTL, "token-ttl", 5*time.Minute, "lifetime of signature tokens")
	fs.DurationVar(&cfg.drainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for requests in flight")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS; reloaded when the file changes")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&cfg.ecCurve, "ec-curve", "secp256k1", "envelope curve: secp256k1, or P-256 (prime256v1, secp256r1)")
	fs.DurationVar(&cfg.allowedSpan, "allowed-time-span", 60*time.Second, "how far a sealed request's ts may be from now")
	fs.Float64Var(&cfg.failuresPerMin, "failed-signins-per-minute", 20, "failed sign-ins a credential regains per minute (0: no limit)")
	fs.Float64Var(&cfg.failureBurst, "failed-signins-burst", 10, "failed sign-ins a credential may make at once before 429")
	fs.Float64Var(&cfg.licenseFactor, "license-failures-factor", 100, "a license's failed sign-in limit, as a multiple of a credential's")
	fs.Var(&cfg.minFreeDisk, "min-free-disk", "free space to keep on the data directory's filesystem: a size (256MiB, 1GiB, bytes) or a share (5%); "+
		"below it registrations, imports and admin writes answer 507, below a quarter of it every write does (default 256MiB or 5%, whichever is smaller, at least 68MiB)")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "", "address of a listener of its own serving Prometheus /metrics, e.g. 127.0.0.1:9464 (default: off; never the public port)")
	fs.Var(&cfg.demo, "demo", "serve the passkey demo at / (default: only when --public-url's host is localhost, and never over --store)")
	cfg.store.register(fs, true)
	cfg.audit.register(fs)
	fs.Var(&cfg.trustedProxies, "trusted-proxy", "a CIDR or address of a reverse proxy whose X-Forwarded-For names the client (repeatable); "+
		"X-Forwarded-For from any other peer is ignored")
	fs.Var(&cfg.directory, "sd", "service directory entry KEY=URL for /sd (repeatable); unset keys are <public-url>/KEY")
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	target, err := cfg.store.parsed(fs)
	if err != nil {
		return err
	}
	switch {
	case cfg.ceremonyTimeout < time.Second:
		return fmt.Errorf("--ceremony-timeout %s: give at least 1s", cfg.ceremonyTimeout)
	case cfg.maxCeremonies < 1:
		return fmt.Errorf("--max-ceremonies %d: give at least 1", cfg.maxCeremonies)
	case cfg.maxPerLicense < 0 || cfg.maxPerLicense > cfg.maxCeremonies:
		return fmt.Errorf("--max-ceremonies-per-license %d: give 1 to --max-ceremonies (%d), or 0 for a quarter of it", cfg.maxPerLicense, cfg.maxCeremonies)
	case cfg.tokenTTL < time.Second:
		return fmt.Errorf("--token-ttl %s: give at least 1s", cfg.tokenTTL)
	case cfg.failuresPerMin < 0 || cfg.failureBurst < 1 || cfg.licenseFactor < 1:
		return errors.New("--failed-signins-per-minute must be ≥ 0, --failed-signins-burst and --license-failures-factor ≥ 1")
	case cfg.allowedSpan < time.Second:
		return fmt.Errorf("--allowed-time-span %s: give at least 1s", cfg.allowedSpan)
	case (cfg.tlsCert == "") != (cfg.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	}
	directory := map[string]string{}
	for _, kv := range cfg.directory {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return fmt.Errorf("--sd %q: give KEY=URL", kv)
		}
		directory[k] = v
	}
	if _, err := httpapi.CanonicalCurve(cfg.ecCurve); err != nil {
		return fmt.Errorf("--ec-curve: %w", err)
	}
	defaultCommunity, err := defaultCommunityFor(cfg.publicURL)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.logLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	var certs *certReloader
	if cfg.tlsCert != "" {
		if certs, err = newCertReloader(cfg.tlsCert, cfg.tlsKey, log); err != nil {
			return err
		}
	}

	if err := secureDataDir(cfg.dataDir, log); err != nil {
		return err
	}
	trustedProxies, err := httpapi.ParseTrustedProxies(cfg.trustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxy: %w", err)
	}
	audit, closeAudit, err := cfg.audit.open(cfg.dataDir, false, stderr, log)
	if err != nil {
		return err
	}
	defer func() { _ = closeAudit() }() // last: the servers, which write it, stopped before
	store, backup, release, err := openServeStore(ctx, target, cfg, log)
	if err != nil {
		return err
	}
	defer release()
	// engine is set once it runs; the engine stops before the store closes, both within
	// closeTimeout (a store that cannot write never finishes closing), and a failure to close
	// makes run fail.
	var engine *actors.Engine
	defer func() {
		stop := func() error { return nil }
		if engine != nil {
			stop = func() error { engine.Stop(); return nil }
		}
		if cerr := closeWithin(closeTimeout, stop, store.Close); cerr != nil {
			log.Error("close store", zap.Error(cerr))
			err = errors.Join(err, cerr)
		}
	}()
	if err := bootstrapOnce(ctx, store, defaultCommunity, cfg.dataDir, stdout, cfg.publicURL, audit, log); err != nil {
		return err
	}
	keys := &keyManager{store: store, write: applyOne(store), tokenTTL: cfg.tokenTTL}
	if err := keys.ensure(ctx, cfg.ecCurve); err != nil {
		return err
	}
	if err := keys.load(ctx); err != nil {
		return err
	}
	signing, err := keys.currentSigningKey(ctx)
	if err != nil {
		return err
	}
	decoy, err := decoySecret(ctx, store)
	if err != nil {
		return err
	}
	challenges, err := challengeKey(ctx, store)
	if err != nil {
		return err
	}
	// A store that keeps ceremonies is shared by nodes: any of them finishes any ceremony.
	ceremonies, _ := any(store).(persistence.Ceremonies)
	var metrics *httpapi.Metrics
	if cfg.metricsAddr != "" {
		// Scraped only once the engine runs: the metrics listener opens after it.
		metrics = httpapi.NewMetrics(func(ctx context.Context) map[string]int { return engine.LiveByCommunity(ctx) })
	}
	engine, err = actors.NewEngine(actors.Config{
		CeremonyTimeout:         cfg.ceremonyTimeout,
		MaxCeremonies:           cfg.maxCeremonies,
		MaxCeremoniesPerLicense: cfg.maxPerLicense,
		Issuer:                  trimSlash(cfg.publicURL) + "/webauthn",
		TokenTTL:                cfg.tokenTTL,
		SigningKey:              signing,
		DecoySecret:             decoy,
		ChallengeKey:            challenges,
		Ceremonies:              ceremonies,

		FailedSignInsPerMinute: cfg.failuresPerMin,
		FailedSignInBurst:      cfg.failureBurst,
		LicenseFailureFactor:   cfg.licenseFactor,
		Observer:               observerOf(metrics),
	}, store, log)
	if err != nil {
		return err
	}
	// From here on keys change through the engine's writer, and rotations reach the signer,
	// whichever node or command made them.
	keys.write, keys.signer = engine.Write, engine.Signer()
	if err := keys.load(ctx); err != nil {
		return err
	}
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); keys.follow(followCtx, keyringPoll, log) }()
	defer func() { stopFollow(); <-followed }() // before the store closes (deferred earlier)

	// The demo keeps its sessions in one process's memory and re-keys its license at every
	// start, so over a shared database it is off unless asked for (see demoLicense).
	demoOn := cfg.demo.or(!target.postgres && hostOf(cfg.publicURL) == "localhost")
	demo, err := demoLicense(ctx, store, engine.Write, cfg.dataDir, defaultCommunity, demoOn, target.postgres, audit, log)
	if err != nil {
		return err
	}

	var draining atomic.Bool
	handler := httpapi.NewServer(httpapi.Deps{
		Config: httpapi.Config{
			PublicURL: cfg.publicURL, Version: version, CeremonyTimeout: cfg.ceremonyTimeout,
			TokenTTL: cfg.tokenTTL, AllowedTimeSpan: cfg.allowedSpan, Directory: directory,
		},
		Ceremonies:  engine,
		Licenses:    store,
		Communities: store,
		Health: httpapi.HealthChecks{
			Store: store.Ping, Actors: engine.Ping, Storage: store.CheckSpace,
		},
		Draining:  draining.Load,
		TokenKeys: func() any { return engine.Signer().JWKS() },
		Envelope:  keys.envelope,
		Replays:   replays{engine},
		Passkeys:  engine,
		Vendor:    httpapi.VendorDeps{Records: store, Write: engine.Write, Statements: actors.Statements{}},
		Demo:      demo,
		Metrics:   metrics,
		Log:       log,

		Audit:          audit,
		TrustedProxies: trustedProxies,
	})
	// inflight counts requests in their handlers; while draining, responses close their
	// connections so that clients reconnect (to another instance).
	var inflight atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight.Add(1)
			defer inflight.Add(-1)
			if draining.Load() {
				w.Header().Set("Connection", "close")
			}
			handler.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log),
	}
	metricsSrv, metricsLn, err := listenMetrics(cfg.metricsAddr, metrics, log)
	if err != nil {
		return err
	}
	if metricsLn != nil {
		defer metricsLn.Close() // on an early return; closing it again after Shutdown is harmless
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	adminSrv, adminLn, err := listenAdmin(cfg.dataDir, engine, store, backup, keys, audit, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	scheme, serveHTTP := "http", func() error { return srv.Serve(ln) }
	if certs != nil {
		// ServeTLS adds HTTP/2 and answers a plain HTTP request with a 400.
		srv.TLSConfig = certs.tlsConfig()
		scheme, serveHTTP = "https", func() error { return srv.ServeTLS(ln, "", "") }
	}
	errc := make(chan error, 3)
	go func() { errc <- serveHTTP() }()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	if metricsSrv != nil {
		go func() { errc <- metricsSrv.Serve(metricsLn) }()
		log.Info("metrics listening", zap.String("addr", metricsLn.Addr().String()))
		fmt.Fprintf(stdout, "webauthnd metrics on http://%s/metrics\n", metricsLn.Addr())
	}
	log.Info("webauthnd listening", zap.String("addr", ln.Addr().String()), zap.String("scheme", scheme), zap.String("publicUrl", cfg.publicURL))
	fmt.Fprintf(stdout, "webauthnd listening on %s://%s\n", scheme, ln.Addr())

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", zap.Error(err))
		}
	}
	// Drain: /healthz answers 503 at once, so a load balancer stops sending. The listener
	// stays open while requests are in flight (those that still arrive are served), until none
	// is or --drain-timeout has passed; then it closes, and the requests in flight get a short
	// grace to finish. Then the engine and the store close (deferred above, in that order,
	// within closeTimeout).
	draining.Store(true)
	deadline := time.Now().Add(cfg.drainTimeout)
	for inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	shutdownCtx, cancel := context.WithDeadline(context.Background(), deadline.Add(drainGrace))
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("drain did not finish; closing the connections left", zap.Error(err))
		_ = srv.Close()
	}
	if err := adminSrv.Shutdown(shutdownCtx); err != nil {
		_ = adminSrv.Close()
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(shutdownCtx); err != nil {
			_ = metricsSrv.Close()
		}
	}
	log.Info("webauthnd stopped")
	return nil
}

// demoStore is what demoLicense reads.
type demoStore interface {
	persistence.Licenses
	persistence.Communities
}

// demoLicenseID is the fixed id of the demo's license.
const demoLicenseID = "demo"

// onDemoLicense lets the browser test learn the demo's key, which is otherwise in memory only,
// to check that no response carries it. It is called with the data directory and the key.
var onDemoLicense = func(dataDir, key string) {}

// demoLicense turns the demo on or leaves it off. On, it gives the license "demo" (of the
// default community) a new key at every start, in one write that retires the previous key;
// the key stays in memory. Off, it revokes that license if an earlier start left it active,
// so that no key of a process gone stays valid; but over a shared database (shared), where
// the node running the demo may be another one, it leaves the license alone. A default
// community that is gone, or a write refused (a full disk), leaves the demo off with a warning
// rather than stopping the service: a revocation refused too (that key was in the memory of a
// process gone; the next start revokes it). Each write leaves its audit line on audit.
func demoLicense(ctx context.Context, store demoStore, write func(context.Context, persistence.Op) (any, error), dataDir string,
	community persistence.Community, on, shared bool, audit *httpapi.Audit, log *zap.Logger) (*httpapi.DemoConfig, error) {
	if !on && shared {
		return nil, nil
	}
	if !on {
		licenses, err := store.AllLicenses(ctx)
		if err != nil {
			return nil, err
		}
		for _, l := range licenses {
			if l.ID == demoLicenseID && !l.Disabled {
				revoke := httpapi.AdminRevokeLicense{ID: demoLicenseID}
				_, err := write(ctx, revoke.Op())
				recordAdmin(audit, revoke, err)
				if err != nil {
					log.Warn("demo off: its license, left active by an earlier start, could not be revoked (the next start tries again)", zap.Error(err))
					return nil, nil
				}
				log.Info("demo off: its license revoked")
			}
		}
		return nil, nil
	}
	if _, err := store.Community(ctx, community.ID); err != nil {
		log.Warn("demo off: the default community is missing", zap.String("community", community.ID), zap.Error(err))
		return nil, nil
	}
	lic, key, err := persistence.NewLicense(persistence.LevelCommunity, community.ID, "", 0)
	if err != nil {
		return nil, err
	}
	lic.ID = demoLicenseID
	_, err = write(ctx, persistence.PutLicense{License: lic, Rekey: true})
	recordAdmin(audit, httpapi.AdminLicenseOf(lic), err)
	if err != nil {
		log.Warn("demo off: its license could not be stored", zap.Error(err))
		return nil, nil
	}
	onDemoLicense(dataDir, key)
	log.Info("passkey demo on at /", zap.String("community", community.ID))
	if shared {
		log.Warn("passkey demo on over a shared database: its sessions live in this node's memory, and another node that " +
			"starts with --demo re-keys the demo license and ends this node's demo; run it on one node only")
	}
	return &httpapi.DemoConfig{LicenseKey: key, CommunityID: community.ID}, nil
}

// drainGrace is how long requests in flight may still take once the listener has closed.
const drainGrace = time.Second

// closeTimeout bounds the engine's stop and the store's close at shutdown. Closing flushes
// Badger's memtable into a table; when the store cannot write (its directory removed, its disk
// gone or full), Badger retries that flush forever, and shutdown would never end. Every
// acknowledged write is already synced to the write-ahead log, which the next start on the same
// directory replays, so giving up loses nothing that a client was told is stored.
const closeTimeout = 5 * time.Second

// closeWithin runs steps in order in a goroutine and returns their first error, or an error
// saying that they did not finish within d (they are left running: the process is exiting).
func closeWithin(d time.Duration, steps ...func() error) error {
	done := make(chan error, 1)
	go func() {
		var first error
		for _, step := range steps {
			if err := step(); err != nil && first == nil {
				first = err
			}
		}
		done <- first
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("the store did not close within %s (can its data directory still be written? a removed directory, "+
			"a lost or full disk): stopped waiting; the writes it acknowledged are synced in its write-ahead log, which the next start on that directory replays", d)
	}
}

// defaultCommunityFor builds the default community of a public URL and refuses one that would
// make an invalid community.
func defaultCommunityFor(publicURL string) (persistence.Community, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return persistence.Community{}, fmt.Errorf("--public-url %q: give an absolute URL such as https://login.example.com", publicURL)
	}
	c := persistence.Community{
		ID: "default", TenantID: "default", Name: "default",
		RPIDs:            []string{u.Hostname()},
		Origins:          []string{u.Scheme + "://" + u.Host},
		UserVerification: persistence.VerificationPreferred,
	}
	if err := persistence.ValidateCommunity(c); err != nil {
		return c, fmt.Errorf("--public-url %q cannot make the default community: %w", publicURL, err)
	}
	return c, nil
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// replays remembers sealed requests' ids through the engine's writer, grouped with the
// ceremonies' writes.
type replays struct{ engine *actors.Engine }

func (r replays) Remember(ctx context.Context, caller []byte, uuid string, until time.Time) error {
	_, err := r.engine.Write(ctx, persistence.RememberRequest{Caller: caller, UUID: uuid, Until: until})
	return err
}
