package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(1)
	}
}

// config is a run's settings, from flags.
type config struct {
	// urls are the nodes' base URLs: one server, or the nodes of a cluster over one database.
	urls         []string
	license      string
	licenseFile  string
	community    string
	tenant       string
	rpID         string
	origin       string
	scenario     string
	routes       string
	users        int
	duration     time.Duration
	burst        int
	count        int
	rate         float64
	timeout      time.Duration
	pids         []int
	pgPID        int
	pgDB         string
	jsonOut      string
	floorIters   int
	progress     bool
	cpuProfile   string
	adminSockets []string
	settle       time.Duration
	seeded       int
	seed         string
}

// The scenarios: a registration of a new user, a sign-in by username, a discoverable sign-in.
const (
	scenarioRegister     = "register"
	scenarioSignIn       = "signin"
	scenarioDiscoverable = "discoverable"
)

// The route families: /webauthn/u1/… in plain JSON, or /webauthn/… behind BlockID's envelope.
const (
	routesU1        = "u1"
	routesEncrypted = "encrypted"
)

// defaultSettle is the server's default --ceremony-timeout (300 s) and 2 s more: by then every
// ceremony a burst left unfinished has timed out.
const defaultSettle = 302 * time.Second

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var urls, pids, sockets listFlag
	fs.Var(&urls, "url", "base URL of the running server, or comma-separated (or repeated) the `URLs` of the nodes of a cluster: "+
		"each ceremony's options go to one node and its result to the next, round robin (loopback only; default http://127.0.0.1:8080)")
	fs.StringVar(&c.license, "license", "", "license key (default: the contents of --license-file)")
	fs.StringVar(&c.licenseFile, "license-file", "./data/default-license.key", "file holding the license key")
	fs.StringVar(&c.community, "community", "default", "community id")
	fs.StringVar(&c.tenant, "tenant", "", "tenant id sent with every call (empty: the community's)")
	fs.StringVar(&c.rpID, "rp-id", "localhost", "RP ID (the dns field)")
	fs.StringVar(&c.origin, "origin", "http://localhost:8080", "origin the authenticators put in clientDataJSON: the server's --public-url")
	fs.StringVar(&c.scenario, "scenario", scenarioSignIn, "register, signin (by username) or discoverable")
	fs.StringVar(&c.routes, "routes", routesU1, "route family: u1 (/webauthn/u1/…) or encrypted (the sealed /webauthn/… routes, one envelope key per user)")
	fs.IntVar(&c.users, "users", 8, "concurrent virtual users, each with its own passkey")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of steady load")
	fs.IntVar(&c.burst, "burst", 0, "start this many ceremonies as fast as --users workers allow, instead of steady load")
	fs.IntVar(&c.count, "count", 0, "stop steady load after this many ceremonies (0: no limit)")
	fs.Float64Var(&c.rate, "rate", 0, "start at most this many ceremonies per second in all (0: as fast as the users go)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "hard limit on the whole run, setup included")
	fs.Var(&pids, "pid", "server process id, or comma-separated (or repeated) the `PIDs` of every node: report their CPU time per ceremony (Linux /proc)")
	fs.IntVar(&c.pgPID, "pg-pid", 0, "the PostgreSQL postmaster's process id: report the CPU time of it and its children (the backends, the WAL writer, ...) per ceremony")
	fs.StringVar(&c.pgDB, "pg-db", "", "with --pg-pid: leave out the backends of databases other than this one, and children that ended (for a server others use too)")
	fs.StringVar(&c.jsonOut, "json", "", "write a JSON summary to this file (- for stdout; the text report then goes to stderr)")
	fs.IntVar(&c.floorIters, "floor-iterations", 2000, "iterations per round when timing the cryptographic floor")
	fs.BoolVar(&c.progress, "progress", true, "print a progress line each second on stderr")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the harness's own CPU profile of the measured phase to this file")
	fs.Var(&sockets, "admin-socket", "the server's admin socket (<data-dir>/admin.sock), or one per --url, in the same order: report the store's round trips per ceremony "+
		"(over PostgreSQL), and with --burst the live ceremonies and heap before the burst and --settle after")
	fs.DurationVar(&c.settle, "settle", defaultSettle, "with --admin-socket: wait this long after the burst before reading the server again (the server's --ceremony-timeout + 2s)")
	fs.IntVar(&c.seeded, "seeded", 0, "sign in as the `N` users of a store written by bench seed --users N, skipping registration")
	fs.StringVar(&c.seed, "seed", "", "with --seeded: the seed the store was written with")
	fs.Usage = func() { usage(fs) }
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.urls, c.adminSockets = urls, sockets
	if len(c.urls) == 0 {
		c.urls = []string{"http://127.0.0.1:8080"}
	}
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return c, fmt.Errorf("--pid %q: give process ids", p)
		}
		c.pids = append(c.pids, pid)
	}
	switch c.scenario {
	case scenarioRegister, scenarioSignIn, scenarioDiscoverable:
	default:
		return c, fmt.Errorf("--scenario %q: use register, signin or discoverable", c.scenario)
	}
	switch c.routes {
	case routesU1, routesEncrypted:
	default:
		return c, fmt.Errorf("--routes %q: use u1 or encrypted", c.routes)
	}
	switch {
	case c.users < 1:
		return c, errors.New("--users: give at least 1")
	case c.burst < 0 || c.count < 0 || c.rate < 0:
		return c, errors.New("--burst, --count and --rate cannot be negative")
	case c.burst == 0 && c.duration <= 0:
		return c, errors.New("--duration: give a positive duration")
	case c.timeout <= 0:
		return c, errors.New("--timeout: give a positive duration")
	case c.floorIters < 1:
		return c, errors.New("--floor-iterations: give at least 1")
	case len(c.adminSockets) > 0 && len(c.adminSockets) != len(c.urls):
		return c, fmt.Errorf("--admin-socket: give one per --url, in the same order (%d sockets for %d nodes)", len(c.adminSockets), len(c.urls))
	case c.pgPID < 0:
		return c, errors.New("--pg-pid cannot be negative")
	case c.pgDB != "" && c.pgPID == 0:
		return c, errors.New("--pg-db: give --pg-pid too")
	case len(c.adminSockets) > 0 && c.burst > 0 && (c.settle < 0 || c.settle >= c.timeout):
		return c, fmt.Errorf("--settle %s: give a duration from 0 to less than --timeout (%s)", c.settle, c.timeout)
	case c.seeded < 0:
		return c, errors.New("--seeded cannot be negative")
	case c.seeded > 0 && c.scenario == scenarioRegister:
		return c, errors.New("--seeded: the seeded users sign in; use --scenario signin or discoverable")
	case c.seeded > 0 && c.seed == "":
		return c, errors.New("--seeded: give the --seed the store was written with")
	case c.seeded > 0 && c.seeded < c.users:
		return c, fmt.Errorf("--seeded %d: give at least as many seeded users as --users (%d), which share them out", c.seeded, c.users)
	case c.seeded == 0 && c.seed != "":
		return c, errors.New("--seed: give --seeded N too")
	}
	for i, u := range c.urls {
		if err := checkLoopback(u); err != nil {
			return c, err
		}
		c.urls[i] = strings.TrimRight(u, "/")
	}
	if c.license == "" {
		b, err := os.ReadFile(c.licenseFile)
		if err != nil {
			return c, fmt.Errorf("no --license, and --license-file: %w", err)
		}
		c.license = strings.TrimSpace(string(b))
	}
	return c, nil
}

