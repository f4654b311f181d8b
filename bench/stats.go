package main

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// stats collects what a measurement saw: the latency of every call by route, the errors by
// HTTP status and by error code, and the outcome of every ceremony. It is safe for concurrent
// use; the counters are atomic so that the progress line can read them while workers run.
type stats struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration // by call
	statuses  map[int]int                // non-200 answers by HTTP status (0: no answer)
	codes     map[string]int             // non-200 answers by error code

	ok      atomic.Int64 // ceremonies that completed
	refused atomic.Int64 // ceremonies refused with 429 and Retry-After
	failed  atomic.Int64 // ceremonies that failed otherwise
}

func newStats() *stats {
	return &stats{latencies: map[string][]time.Duration{}, statuses: map[int]int{}, codes: map[string]int{}}
}

// record notes one call: its latency, and for an answer other than 200 its status and code.
func (s *stats) record(call string, d time.Duration, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies[call] = append(s.latencies[call], d)
	if status != http.StatusOK {
		s.statuses[status]++
		s.codes[code]++
	}
}

// finish notes the outcome of one ceremony. A ceremony cut short by the end of the run is not
// counted: it is neither the server's success nor its failure. A 429 without Retry-After is a
// failure: the client is not told when to come back.
func (s *stats) finish(err error) {
	var ce *callError
	switch {
	case err == nil:
		s.ok.Add(1)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
	case errors.As(err, &ce) && ce.status == http.StatusTooManyRequests && ce.retryAfter != "":
		s.refused.Add(1)
	default:
		s.failed.Add(1)
	}
}

// Latency summarizes the latencies of one call, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// summarizeLatency sorts samples in place and returns their percentiles.
func summarizeLatency(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var total time.Duration
	for _, d := range samples {
		total += d
	}
	return Latency{
		Count: len(samples),
		P50:   ms(percentile(samples, 50)),
		P95:   ms(percentile(samples, 95)),
		P99:   ms(percentile(samples, 99)),
		Max:   ms(samples[len(samples)-1]),
		Mean:  ms(total / time.Duration(len(samples))),
	}
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted samples by the nearest-rank
// method: the smallest sample that at least p percent of the samples do not exceed. It is
// always one of the samples, never an interpolation. It is 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// p*n/100 in that order (7/100*100 is 7.000000000000001), less a hair for a fractional p,
	// so that float rounding never adds a rank.
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
