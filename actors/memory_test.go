package actors

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
)

var (
	memCeremonies = flag.Int("ceremonies", 10_000, "live ceremonies whose heap TestLiveCeremonyMemory measures (the default cap is 100000)")
	memBurst      = flag.Int("burst", 2_000, "ceremonies per burst in TestLiveCeremonyMemory's release check")
)

// liveHeap is the heap that the last of two full collections found reachable.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// startCeremonies starts n ceremonies numbered from first, from 32 goroutines: even numbers are
// registrations of new users, odd ones discoverable sign-ins.
func startCeremonies(t *testing.T, e *Engine, first, n int) time.Duration {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 1)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				var err error
				if i%2 == 0 {
					_, err = e.BeginRegistration(ctx, messages.BeginRegistration{Scope: scope, Username: fmt.Sprintf("user-%d", i)})
				} else {
					_, err = e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope})
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	started := time.Now()
	for i := range n {
		work <- first + i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("starting %d ceremonies: %v", n, err)
	default:
	}
	return time.Since(started)
}

// TestLiveCeremonyMemory is guarantee 4's measure: what a live ceremony costs in heap (so what
// --max-ceremonies' default of 100,000 per community costs), and, once the ceremonies' timeout
// has passed, that none is live and what stays behind: what a burst leaves must not grow with
// a second burst (a leak would). Half the ceremonies are registrations of new users (which
// nothing writes: only a result would), half discoverable sign-ins. Run with -args -ceremonies=100000 -burst=100000 to measure the default
// cap itself.
func TestLiveCeremonyMemory(t *testing.T) {
	// The release check runs first, on a heap that no other engine has used.
	var after [2]uint64
	var rest uint64
	n := *memBurst
	t.Run("after their timeout", func(t *testing.T) {
		timeout := max(2*time.Second, time.Duration(n)*150*time.Microsecond) // most of a burst is live at once
		e := newTestEngine(t, Config{CeremonyTimeout: timeout, MaxCeremonies: n, MaxCeremoniesPerLicense: n}, nil)
		rest = liveHeap()
		for burst := range after {
			took := startCeremonies(t, e, burst*n, n)
			waitLive(t, e, 0, took+timeout+30*time.Second)
			after[burst] = liveHeap()
		}
		t.Logf("bursts of %d ceremonies, after their timeout: 0 live, heap %.1f MiB at rest, %.1f MiB after the first "+
			"(%.0f bytes per ceremony stay), %.1f MiB after the second",
			n, mib(rest), mib(after[0]), float64(after[0]-rest)/float64(n), mib(after[1]))
	})
	var perCeremony float64
	t.Run("cost of live ceremonies", func(t *testing.T) {
		n := *memCeremonies
		// No ceremony may end before the measure, however long starting them takes.
		e := newTestEngine(t, Config{CeremonyTimeout: time.Hour, MaxCeremonies: n, MaxCeremoniesPerLicense: n}, nil)
		rest := liveHeap()
		took := startCeremonies(t, e, 0, n)
		full := liveHeap()
		live, err := e.Live(ctx, "c1")
		if err != nil || live != n {
			t.Fatalf("%d live ceremonies (%v), want %d", live, err, n)
		}
		perCeremony = float64(full-rest) / float64(n)
		t.Logf("%d live ceremonies (started in %s): heap %.1f MiB -> %.1f MiB, %.0f bytes each, %.0f MiB for 100,000",
			n, took.Round(time.Millisecond), mib(rest), mib(full), perCeremony, perCeremony*100_000/(1<<20))
	})
	// What a burst leaves behind is bounded: a second burst of the same size reuses it.
	if grown, allowed := float64(after[1])-float64(after[0]), perCeremony*float64(n)/10+2<<20; grown > allowed {
		t.Fatalf("a second burst left %.1f MiB more behind than the first (allowed %.1f MiB): ceremonies leak",
			grown/(1<<20), allowed/(1<<20))
	}
}
