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

var memCeremonies = flag.Int("ceremonies", 20_000, "live ceremonies that TestLiveCeremonyMemory starts (the default cap is 100000)")

// liveHeap is the heap that the last of two full collections found reachable.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestLiveCeremonyMemory is guarantee 4's measure: what a live ceremony costs in heap (so
// what --max-ceremonies' default of 100,000 per community costs), and that once the
// ceremonies' timeout has passed no ceremony actor is live and the heap is back near where it
// was. Half the ceremonies are registrations (each made a user), half discoverable sign-ins.
// Run with -args -ceremonies=100000 to measure the default cap itself.
func TestLiveCeremonyMemory(t *testing.T) {
	n := *memCeremonies
	const timeout = 3 * time.Second
	e := newTestEngine(t, Config{CeremonyTimeout: timeout, MaxCeremonies: n}, nil)
	// Warm up what every ceremony shares (the supervisor, the community, the writer's batches)
	// and let those ceremonies end, so that the baseline holds no ceremony.
	begin := func(i int) error {
		if i%2 == 0 {
			_, err := e.BeginRegistration(messages.BeginRegistration{Scope: scope, Username: fmt.Sprintf("user-%d", i)})
			return err
		}
		_, err := e.BeginSignIn(messages.BeginSignIn{Scope: scope})
		return err
	}
	for i := range 200 {
		if err := begin(-i - 1); err != nil {
			t.Fatal(err)
		}
	}
	waitLive(t, e, 0, timeout+10*time.Second)
	rest := liveHeap()

	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 1)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := begin(i); err != nil {
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
		work <- i
	}
	close(work)
	wg.Wait()
	took := time.Since(started)
	select {
	case err := <-errs:
		t.Fatalf("starting %d ceremonies: %v", n, err)
	default:
	}
	if took > timeout/2 {
		t.Logf("starting the ceremonies took %s, so some may have ended before the measure", took)
	}
	full := liveHeap()
	live, err := e.Live("c1")
	if err != nil {
		t.Fatal(err)
	}
	perCeremony := float64(full-rest) / float64(live)

	waitLive(t, e, 0, timeout+30*time.Second)
	after := liveHeap()
	t.Logf("%d live ceremonies (started in %s): heap %.1f MiB -> %.1f MiB, %.0f bytes each (%.0f MiB for 100,000); "+
		"after their timeout: 0 live, heap %.1f MiB (%+.1f MiB from rest)",
		live, took.Round(time.Millisecond), mib(rest), mib(full), perCeremony, perCeremony*100_000/(1<<20),
		mib(after), mib(after)-mib(rest))
	if live < n*9/10 {
		t.Fatalf("only %d of %d ceremonies were live at the measure", live, n)
	}
	// Go maps keep their buckets after deletes, so "back near rest" allows a tenth of what the
	// ceremonies took, plus 2 MiB of runtime noise.
	if grown, allowed := float64(after)-float64(rest), float64(full-rest)/10+2<<20; grown > allowed {
		t.Fatalf("after every ceremony timed out the heap is %.1f MiB above rest, want at most %.1f MiB",
			grown/(1<<20), allowed/(1<<20))
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
