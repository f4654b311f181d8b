package httpapi

import (
	"context"

	"github.com/webauthnd/webauthnd/messages"
)

// AdminCommits is /admin/stats's commits: the store writer's group commits since the start.
type AdminCommits struct {
	messages.CommitCounts
	// MeanBatchSize is Writes/Commits, the writes one synced transaction carried on average.
	MeanBatchSize float64 `json:"meanBatchSize"`
}

// addOpsStats adds to /admin/stats what `webauthnd stats` shows beside the benchmark's
// figures: live ceremonies per community (liveByCommunity) and the store writer's group
// commits since the start (commits: batches, writes, batches by size, and meanBatchSize, the
// writes per commit). Both are counters the engine keeps anyway; reading them asks each
// community's supervisor once and no store.
func addOpsStats(ctx context.Context, a AdminDeps, stats map[string]any) {
	if a.LiveByCommunity != nil {
		stats["liveByCommunity"] = a.LiveByCommunity(ctx)
	}
	if a.Commits != nil {
		c := AdminCommits{CommitCounts: a.Commits()}
		if c.Commits > 0 {
			c.MeanBatchSize = float64(c.Writes) / float64(c.Commits)
		}
		stats["commits"] = c
	}
}
