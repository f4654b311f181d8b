package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// setupConcurrency bounds the registrations of the setup phase, which is not measured.
const setupConcurrency = 32

// setup makes the virtual users. On the sealed routes each gets its own envelope (one ECDH
// each). For the sign-in scenarios it registers each one's passkey, unless the users sign in
// as the users of a seeded store (--seeded), whom they share out.
func setup(ctx context.Context, c *client, cfg config, stderr io.Writer) ([]*user, error) {
	users := make([]*user, cfg.users)
	for i := range users {
		users[i] = c.newUser("u", i)
	}
	if cfg.routes == routesEncrypted {
		svc, err := fetchServiceKey(ctx, c.http, cfg.urls[0]) // every node publishes the same
		if err != nil {
			return nil, fmt.Errorf("setup: the service's envelope key: %w", err)
		}
		c.service = &svc
		for _, u := range users {
			if u.env, err = newEnvelope(svc); err != nil {
				return nil, fmt.Errorf("setup: %w", err)
			}
		}
	}
	if cfg.seeded > 0 {
		counter := seededCounter(time.Now())
		for i, u := range users {
			u.seeded = newSeededRange(cfg.seed, i, len(users), cfg.seeded, counter)
		}
		fmt.Fprintf(stderr, "signing in as %d seeded users (seed %q), no registration\n", cfg.seeded, cfg.seed)
		return users, nil
	}
	if cfg.scenario == scenarioRegister {
		return users, nil
	}
	fmt.Fprintf(stderr, "registering %d users...\n", len(users))
	start := time.Now()
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range min(len(users), setupConcurrency) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(users) && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				if err := c.register(ctx, users[i], int64(i)); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	switch {
	case firstErr != nil:
		return nil, fmt.Errorf("setup: registering the virtual users: %w", firstErr)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("setup: %w", ctx.Err())
	}
	fmt.Fprintf(stderr, "registered %d users in %s\n", len(users), time.Since(start).Round(time.Millisecond))
	return users, nil
}

// measurement is what drive saw.
type measurement struct {
	stats   *stats
	workers int
	elapsed time.Duration
}

// drive runs the measured phase: steady load (each worker runs ceremonies back to back until
// --duration, or --count ceremonies have started) or a burst (--burst ceremonies, taken by
// the workers as fast as they finish the previous one). With --rate, ceremony n starts no
// earlier than n/rate seconds in; a worker still busy starts its next one late, so the rate is
// a ceiling. Each worker is one virtual user, so a passkey never runs two ceremonies at once.
// Ceremonies in flight at the deadline finish.
func drive(ctx context.Context, c *client, cfg config, users []*user, stderr io.Writer) measurement {
	c.stats = newStats() // the setup's calls are not measured
	limit, workers := int64(cfg.count), cfg.users
	var deadline time.Time
	if cfg.burst > 0 {
		limit, workers = int64(cfg.burst), min(cfg.users, cfg.burst)
		fmt.Fprintf(stderr, "burst: %d %s ceremonies, %d at a time\n", cfg.burst, cfg.scenario, workers)
	} else {
		deadline = time.Now().Add(cfg.duration)
		fmt.Fprintf(stderr, "steady: %s ceremonies for %s, %d users\n", cfg.scenario, cfg.duration, workers)
	}

	start := time.Now()
	stopProgress := func() {}
	if cfg.progress {
		stopProgress = progress(c.stats, start, stderr)
	}
	var started atomic.Int64
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
				n := started.Add(1)
				if limit > 0 && n > limit {
					return
				}
				if cfg.rate > 0 {
					slot := start.Add(time.Duration(float64(n-1) * float64(time.Second) / cfg.rate))
					if (!deadline.IsZero() && slot.After(deadline)) || !sleepUntil(ctx, slot) {
						return
					}
				}
				c.stats.finish(c.ceremony(ctx, cfg.scenario, users[i], n))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	return measurement{stats: c.stats, workers: workers, elapsed: elapsed}
}

// sleepUntil waits until t; it is false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ceremony runs the scenario's ceremony number n for user u. A registration registers a new
// user each time (its own username and passkey), so that the store grows as it would in life;
// it goes through u's envelope session. A user with a seeded range signs in as one of its
// seeded users, chosen at random.
func (c *client) ceremony(ctx context.Context, scenario string, u *user, n int64) error {
	if scenario == scenarioRegister {
		r := c.newUser("r", int(n))
		r.env = u.env
		return c.register(ctx, r, n)
	}
	if u.seeded != nil {
		s := u.seeded.pick()
		s.env = u.env
		u = s
	}
	return c.signIn(ctx, u, scenario != scenarioDiscoverable, n)
}

// progress prints one line a second until the returned function is called.
func progress(s *stats, start time.Time, w io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				ok := s.ok.Load()
				fmt.Fprintf(w, "%5.0fs  ok %8d  %6d/s  429 %6d  failed %6d\n",
					now.Sub(start).Seconds(), ok, ok-last, s.refused.Load(), s.failed.Load())
				last = ok
			}
		}
	}()
	return func() { close(done); <-finished }
}
