package actors

import (
	"context"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/webauthnd/webauthnd/persistence"
)

// maxBatch bounds the writes of one commit, keeping Badger transactions small.
const maxBatch = 256

// batchTimeout bounds one batch, waiting for the store included. A batch carries the writes of
// many requests, so no request's context may cancel it; its own deadline keeps a store that
// stopped answering from holding the writer (and every ceremony waiting on it) forever.
const batchTimeout = 10 * time.Second

// writer groups the writes of concurrent ceremonies into one synced transaction (group commit):
// while one batch commits in the background, new writes queue; when it is done, each writer of
// the batch is answered and the queue becomes the next batch. The actor itself never waits.
type writer struct {
	store    persistence.Writer
	inflight *sync.WaitGroup
	log      *zap.Logger
	observer Observer // told of each commit, from the commit's goroutine

	queue      []pendingWrite
	committing bool
	counts     *commitCounts // batches and writes, for webauthnd stats (atomics: stats reads them)
}

type pendingWrite struct {
	op     persistence.Op
	sender *actor.PID
}

// committed tells the writer that a batch is durable.
type committed struct {
	batch   []pendingWrite
	results []persistence.Result
}

// Receive implements actor.Actor.
func (w *writer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case writeRequest:
		w.queue = append(w.queue, pendingWrite{op: m.op, sender: ctx.Sender()})
		w.commitNext(ctx)
	case committed:
		for i, p := range m.batch {
			ctx.Send(p.sender, writeResult{value: m.results[i].Value, err: m.results[i].Err})
		}
		w.committing = false
		w.commitNext(ctx)
	case ping:
		ctx.Respond(pong{})
	}
}

func (w *writer) commitNext(ctx actor.Context) {
	if w.committing || len(w.queue) == 0 {
		return
	}
	n := min(len(w.queue), maxBatch)
	batch := w.queue[:n:n]
	w.queue = append([]pendingWrite(nil), w.queue[n:]...)
	w.committing = true
	w.counts.add(n)
	ops := make([]persistence.Op, n)
	for i, p := range batch {
		ops[i] = p.op
	}
	self, system := ctx.Self(), ctx.ActorSystem()
	w.inflight.Add(1)
	go func() {
		defer w.inflight.Done()
		batchCtx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		defer cancel()
		start := time.Now()
		results := w.store.Apply(batchCtx, ops)
		w.observer.Committed(n, time.Since(start))
		system.Root.Send(self, committed{batch: batch, results: results})
	}()
}
