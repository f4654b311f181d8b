package actors

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/webauthnd/webauthnd/messages"
	"github.com/webauthnd/webauthnd/persistence"
)

// TestBatchBuckets: a batch of n writes is counted in the bucket whose bounds hold n, and the
// last bucket ends at the writer's largest batch.
func TestBatchBuckets(t *testing.T) {
	cases := []struct {
		name    string
		sizes   []int
		want    []messages.BatchSizeCount
		commits uint64
		writes  uint64
	}{
		{name: "nothing committed", want: nil},
		{name: "single writes", sizes: []int{1, 1, 1}, commits: 3, writes: 3,
			want: []messages.BatchSizeCount{{From: 1, To: 1, Batches: 3}}},
		{name: "bounds of the buckets", sizes: []int{2, 3, 4, 5, 8, 9}, commits: 6, writes: 31,
			want: []messages.BatchSizeCount{{From: 2, To: 2, Batches: 1}, {From: 3, To: 4, Batches: 2},
				{From: 5, To: 8, Batches: 2}, {From: 9, To: 16, Batches: 1}}},
		{name: "the largest batch", sizes: []int{maxBatch, maxBatch/2 + 1}, commits: 2, writes: maxBatch*3/2 + 1,
			want: []messages.BatchSizeCount{{From: maxBatch/2 + 1, To: maxBatch, Batches: 2}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCommitCounts()
			for _, n := range tc.sizes {
				c.add(n)
			}
			got := c.snapshot()
			if got.Commits != tc.commits || got.Writes != tc.writes || fmt.Sprint(got.BatchSizes) != fmt.Sprint(tc.want) {
				t.Errorf("counted %+v, want %d commits of %d writes in %v", got, tc.commits, tc.writes, tc.want)
			}
		})
	}
}

// TestEngineCountsItsCommits: every write the engine's writer applies is counted once, in
// batches whose counts add up, however the writes were grouped.
func TestEngineCountsItsCommits(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Write(ctx, persistence.PutCommunity{Create: true, Community: persistence.Community{
				ID: fmt.Sprintf("c-%d", i), TenantID: "t1", Name: "c", RPIDs: []string{"localhost"},
				Origins: []string{"http://localhost:8080"}, UserVerification: persistence.VerificationPreferred}})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := e.Commits()
	var batches, atLeast uint64
	for _, b := range got.BatchSizes {
		batches += b.Batches
		atLeast += b.Batches * uint64(b.From)
	}
	if got.Writes != n || got.Commits == 0 || got.Commits > n || batches != got.Commits || atLeast > got.Writes {
		t.Errorf("after %d writes the engine counted %+v", n, got)
	}
	t.Logf("%d writes in %d commits (mean batch %.1f): %v", got.Writes, got.Commits, float64(got.Writes)/float64(got.Commits), got.BatchSizes)
}

// TestLiveByCommunity: each community's live ceremonies are counted under its id, and the
// counts add up to LiveTotal.
func TestLiveByCommunity(t *testing.T) {
	e := newTestEngine(t, Config{CeremonyTimeout: time.Minute}, nil)
	for range 3 {
		if _, err := e.BeginSignIn(ctx, messages.BeginSignIn{Scope: scope}); err != nil {
			t.Fatal(err)
		}
	}
	live := e.LiveByCommunity(ctx)
	total, _ := e.LiveTotal(ctx)
	if live["c1"] != 3 || total != 3 || len(live) != 1 {
		t.Errorf("live ceremonies by community %v (total %d), want c1: 3", live, total)
	}
}
