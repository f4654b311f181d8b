package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/actors"
	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

func socketPath(dataDir string) string { return filepath.Join(dataDir, "admin.sock") }

// listenAdmin serves the admin API on the data directory's Unix socket: mode 0600, and each
// connection's peer must run as this process's user. backup writes a backup of the store, or is
// nil for a store that has no backups of its own.
func listenAdmin(dataDir string, engine *actors.Engine, store persistence.Store, backup func(io.Writer) error, keys *keyManager,
	audit *httpapi.Audit, log *zap.Logger) (*http.Server, net.Listener, error) {
	path := socketPath(dataDir)
	_ = os.Remove(path) // a stale socket of a dead server; the store's lock proves none runs
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	var roundTrips func() uint64
	if counter, ok := store.(interface{ RoundTrips() uint64 }); ok {
		roundTrips = counter.RoundTrips
	}
	srv := &http.Server{
		Handler: httpapi.NewAdminServer(httpapi.AdminDeps{
			Write:    engine.Write,
			Licenses: store.AllLicenses,
			RotateKeys: func(ctx context.Context, envelope bool, curve string, signing bool) (any, error) {
				return keys.rotate(ctx, rotateRequest{Envelope: envelope, Curve: curve, Signing: signing})
			},
			Backup:         backup,
			LiveCeremonies: engine.LiveTotal,
			// webauthnd stats.
			LiveByCommunity: engine.LiveByCommunity, Commits: engine.Commits,
			// The benchmark's round trips per sign-in (over PostgreSQL).
			StoreRoundTrips: roundTrips,
			ImportMetadata: func(ctx context.Context, req httpapi.MetadataImport) (httpapi.MetadataImported, error) {
				return importMetadata(ctx, store, req)
			},
			MDS:            store,
			Passkeys:       store,
			ImportPasskeys: httpapi.PasskeyImporter{Store: store, Write: engine.Write, CheckKey: actors.CheckPublicKey}.Import,
			Log:            log.Named("admin"),
			Audit:          audit,
		}),
		// No WriteTimeout: a backup, a CPU profile or a trace takes as long as it was asked to
		// (pprof refuses a profile longer than the write timeout), and only this user connects.
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          zap.NewStdLog(log),
	}
	return srv, peerUIDListener{Listener: ln, uid: os.Getuid(), log: log}, nil
}

// peerUIDListener drops connections whose peer runs as another user.
type peerUIDListener struct {
	net.Listener
	uid int
	log *zap.Logger
}

func (l peerUIDListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if uid, err := peerUID(c); err == nil && uid == l.uid {
			return c, nil
		}
		l.log.Warn("admin socket: refused a connection from another user")
		c.Close()
	}
}

func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *syscall.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil {
		return -1, err
	}
	if credErr != nil {
		return -1, credErr
	}
	return int(cred.Uid), nil
}

// storeLocation is where a management command finds the store: --store names a PostgreSQL
// database, which the command opens itself; without it, the Badger store of --data-dir, through
// its server's admin socket when one runs.
type storeLocation struct {
	dataDir string
	flags   storeFlags
	target  storeTarget
	// audit is where the command writes the lines of what it changes straight on the store.
	audit auditFlags
}

// register adds --data-dir and --store to fs.
func (l *storeLocation) register(fs *flag.FlagSet) {
	fs.StringVar(&l.dataDir, "data-dir", "./data", "the server's data directory (Badger; unused with --store)")
	l.flags.register(fs, false)
	l.audit.register(fs)
}

// parsed checks --store once fs has parsed the arguments.
func (l *storeLocation) parsed(fs *flag.FlagSet) (err error) {
	l.target, err = l.flags.parsed(fs)
	return err
}

// adminDo runs a management action: over PostgreSQL directly on the database (every node sees
// the change, see openManaged); on Badger through a running server's admin socket (method, path
// and body), or, when no server runs, directly on the store. What it has to say about the data
// dir (secureDataDir) goes to stderr.
func adminDo(ctx context.Context, at storeLocation, stderr io.Writer, method, path string, body any, direct func(persistence.Store) (any, error)) (any, error) {
	if at.target.postgres {
		store, err := openManaged(ctx, at.target)
		if err != nil {
			return nil, err
		}
		defer store.Close()
		v, err := direct(store)
		return v, at.target.scrub(err)
	}
	sock := socketPath(at.dataDir)
	if up, err := probeAdmin(ctx, sock); err != nil {
		return nil, err
	} else if up {
		return viaSocket(ctx, sock, method, path, body)
	}
	store, err := openStoreDirect(at.dataDir, stderr)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	return direct(store)
}

