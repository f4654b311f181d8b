package httpapi

import (
	"context"
)

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
		c := a.Commits()
		mean := 0.0
		if c.Commits > 0 {
			mean = float64(c.Writes) / float64(c.Commits)
		}
		stats["commits"] = map[string]any{"commits": c.Commits, "writes": c.Writes,
			"meanBatchSize": mean, "batchSizes": c.BatchSizes}
	}
}
