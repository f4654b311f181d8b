package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
	"github.com/webauthnd/webauthnd/persistence/badger"
)

// The seed subcommand writes a large store directly, as issue 10 asks for a store of a million
// passkeys that registrations over HTTP would take hours to build. It is the only part of the
// harness that imports webauthnd code: it writes the same records a registration makes through
// persistence, into the data directory of a stopped server.

// seedConfig is the settings of `bench seed`.
type seedConfig struct {
	dataDir   string
	users     int
	seed      string
	community string
	rpID      string
	batch     int
}

func parseSeedConfig(args []string, stderr io.Writer) (seedConfig, error) {
	var c seedConfig
	fs := flag.NewFlagSet("bench seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory of a stopped webauthnd (its store is DIR/badger)")
	fs.IntVar(&c.users, "users", 0, "write users seed-0 … seed-(N-1), one ES256 passkey each")
	fs.StringVar(&c.seed, "seed", "", "the seed every user's keys, handle and credential id derive from; give the run the same")
	fs.StringVar(&c.community, "community", "default", "the community the users join; it must exist")
	fs.StringVar(&c.rpID, "rp-id", "", "the credentials' RP ID (default: the community's first)")
	fs.IntVar(&c.batch, "batch", 10000, "users per write")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: bench seed --data-dir DIR --users N --seed S [--community default]

Writes N users, each with one ES256 passkey derived from the seed, straight into the store of a
stopped webauthnd. Start the server once on DIR first (so that it makes the default community
and license), stop it, seed, start it again, then run the harness with --seeded N --seed S.
Runs may follow one another on the same store (a run's counters start from the clock); for
runs that compare, copy the seeded directory and run each on a fresh copy.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("seed: unexpected arguments %q", fs.Args())
	case c.dataDir == "":
		return c, errors.New("seed: give --data-dir, the data directory of a stopped webauthnd")
	case c.users < 1:
		return c, errors.New("seed: --users: give at least 1")
	case c.seed == "":
		return c, errors.New("seed: give --seed, and the same to the runs that sign in")
	case c.batch < 1:
		return c, errors.New("seed: --batch: give at least 1")
	}
	return c, nil
}

// runSeed is `bench seed`.
func runSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseSeedConfig(args, stderr)
	if err != nil {
		return err
	}
	store, err := badger.Open(filepath.Join(cfg.dataDir, "badger"), zap.NewNop())
	if err != nil {
		return fmt.Errorf("seed: %w (stop the server on %s first)", err, cfg.dataDir)
	}
	defer store.Close()
	community, err := store.Community(ctx, cfg.community)
	if errors.Is(err, persistence.ErrNotFound) {
		return fmt.Errorf("seed: community %q does not exist in %s: start webauthnd once on it (it makes the default community), or create it", cfg.community, cfg.dataDir)
	} else if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	switch {
	case cfg.rpID == "" && len(community.RPIDs) > 0:
		cfg.rpID = community.RPIDs[0]
	case !slices.Contains(community.RPIDs, cfg.rpID):
		return fmt.Errorf("seed: --rp-id %q: community %q has RP IDs %q", cfg.rpID, cfg.community, community.RPIDs)
	}

	fmt.Fprintf(stderr, "seeding %d users into community %q (RP ID %s) of %s, %d a batch\n", cfg.users, cfg.community, cfg.rpID, cfg.dataDir, cfg.batch)
	type batch struct {
		users []persistence.User
		creds []persistence.Credential
		err   error
	}
	batches := make(chan batch, 1) // derive the next batch while the store writes this one
	go func() {
		defer close(batches)
		for first := 0; first < cfg.users && ctx.Err() == nil; first += cfg.batch {
			users, creds, err := seedBatch(cfg, first, min(first+cfg.batch, cfg.users))
			batches <- batch{users, creds, err}
			if err != nil {
				return
			}
		}
	}()
	start, lastPrint, done := time.Now(), time.Now(), 0
	for b := range batches {
		if b.err == nil {
			b.err = store.Import(ctx, b.users, b.creds)
		}
		if b.err != nil {
			for range batches { // let the producer end
			}
			return fmt.Errorf("seed: after %d users: %w", done, b.err)
		}
		done += len(b.users)
		if time.Since(lastPrint) >= time.Second || done == cfg.users {
			lastPrint = time.Now()
			fmt.Fprintf(stderr, "seeded %d/%d users, %.0f users/s\n", done, cfg.users, float64(done)/time.Since(start).Seconds())
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("seed: stopped after %d users: %w", done, err)
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stderr, "settling the store (compacting it into one level)...\n")
	settling := time.Now()
	if err := store.Settle(); err != nil {
		return fmt.Errorf("seed: settle: %w", err)
	}
	fmt.Fprintf(stdout, "seeded %d users in %s (%.0f users/s), settled in %s; run with --seeded %d --seed %q\n",
		done, elapsed.Round(time.Millisecond), float64(done)/elapsed.Seconds(), time.Since(settling).Round(time.Millisecond), done, cfg.seed)
	return nil
}

// seedBatch derives the records of users first … end-1, on every CPU.
func seedBatch(cfg seedConfig, first, end int) ([]persistence.User, []persistence.Credential, error) {
	users := make([]persistence.User, end-first)
	creds := make([]persistence.Credential, end-first)
	now := time.Now().UTC()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for k := w; k < len(users); k += workers {
				u, c, err := seedRecords(cfg, first+k, now)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				users[k], creds[k] = u, c
			}
		})
	}
	wg.Wait()
	return users, creds, firstErr
}

// seedRecords are the records a registration of seeded user i would have written.
func seedRecords(cfg seedConfig, i int, now time.Time) (persistence.User, persistence.Credential, error) {
	id := seededUser(cfg.seed, i)
	cose, err := coseES256(&id.key.PublicKey)
	if err != nil {
		return persistence.User{}, persistence.Credential{}, err
	}
	att, err := noneAttestation(cfg.rpID, id.credID, cose)
	if err != nil {
		return persistence.User{}, persistence.Credential{}, err
	}
	u := persistence.User{CommunityID: cfg.community, Username: id.username, DisplayName: id.username, Handle: id.handle, Created: now}
	c := persistence.Credential{
		ID: id.credID, CommunityID: cfg.community, Username: id.username, UserHandle: id.handle, RPID: cfg.rpID,
		PublicKey: cose, Algorithm: -7, AAGUID: make([]byte, 16),
		AttestationFormat: "none", AttestationType: "none", AttestationObject: att,
		Transports: []string{"internal"}, UserPresent: true, UserVerified: true, SignCount: 0, Created: now,
	}
	return u, c, nil
}