// checkLoopback refuses a URL whose host is not localhost or a loopback address.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q: give http(s)://host:port", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || strings.EqualFold(host, "localhost") {
		return nil
	}
	return fmt.Errorf("--url %q: refusing a host that is not loopback", raw)
}

// listFlag is a flag that may be repeated, each value a comma-separated list; it collects
// every item, in order.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			return fmt.Errorf("an empty item in %q", v)
		}
		*l = append(*l, item)
	}
	return nil
}

// startProfile starts a CPU profile of the harness into path (none when path is empty).
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// usage prints the flags of a run, and the seed subcommand.
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprint(w, `usage: bench [flags]              drive ceremonies against a running server
       bench seed --data-dir DIR --users N --seed S [--community default] [--rp-id localhost]
                                    write N users with a passkey each into a stopped server's store

flags of a run:
`)
	fs.PrintDefaults()
}

// run is the whole harness: floor, setup, measurement, report; or, with "seed" first, the seed
// subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "seed" {
		return runSeed(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	if _, err := sample(cfg.pids, cfg.pgPID, cfg.pgDB); err != nil { // a wrong --pid fails now, not after the setup
		return err
	}
	text := stdout // the human report; stdout is the JSON's when --json is -
	if cfg.jsonOut == "-" {
		text = stderr
	}

	fmt.Fprintf(stderr, "timing the cryptographic floor (%d iterations x %d rounds)...\n", cfg.floorIters, floorRounds)
	floor := measureFloor(cfg.floorIters)

	c := newClient(cfg)
	users, err := setup(ctx, c, cfg, stderr)
	if err != nil {
		return err
	}

	var admin nodesAdmin
	var statsBefore []serverStats
	burst := cfg.burst > 0
	if len(cfg.adminSockets) > 0 {
		if burst {
			// Before and after, the virtual users hold no idle connection: an idle keep-alive
			// connection keeps a goroutine and its buffers (~20 KB) on the server until its
			// idle timeout (120 s), which is the clients' doing, not the ceremonies'.
			c.http.CloseIdleConnections()
		}
		admin = newNodesAdmin(cfg.adminSockets)
		if statsBefore, err = admin.stats(ctx, burst); err != nil {
			return err
		}
	}
	before, err := sample(cfg.pids, cfg.pgPID, cfg.pgDB)
	if err != nil {
		return err
	}
	stopProfile, err := startProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}
	res := drive(ctx, c, cfg, users, stderr)
	stopProfile()
	after, err := sample(cfg.pids, cfg.pgPID, cfg.pgDB)
	if err != nil {
		return err
	}
	var statsEnd []serverStats
	if admin != nil {
		// Without a collection: only the round trips are read here.
		if statsEnd, err = admin.stats(ctx, false); err != nil {
			return err
		}
	}
	var aftermath *Aftermath
	if admin != nil && burst {
		c.http.CloseIdleConnections() // the burst's clients leave
		fmt.Fprintf(stderr, "settling for %s before reading the server's stats again...\n", cfg.settle)
		if !sleepUntil(ctx, time.Now().Add(cfg.settle)) {
			return fmt.Errorf("settling: %w", ctx.Err())
		}
		statsAfter, err := admin.stats(ctx, true)
		if err != nil {
			return err
		}
		settled, err := sample(cfg.pids, cfg.pgPID, cfg.pgDB)
		if err != nil {
			return err
		}
		a := newAftermath(cfg.settle, sumStats(statsBefore), sumStats(statsAfter), before.serverRSS, settled.serverRSS)
		aftermath = &a
	}

	sum := summarize(cfg, res, floor, before, after)
	sum.Aftermath = aftermath
	sum.RoundTrips = newRoundTrips(statsBefore, statsEnd, sum.Ceremonies)
	writeText(text, sum)
	if cfg.jsonOut != "" {
		if err := writeJSON(cfg.jsonOut, stdout, sum); err != nil {
			return err
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the run hit --timeout %s before it finished", cfg.timeout)
	}
	return nil
}
