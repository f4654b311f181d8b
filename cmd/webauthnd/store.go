package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strings"
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
