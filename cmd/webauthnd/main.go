// Command webauthnd is a self-hostable FIDO2/WebAuthn passkey service.
//
//	webauthnd serve [flags]                 run the service
//	webauthnd community create|update ...  manage communities (relying parties)
//	webauthnd license create ...            issue a license key
//	webauthnd metadata import|list ...      the FIDO Metadata Service's entries
//	webauthnd passkeys export|import ...    a community's passkeys as JSON Lines, out and in
//	webauthnd migrate --from DIR --to URL   copy a Badger store into an empty PostgreSQL database
//	webauthnd cert self-signed ...          a certificate for trying HTTPS locally
//	webauthnd stats | profile ...           what the running server is doing, through its admin socket
//
// Every flag has an environment equivalent: --data-dir is WEBAUTHND_DATA_DIR.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "webauthnd:", err)
		os.Exit(1)
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  webauthnd serve [--addr A] [--data-dir D] [--public-url U] [--tls-cert FILE --tls-key FILE]
                  [--ec-curve secp256k1|P-256] [--allowed-time-span 60s]
                  [--ceremony-timeout T] [--max-ceremonies N] [--max-ceremonies-per-license N]
                  [--token-ttl T] [--sd KEY=URL ...] [--min-free-disk 256MiB|5%]
                  [--demo[=false]]   the passkey demo at / (default: on for a localhost --public-url, off over --store)
                  [--store postgres://USER@HOST/DB] [--store-max-conns 16]
                                     the store: default Badger in --data-dir; PostgreSQL for several nodes
  webauthnd community create --id ID --tenant TENANT --name NAME --rp-id RPID --origin ORIGIN [--origin ...]
                             [--user-verification required|preferred|discouraged] [--top-origin ORIGIN ...] [--block-clones]
                             [--tenant-dns HOST ...]
  webauthnd community update --id ID [same flags]
  webauthnd license create --level community|service|system [--community ID] [--tenant ID] [--expires DURATION]
  webauthnd license list | license revoke --id ID
  webauthnd keys rotate [--envelope [--ec-curve NAME]] [--signing]
  webauthnd metadata import --blob FILE [--root CERT_FILE] [--at RFC3339] [--force]
                                     verify a FIDO MDS3 BLOB and make its entries the global metadata
  webauthnd metadata list [--aaguid X | --key-id HEX]
  webauthnd passkeys export --community ID --out FILE
                                     the community's passkeys, one JSON line each (README: Moving passkeys)
  webauthnd passkeys import --community ID --in FILE [--dry-run]
                                     check every line, then write them all, or nothing when one is refused
  webauthnd cert self-signed --host NAME [--host NAME ...] --out DIR
  webauthnd backup --out FILE        a consistent snapshot, while the server runs or not; FILE (mode 0600)
                                     holds the service's private keys: keep it like one
  webauthnd restore --in FILE        into an empty or new --data-dir, then start the server on it
  webauthnd migrate --from DATA_DIR --to postgres://USER@HOST/DB [--store-max-conns 16]
                                     copy a Badger store, its server stopped, into an empty PostgreSQL
                                     database, and verify the copy
  webauthnd stats [--json]           the running server's live ceremonies, heap, goroutines, group commits
  webauthnd profile --out FILE [--kind cpu|heap|allocs|goroutine|mutex|block|threadcreate|trace]
                    [--seconds N] [--force]
                                     a profile of the running server, through its admin socket (cpu: 30 s)
The commands that use the store take --store (WEBAUTHND_STORE): without it, the Badger store in
--data-dir (through a running server's admin socket); with a postgres:// URL, that database,
directly. A password goes in PGPASSWORD, PGPASSFILE or WEBAUTHND_STORE, never on the command line.
Every flag has an environment equivalent, e.g. WEBAUTHND_DATA_DIR for --data-dir.
`

// run is the whole program; main only supplies the process's context, arguments, environment
// and streams, so tests can run it as it is.
//
// It first sets the process's umask to 077: every command may write a secret.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	setPrivateUmask()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "community":
		if len(args) < 2 || (args[1] != "create" && args[1] != "update") {
			return fmt.Errorf("community: want create or update\n%s", usage)
		}
		return communityCommand(ctx, args[1], args[2:], getenv, stdout, stderr)
	case "license":
		if len(args) < 2 || (args[1] != "create" && args[1] != "list" && args[1] != "revoke") {
			return fmt.Errorf("license: want create, list or revoke\n%s", usage)
		}
		return licenseCommand(ctx, args[1], args[2:], getenv, stdout, stderr)
	case "keys":
		return keysCommand(ctx, args[1:], getenv, stdout, stderr)
	case "metadata":
		if len(args) < 2 || (args[1] != "import" && args[1] != "list") {
			return fmt.Errorf("metadata: want import or list\n%s", usage)
		}
		return metadataCommand(ctx, args[1], args[2:], getenv, stdout, stderr)
	case "passkeys":
		if len(args) < 2 || (args[1] != "export" && args[1] != "import") {
			return fmt.Errorf("passkeys: want export or import\n%s", usage)
		}
		return passkeysCommand(ctx, args[1], args[2:], getenv, stdout, stderr)
	case "backup":
		return backupCommand(ctx, args[1:], getenv, stdout, stderr)
	case "restore":
		return restoreCommand(args[1:], getenv, stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, args[1:], getenv, stdout, stderr)
	case "cert":
		return certCommand(args[1:], getenv, stdout, stderr)
	case "stats":
		return statsCommand(ctx, args[1:], getenv, stdout, stderr)
	case "profile":
		return profileCommand(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}
