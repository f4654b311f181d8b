package actors

import (
	"runtime"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// workerDispatcher runs ceremony mailboxes on long-lived goroutines. protoactor's default
// dispatcher starts a goroutine for every run of a mailbox, and a ceremony's run (JSON, CBOR,
// ECDSA) grows a fresh goroutine's stack several times: copying those stacks cost 5 % of the
// server's CPU at 5,000 sign-ins/s. A worker's stack, once grown, stays grown.
//
// Schedule never blocks: when every worker is busy and the queue is full, the run gets a
// goroutine of its own, as with the default dispatcher. Mailbox runs never wait on one another
// (actors do not block), so the workers cannot deadlock.
type workerDispatcher struct {
	work       chan func()
	done       chan struct{}
	throughput int
	// mu orders Schedule's enqueue against stop: once stopped, nothing is queued where no
	// worker will take it.
	mu      sync.RWMutex
	stopped bool
}

// newWorkerDispatcher starts workers goroutines, which run until stop.
func newWorkerDispatcher(workers, throughput int) *workerDispatcher {
	d := &workerDispatcher{work: make(chan func(), 4*workers), done: make(chan struct{}), throughput: throughput}
	for range workers {
		go d.loop()
	}
	return d
}

func (d *workerDispatcher) loop() {
	for {
		select {
		case fn := <-d.work:
			fn()
		case <-d.done:
			return
		}
	}
}

// Schedule implements actor.Dispatcher.
func (d *workerDispatcher) Schedule(fn func()) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.stopped {
		go fn()
		return
	}
	select {
	case d.work <- fn:
	default:
		go fn()
	}
}

// Throughput implements actor.Dispatcher: the messages a run handles before it yields.
func (d *workerDispatcher) Throughput() int { return d.throughput }

// stop ends the workers; runs scheduled later get goroutines of their own. Call it after the
// actor system has stopped.
func (d *workerDispatcher) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stopped = true
	close(d.done)
	// Runs still queued get goroutines, so that no mailbox is left unscheduled.
	for {
		select {
		case fn := <-d.work:
			go fn()
		default:
			return
		}
	}
}

// ceremonyWorkers is the number of workers: enough to keep every CPU busy while some runs wait
// for a page of the store.
func ceremonyWorkers() int { return 8 * runtime.GOMAXPROCS(0) }

// inline runs a mailbox in the goroutine of whoever sent the message that found it idle: the
// supervisors and the writer, whose every message is a few map or slice operations and never
// waits. protoactor's default dispatcher started a goroutine for each run of their mailboxes,
// for microseconds of work: at 128 concurrent sign-ins this cut 2 to 11 % of the server's CPU
// per sign-in, by the sitting (docs/performance.md, issue 21). The mailbox still runs one
// message at a time: a sender that finds it running only queues its message, and the goroutine
// already running it takes that message too. Ceremonies stay on the workers: their runs verify, sign and read the
// store, and a run of theirs inside a supervisor's would hold every other message of the
// community (TestSlowCeremonyHoldsNoOtherCeremony).
var inline = actor.NewSynchronizedDispatcher(300)
