package actors

import (
	"math/bits"
	"sync/atomic"

	"github.com/webauthnd/webauthnd/messages"
)

// commitBuckets is the number of batch size buckets: sizes 1, 2, 3-4, …, 129-256 (maxBatch).
var commitBuckets = bits.Len(uint(maxBatch-1)) + 1

// commitCounts counts the writer's batches for `webauthnd stats`. The writer adds to it in its
// Receive and stats reads it from an HTTP handler, so it is atomics only: reading it costs the
// writer nothing and asks no actor anything.
type commitCounts struct {
	commits atomic.Uint64
	writes  atomic.Uint64
	buckets []atomic.Uint64 // by batchBucket
}

func newCommitCounts() *commitCounts {
	return &commitCounts{buckets: make([]atomic.Uint64, commitBuckets)}
}

// batchBucket is the bucket of a batch of n writes (n ≥ 1): 0 for 1, 1 for 2, 2 for 3-4, 3 for
// 5-8, and so on.
func batchBucket(n int) int { return bits.Len(uint(n - 1)) }

// add counts one batch of n writes.
func (c *commitCounts) add(n int) {
	c.commits.Add(1)
	c.writes.Add(uint64(n))
	c.buckets[min(batchBucket(n), len(c.buckets)-1)].Add(1)
}

// snapshot reads the counts. Each counter is read atomically but not all at once: a batch
// counted while it reads may show in one and not yet in another, which a figure for people
// can afford.
func (c *commitCounts) snapshot() messages.CommitCounts {
	out := messages.CommitCounts{Commits: c.commits.Load(), Writes: c.writes.Load(), BatchSizes: []messages.BatchSizeCount{}}
	for i := range c.buckets {
		if n := c.buckets[i].Load(); n > 0 {
			from, to := 1, 1<<i
			if i > 0 {
				from = 1<<(i-1) + 1
			}
			out.BatchSizes = append(out.BatchSizes, messages.BatchSizeCount{From: from, To: to, Batches: n})
		}
	}
	return out
}

// Commits returns the store writer's group commits since the engine started: batches, writes,
// and batches by size (`webauthnd stats`).
func (e *Engine) Commits() messages.CommitCounts { return e.commits.snapshot() }
