package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkerDispatcher: every scheduled run runs once, whether a worker takes it or (with every
// worker busy and the queue full) a goroutine of its own; runs scheduled after stop still run.
func TestWorkerDispatcher(t *testing.T) {
	d := newWorkerDispatcher(2, 10)
	if d.Throughput() != 10 {
		t.Fatalf("throughput %d, want 10", d.Throughput())
	}
	var ran atomic.Int64
	var wg sync.WaitGroup
	release := make(chan struct{})
	const n = 100 // far more than 2 workers and a queue of 8
	wg.Add(n)
	for range n {
		d.Schedule(func() {
			defer wg.Done()
			<-release
			ran.Add(1)
		})
	}
	close(release)
	wg.Wait()
	if ran.Load() != n {
		t.Fatalf("%d runs ran, want %d", ran.Load(), n)
	}
	d.stop()
	done := make(chan struct{})
	d.Schedule(func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a run scheduled after stop did not run")
	}
}