// openManaged opens a PostgreSQL store for a management command: a small pool, and a refusal
// of a database whose schema version is not this binary's (both named), so that a command of
// one version never changes a cluster that runs another. Its writes reach every node within a
// second (the store's notifications).
func openManaged(ctx context.Context, t storeTarget) (persistence.Store, error) {
	return openPostgres(ctx, t, managementMaxConns, true, zap.NewNop())
}

// openStoreDirect opens dataDir's store for a management command when no server runs.
func openStoreDirect(dataDir string, stderr io.Writer) (*badger.Store, error) {
	if err := refuseNodeDir(dataDir); err != nil {
		return nil, err
	}
	log, _ := newLogger("info", stderr)
	if err := secureDataDir(dataDir, log); err != nil {
		return nil, err
	}
	store, err := badger.Open(filepath.Join(dataDir, "badger"), zap.NewNop())
	if err != nil {
		return nil, fmt.Errorf("%w (if a server runs on this data dir, its admin socket %s is unreachable)", err, socketPath(dataDir))
	}
	return store, nil
}

// adminWrite applies req through a running server, or its store operation directly on the store.
func adminWrite(ctx context.Context, at storeLocation, stderr io.Writer, path string, method string, req httpapi.AdminRequest) (any, error) {
	return adminDo(ctx, at, stderr, method, path, req, func(s persistence.Store) (any, error) {
		return at.direct(stderr, func() (any, error) { return persistence.ApplyOne(ctx, s, req.Op()) },
			func(err error) messages.AuditEvent { e, _ := httpapi.AuditOfAdmin(req, err); return e })
	})
}

// adminClient is an HTTP client of the admin socket sock; every connection it makes is
// checked by dialAdmin.
func adminClient(sock string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialAdmin(ctx, sock, nil)
		},
	}}
}

func viaSocket(ctx context.Context, sock, method, path string, op any) (any, error) {
	client := adminClient(sock, 30*time.Second)
	var body io.Reader
	if op != nil {
		raw, err := json.Marshal(op)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://admin"+path, body)
	if err != nil {
		return nil, err
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		var e struct{ Message string }
		_ = json.Unmarshal(raw, &e)
		return nil, errors.New(e.Message)
	}
	var v map[string]any
	err = json.Unmarshal(raw, &v)
	return v, err
}

func communityCommand(ctx context.Context, verb string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		at                         storeLocation
		id, tenant, name, uv       string
		attestationTrust           string
		rpIDs, origins, topOrigins listFlag
		tenantDNS                  listFlag
		blockClones                bool
	)
	fs := flag.NewFlagSet("community "+verb, flag.ContinueOnError)
	at.register(fs)
	fs.StringVar(&id, "id", "", "community id")
	fs.StringVar(&tenant, "tenant", "", "tenant id (created if new)")
	fs.StringVar(&name, "name", "", "display name (the RP name shown by authenticators)")
	fs.Var(&rpIDs, "rp-id", "relying party ID (repeatable)")
	fs.Var(&origins, "origin", "allowed origin (repeatable)")
	fs.Var(&topOrigins, "top-origin", "allowed top origin of cross-origin iframes (repeatable)")
	fs.StringVar(&uv, "user-verification", "", "required, preferred (default) or discouraged")
	fs.Var(&tenantDNS, "tenant-dns", "a host name of the tenant, by which BlockID SDKs find it (repeatable)")
	fs.BoolVar(&blockClones, "block-clones", false, "refuse sign-ins of credentials with a clone warning")
	fs.StringVar(&attestationTrust, "attestation-trust", "", "any (default) or required: accept only attestations that chain to the authenticator's metadata roots")
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	if err := at.parsed(fs); err != nil {
		return err
	}
	if id == "" {
		return errors.New("--id is required")
	}
	var (
		v   any
		err error
	)
	if verb == "create" {
		if uv == "" {
			uv = persistence.VerificationPreferred
		}
		if name == "" {
			name = id
		}
		c := httpapi.AdminCommunitySettings{ID: id, TenantID: tenant, Name: name, RPIDs: rpIDs, Origins: origins,
			TopOrigins: topOrigins, UserVerification: uv, BlockClones: blockClones, AttestationTrust: attestationTrust}
		v, err = adminWrite(ctx, at, stderr, "/admin/communities", http.MethodPost, httpapi.AdminCommunity{Community: c, TenantDNS: tenantDNS})
	} else {
		patch := httpapi.AdminCommunityPatch{ID: id, TenantID: tenant, Name: name, RPIDs: rpIDs, Origins: origins,
			TopOrigins: topOrigins, UserVerification: uv, TenantDNS: tenantDNS, AttestationTrust: attestationTrust}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "block-clones" {
				patch.BlockClones = &blockClones
			}
		})
		v, err = adminWrite(ctx, at, stderr, "/admin/communities", http.MethodPatch, patch)
	}
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return nil
}

