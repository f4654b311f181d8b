package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/httpapi"
	"github.com/webauthnd/webauthnd/persistence"
)

// defaultLicenseID is the id of the embedded default's license. It is fixed so that, when
// nodes start at once on an empty shared database, the store itself lets one of them create
// the default: PutCommunity refuses a community that exists and PutLicense an id that exists,
// so of the batches that race, one commits both and the others neither.
const defaultLicenseID = "default"

// defaultKeyFile is where the default license's key goes, in the data directory of the node
// that created it.
const defaultKeyFile = "default-license.key"

// bootstrapWait bounds how long a node whose bootstrap lost waits to see the winner's default.
const bootstrapWait = 10 * time.Second

// exclusiveStore is a store shared by nodes that can run a function while no other node runs
// one under the same name (persistence/postgres: an advisory lock).
type exclusiveStore interface {
	Exclusive(ctx context.Context, name string, fn func(ctx context.Context) error) error
}

// bootstrapOnce runs bootstrap, under the store's exclusive lock when it has one: nodes that
// start together on an empty database then bootstrap one after the other, and all but the
// first find the default made. Without the lock the store still lets only one create it (see
// bootstrap); the lock spares the others a refused write and a wait.
func bootstrapOnce(ctx context.Context, store persistence.Store, community persistence.Community, dataDir string, stdout io.Writer, publicURL string,
	audit *httpapi.Audit, log *zap.Logger) error {
	run := func(ctx context.Context) error {
		return bootstrap(ctx, store, community, dataDir, stdout, publicURL, audit, log)
	}
	if x, ok := store.(exclusiveStore); ok {
		return x.Exclusive(ctx, "bootstrap", run)
	}
	return run(ctx)
}

// bootstrap gives an empty store the embedded default: tenant and community "default" and a
// community license whose key goes to <data-dir>/default-license.key (mode 0600). The key is
// printed only to a terminal; otherwise the file's path is.
//
// The key is written first, synced, under a pending name (default-license.key.pending), then
// the default is committed, then the file is renamed into place. A crash before the commit
// leaves an empty store, which the next start bootstraps again; a crash after it leaves the
// pending file, which the next start puts in place once the store holds its license (and
// otherwise removes). Over a shared database, nodes that start at once on an empty one and
// each try (bootstrapOnce takes a lock first where it can) are let through one by one by the
// store (see defaultLicenseID): the others remove their pending file and go on with the
// winner's default, whose key is in the winner's data directory only.
//
// The node that created the default writes its audit lines (community and license created);
// a node whose bootstrap lost changed nothing and writes none.
func bootstrap(ctx context.Context, store persistence.Store, community persistence.Community, dataDir string, stdout io.Writer, publicURL string,
	audit *httpapi.Audit, log *zap.Logger) error {
	path := filepath.Join(dataDir, defaultKeyFile)
	pending := path + ".pending"
	empty, err := store.Empty(ctx)
	if err != nil {
		return err
	}
	if !empty {
		return settlePendingKey(ctx, store, pending, path, stdout)
	}
	lic, key, err := persistence.NewLicense(persistence.LevelCommunity, community.ID, "", 0)
	if err != nil {
		return err
	}
	lic.ID = defaultLicenseID
	if err := writeFileSynced(pending, []byte(key+"\n")); err != nil {
		return fmt.Errorf("write the default license key: %w", err)
	}
	results := store.Apply(ctx, []persistence.Op{
		// The default tenant's host name is the public URL's, so BlockID SDKs find it by dns.
		persistence.PutCommunity{Community: community, Create: true, TenantDNS: []string{hostOf(publicURL)}},
		persistence.PutLicense{License: lic},
	})
	if results[1].Err == nil {
		recordAdmin(audit, httpapi.AdminCommunity{Community: httpapi.AdminCommunitySettings{ID: community.ID, TenantID: community.TenantID}}, results[0].Err)
		recordAdmin(audit, httpapi.AdminLicenseOf(lic), nil)
		// The license is stored: its key must not be lost, whatever became of the community.
		if err := placeKeyFile(pending, path); err != nil {
			return err
		}
		if err := results[0].Err; err != nil {
			return fmt.Errorf("create the default community: %w", err)
		}
		announceDefault(stdout, community.ID, key, path)
		return nil
	}
	_ = os.Remove(pending)
	refusal := errors.Join(results[0].Err, results[1].Err)
	// Refused: another node created the default first (both refusals then say it exists), or
	// the store failed. Either way the default may be there, or about to be: wait for it.
	deadline := time.Now().Add(bootstrapWait)
	for {
		if _, err := store.Community(ctx, community.ID); err == nil {
			log.Info("another node created the default community and its license; the license key is in that node's data directory",
				zap.String("community", community.ID))
			fmt.Fprintf(stdout, "community %q was created by another node; its license key is in that node's data directory\n", community.ID)
			return nil
		} else if !errors.Is(err, persistence.ErrNotFound) {
			return fmt.Errorf("create the default community: %w", errors.Join(refusal, err))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create the default community: %w", refusal)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// settlePendingKey finishes the bootstrap of an earlier start that crashed between its commit
// and the rename of its key file: the pending key goes into place when the store holds it as
// the default license, and is removed otherwise (a key that never made it into the store).
func settlePendingKey(ctx context.Context, store persistence.Licenses, pending, path string, stdout io.Writer) error {
	raw, err := os.ReadFile(pending)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the default license key's pending file: %w", err)
	}
	key := strings.TrimSpace(string(raw))
	l, err := store.LicenseByKey(ctx, key)
	switch {
	case err == nil && l.ID == defaultLicenseID:
		if err := placeKeyFile(pending, path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "the default license key, stored by a start that stopped before writing %s, is now in it\n", path)
		return nil
	case err == nil || errors.Is(err, persistence.ErrNotFound):
		return os.Remove(pending)
	}
	return err
}

// placeKeyFile renames the pending key file into place, and syncs the directory so that the
// rename survives a crash.
func placeKeyFile(pending, path string) error {
	if err := os.Rename(pending, path); err != nil {
		return fmt.Errorf("write the default license key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func announceDefault(stdout io.Writer, communityID, key, path string) {
	if isTerminal(stdout) {
		fmt.Fprintf(stdout, "created community %q with license key %s (also in %s)\n", communityID, key, path)
	} else {
		fmt.Fprintf(stdout, "created community %q; its license key is in %s\n", communityID, path)
	}
}
