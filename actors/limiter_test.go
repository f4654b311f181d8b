package actors

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newLimiter(60, 2, 3) // a credential: 2 at once, 1 back a second; a license: 6 at once
	l.now = func() time.Time { return now }
	steps := []struct {
		name      string
		advance   time.Duration
		fail      string // credential that fails, if any
		ask       string // credential whose wait is checked
		wantWait  time.Duration
		tolerance time.Duration
	}{
		{name: "a fresh credential goes ahead", ask: "a"},
		{name: "one failure leaves a token", fail: "a", ask: "a"},
		{name: "two failures empty the bucket", fail: "a", ask: "a", wantWait: time.Second},
		{name: "half a second later, half a token", advance: 500 * time.Millisecond, ask: "a", wantWait: 500 * time.Millisecond},
		{name: "a second later, a token", advance: 500 * time.Millisecond, ask: "a"},
		{name: "another credential is not affected", ask: "b"},
		{name: "b fails: 5 of the license's 6 left", fail: "b", ask: "c"},
		{name: "b fails: 4 left", fail: "b", ask: "c"},
		{name: "b fails: 3 left", fail: "b", ask: "c"},
		{name: "b fails: 2 left", fail: "b", ask: "c"},
		{name: "b fails: 1 left", fail: "b", ask: "c"},
		{name: "b fails: the license is empty for everyone", fail: "b", ask: "c", wantWait: 1000 * time.Millisecond / 3, tolerance: 2 * time.Millisecond},
		{name: "a minute later all is forgotten", advance: time.Minute, ask: "a"},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.fail != "" {
			l.fail(s.fail, "lic")
		}
		got := l.wait(s.ask, "lic")
		if d := got - s.wantWait; d > s.tolerance || d < -s.tolerance {
			t.Fatalf("%s: wait %s, want %s", s.name, got, s.wantWait)
		}
	}
	now = now.Add(2 * time.Minute)
	l.fail("z", "other") // sweeps: only z's and other's buckets are not full
	if len(l.buckets) != 2 {
		t.Fatalf("full buckets are not forgotten: %d left", len(l.buckets))
	}
	if (*limiter)(nil).wait("a", "b") != 0 || newLimiter(0, 1, 1).wait("a", "b") != 0 {
		t.Fatal("a disabled limiter refuses")
	}
}