func licenseCommand(ctx context.Context, verb string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		at                           storeLocation
		level, community, tenant, id string
		expires                      time.Duration
	)
	fs := flag.NewFlagSet("license "+verb, flag.ContinueOnError)
	at.register(fs)
	switch verb {
	case "create":
		fs.StringVar(&level, "level", "", "community, service or system")
		fs.StringVar(&community, "community", "", "the community of a community license")
		fs.StringVar(&tenant, "tenant", "", "the tenant of a service license")
		fs.DurationVar(&expires, "expires", 0, "lifetime, e.g. 8760h; none when not given")
	case "revoke":
		fs.StringVar(&id, "id", "", "the license id (see license list)")
	}
	if err := parseFlags(fs, args, getenv, stderr); err != nil {
		return err
	}
	if err := at.parsed(fs); err != nil {
		return err
	}
	switch verb {
	case "list":
		v, err := adminDo(ctx, at, stderr, http.MethodGet, "/admin/licenses", nil, func(s persistence.Store) (any, error) {
			l, err := s.AllLicenses(ctx)
			return map[string]any{"licenses": l}, err
		})
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(v)
		var list struct{ Licenses []persistence.License }
		if err := json.Unmarshal(raw, &list); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-22s %-10s %-16s %-16s %-20s %s\n", "ID", "LEVEL", "COMMUNITY", "TENANT", "EXPIRES", "STATE")
		for _, l := range list.Licenses {
			state, exp := "active", "never"
			if l.Disabled {
				state = "revoked"
			}
			if !l.Expires.IsZero() {
				exp = l.Expires.Format(time.RFC3339)
				if time.Now().After(l.Expires) && !l.Disabled {
					state = "expired"
				}
			}
			fmt.Fprintf(stdout, "%-22s %-10s %-16s %-16s %-20s %s\n", l.ID, l.Level, dash(l.CommunityID), dash(l.TenantID), exp, state)
		}
		return nil
	case "revoke":
		if id == "" {
			return errors.New("--id is required")
		}
		if _, err := adminWrite(ctx, at, stderr, "/admin/licenses/revoke", http.MethodPost, httpapi.AdminRevokeLicense{ID: id}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "license %s revoked\n", id)
		return nil
	}
	lic, key, err := persistence.NewLicense(level, community, tenant, expires)
	if err != nil {
		return err
	}
	if _, err := adminWrite(ctx, at, stderr, "/admin/licenses", http.MethodPost, httpapi.AdminLicenseOf(lic)); err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, "license id %s (level %s)\n", lic.ID, lic.Level)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// keysCommand implements `webauthnd keys rotate`.
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("keys: want rotate")
	}
	var (
		at  storeLocation
		req rotateRequest
		ttl time.Duration
	)
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	at.register(fs)
	fs.BoolVar(&req.Envelope, "envelope", false, "rotate the envelope key (the previous one keeps working for 15 minutes)")
	fs.StringVar(&req.Curve, "ec-curve", "", "the new envelope key's curve (default: the current one's)")
	fs.BoolVar(&req.Signing, "signing", false, "rotate the token signing key (the previous one stays published until its tokens expire)")
	fs.DurationVar(&ttl, "token-ttl", 5*time.Minute, "the token lifetime, when no server runs")
	if err := parseFlags(fs, args[1:], getenv, stderr); err != nil {
		return err
	}
	if err := at.parsed(fs); err != nil {
		return err
	}
	if req.Curve != "" && !req.Envelope {
		return errors.New("--ec-curve goes with --envelope")
	}
	v, err := adminDo(ctx, at, stderr, http.MethodPost, "/admin/keys/rotate", req, func(s persistence.Store) (any, error) {
		return at.direct(stderr, func() (any, error) {
			return (&keyManager{store: s, write: applyOne(s), tokenTTL: ttl}).rotate(ctx, req)
		}, func(err error) messages.AuditEvent {
			return messages.AuditEvent{Event: messages.AuditKeysRotated, Outcome: messages.AuditOutcome(err)}
		})
	})
	if err != nil {
		return err
	}
	out, _ := json.Marshal(v)
	fmt.Fprintln(stdout, string(out))
	return nil
}
