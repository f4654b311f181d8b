package main

import "fmt"

// RoundTrips is what the nodes' stores sent their database over the measured phase: every
// round trip of every node's pool (the writer's grouped batches, the reads, the ceremonies'
// state), as /admin/stats counts them, and per completed ceremony. The few of the nodes'
// background work (a re-read of the config versions every 5 s, a sweep every 30 s) are in it;
// so are those of ceremonies that failed.
type RoundTrips struct {
	Total       uint64  `json:"total"`
	PerCeremony float64 `json:"per_ceremony"`
}

// newRoundTrips compares the nodes' readings before and after the measured phase. It is nil
// when there were no readings, or when a node did not count (a store in process, such as
// Badger, makes no round trips).
func newRoundTrips(before, after []serverStats, done Outcomes) *RoundTrips {
	if len(before) == 0 || len(before) != len(after) {
		return nil
	}
	var rt RoundTrips
	for i := range before {
		b, a := before[i].StoreRoundTrips, after[i].StoreRoundTrips
		if b == nil || a == nil || *a < *b {
			return nil // a node restarted in between, or counts nothing
		}
		rt.Total += *a - *b
	}
	if done.OK > 0 {
		rt.PerCeremony = round(float64(rt.Total)/float64(done.OK), 2)
	}
	return &rt
}

// String is the report's line.
func (rt *RoundTrips) String() string {
	if rt == nil {
		return "not counted (give --admin-socket of every node; an embedded store makes none)"
	}
	return fmt.Sprintf("%.2f per ceremony (%d in all)", rt.PerCeremony, rt.Total)
}
