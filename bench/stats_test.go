package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// ints makes samples of 1..n milliseconds, in order.
func ints(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"no samples", nil, 50, 0},
		{"one sample is every percentile", ints(1), 99, time.Millisecond},
		{"median of two is the lower", ints(2), 50, time.Millisecond},
		{"median of three", ints(3), 50, 2 * time.Millisecond},
		{"p50 of 1..100", ints(100), 50, 50 * time.Millisecond},
		{"p95 of 1..100", ints(100), 95, 95 * time.Millisecond},
		{"p7 of 1..100 (float rounding must not add a rank)", ints(100), 7, 7 * time.Millisecond},
		{"p99 of 1..100", ints(100), 99, 99 * time.Millisecond},
		{"p100 is the max", ints(100), 100, 100 * time.Millisecond},
		{"p99 of 1..10 is the max", ints(10), 99, 10 * time.Millisecond},
		{"p99 of 1..1000", ints(1000), 99, 990 * time.Millisecond},
		{"p99.9 of 1..1000", ints(1000), 99.9, 999 * time.Millisecond},
		{"a tiny p is the min", ints(1000), 0.01, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.samples, tc.p); got != tc.want {
				t.Errorf("percentile(%d samples, %v) = %v, want %v", len(tc.samples), tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeLatency(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		want    Latency
	}{
		{"empty", nil, Latency{}},
		{"unsorted input", []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond},
			Latency{Count: 3, P50: 2, P95: 3, P99: 3, Max: 3, Mean: 2}},
		{"microseconds survive", []time.Duration{1500 * time.Microsecond}, Latency{Count: 1, P50: 1.5, P95: 1.5, P99: 1.5, Max: 1.5, Mean: 1.5}},
		{"1..100 ms", ints(100), Latency{Count: 100, P50: 50, P95: 95, P99: 99, Max: 100, Mean: 50.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarizeLatency(tc.samples); got != tc.want {
				t.Errorf("summarizeLatency = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFinishCountsOutcomes(t *testing.T) {
	s := newStats()
	for _, err := range []error{
		nil, nil,
		&callError{status: http.StatusTooManyRequests, code: "busy", retryAfter: "1"},
		&callError{status: http.StatusTooManyRequests, code: "busy (no Retry-After)"},
		&callError{status: http.StatusBadRequest, code: "ceremony_not_found"},
		&callError{err: errors.New("connection refused")},
		errors.New("answered 200 without a signature_token"),
		fmt.Errorf("assertion/result: %w", context.Canceled), // cut short by the end of the run: not counted
	} {
		s.finish(err)
	}
	if s.ok.Load() != 2 || s.refused.Load() != 1 || s.failed.Load() != 4 {
		t.Errorf("ok %d refused %d failed %d, want 2 1 4", s.ok.Load(), s.refused.Load(), s.failed.Load())
	}
}
