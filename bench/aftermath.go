package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// The aftermath of a burst: once the burst's ceremonies have ended, and the ceremonies it left
// unfinished have timed out, the server should be back where it started: no live ceremony
// actor, and a Go heap (after a forced collection) within heapTolerance of its size before the
// burst. The harness asks the server's admin socket, GET /admin/stats?gc=1, before the burst
// and --settle after it.

// heapTolerancePercent is how much the live heap may grow over a burst and its settling.
const heapTolerancePercent = 10

// serverStats is the answer of GET /admin/stats.
type serverStats struct {
	LiveCeremonies int    `json:"liveCeremonies"`
	HeapBytes      uint64 `json:"heapBytes"`
	Goroutines     int    `json:"goroutines"`
	// StoreRoundTrips is the round trips the node's store made to its database since it
	// started; nil for a store that makes none (Badger) or a server too old to say.
	StoreRoundTrips *uint64 `json:"storeRoundTrips"`
}

// sumStats adds up the stats of the nodes of a cluster (their round trips are left out: see
// newRoundTrips).
func sumStats(nodes []serverStats) serverStats {
	var sum serverStats
	for _, s := range nodes {
		sum.LiveCeremonies += s.LiveCeremonies
		sum.HeapBytes += s.HeapBytes
		sum.Goroutines += s.Goroutines
	}
	return sum
}

// nodesAdmin reads the stats of every node, in --url order.
type nodesAdmin []*adminClient

func newNodesAdmin(sockets []string) nodesAdmin {
	a := make(nodesAdmin, len(sockets))
	for i, s := range sockets {
		a[i] = newAdminClient(s)
	}
	return a
}

// stats reads every node's stats, one after the other (collecting first when gc is set).
func (a nodesAdmin) stats(ctx context.Context, gc bool) ([]serverStats, error) {
	out := make([]serverStats, len(a))
	for i, node := range a {
		s, err := node.stats(ctx, gc)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// adminClient reads the stats of the server behind an admin Unix socket.
type adminClient struct {
	socket string
	http   *http.Client
}

func newAdminClient(socket string) *adminClient {
	return &adminClient{socket: socket, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}}
}

// errNoStats is a server whose admin socket has no /admin/stats (it answered 404).
type errNoStats struct{ socket string }

func (e errNoStats) Error() string {
	return fmt.Sprintf("--admin-socket %s: the server has no /admin/stats (404): a webauthnd without it cannot report a burst's aftermath", e.socket)
}

// stats reads GET /admin/stats; with gc, /admin/stats?gc=1: the server collects garbage first,
// so that heapBytes is the live heap (a reading of the round trips alone needs no collection).
func (a *adminClient) stats(ctx context.Context, gc bool) (serverStats, error) {
	url := "http://admin/admin/stats"
	if gc {
		url += "?gc=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return serverStats{}, err
	}
	res, err := a.http.Do(req)
	if err != nil {
		return serverStats{}, fmt.Errorf("--admin-socket %s: %w", a.socket, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return serverStats{}, fmt.Errorf("--admin-socket %s: %w", a.socket, err)
	}
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return serverStats{}, errNoStats{a.socket}
	default:
		return serverStats{}, fmt.Errorf("--admin-socket %s: /admin/stats answered %d %.200s", a.socket, res.StatusCode, body)
	}
	var s serverStats
	if err := json.Unmarshal(body, &s); err != nil {
		return serverStats{}, fmt.Errorf("--admin-socket %s: /admin/stats: %w", a.socket, err)
	}
	return s, nil
}

// Aftermath is the state of the server before a burst and --settle after it ended.
type Aftermath struct {
	SettleSeconds float64 `json:"settle_s"`
	// LiveCeremoniesBefore and LiveCeremoniesAfter count live ceremony actors (target after: 0).
	LiveCeremoniesBefore int `json:"live_ceremonies_before"`
	LiveCeremoniesAfter  int `json:"live_ceremonies_after"`
	// HeapBefore and HeapAfter are the server's live Go heap after a forced collection;
	// HeapChangePercent is the change (target: at most +10 %).
	HeapBeforeBytes   uint64  `json:"heap_before_bytes"`
	HeapAfterBytes    uint64  `json:"heap_after_bytes"`
	HeapChangePercent float64 `json:"heap_change_pct"`
	GoroutinesBefore  int     `json:"goroutines_before"`
	GoroutinesAfter   int     `json:"goroutines_after"`
	// RSSBeforeMiB and RSSAfterMiB are the server's resident set (with --pid only).
	RSSBeforeMiB float64 `json:"rss_before_mib,omitempty"`
	RSSAfterMiB  float64 `json:"rss_after_mib,omitempty"`
	// OK is true when no ceremony is left and the heap grew by at most 10 %.
	OK      bool   `json:"ok"`
	Verdict string `json:"verdict"`
}

// newAftermath compares the readings before the burst and after settling. The RSS readings are
// in bytes, 0 when unknown.
func newAftermath(settle time.Duration, before, after serverStats, rssBefore, rssAfter int64) Aftermath {
	a := Aftermath{
		SettleSeconds:        settle.Seconds(),
		LiveCeremoniesBefore: before.LiveCeremonies, LiveCeremoniesAfter: after.LiveCeremonies,
		HeapBeforeBytes: before.HeapBytes, HeapAfterBytes: after.HeapBytes,
		GoroutinesBefore: before.Goroutines, GoroutinesAfter: after.Goroutines,
		RSSBeforeMiB: round(float64(rssBefore)/(1<<20), 1), RSSAfterMiB: round(float64(rssAfter)/(1<<20), 1),
	}
	if before.HeapBytes > 0 {
		a.HeapChangePercent = round((float64(after.HeapBytes)-float64(before.HeapBytes))/float64(before.HeapBytes)*100, 1)
	}
	heapOK := before.HeapBytes > 0 && a.HeapChangePercent <= heapTolerancePercent
	a.OK = after.LiveCeremonies == 0 && heapOK
	switch {
	case a.OK:
		a.Verdict = "ok: no live ceremony, heap within 10 %"
	case after.LiveCeremonies != 0 && !heapOK:
		a.Verdict = fmt.Sprintf("FAIL: %d live ceremonies, heap %+.1f %%", after.LiveCeremonies, a.HeapChangePercent)
	case after.LiveCeremonies != 0:
		a.Verdict = fmt.Sprintf("FAIL: %d live ceremonies", after.LiveCeremonies)
	case before.HeapBytes == 0:
		a.Verdict = "FAIL: no heap reading before the burst"
	default:
		a.Verdict = fmt.Sprintf("FAIL: heap %+.1f %% (more than +10 %%)", a.HeapChangePercent)
	}
	return a
}
