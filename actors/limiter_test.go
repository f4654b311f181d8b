package actors

import (
	"testing"
	"time"
)

// TestLimiter: failures spend tokens; a failure that finds a bucket without a whole token is
// beyond the burst and says how long until one is back; tokens come back at a steady rate; a
// license's bucket is shared by its credentials.
func TestLimiter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newLimiter(60, 2, 3) // a credential: 2 at once, 1 back a second; a license: 6 at once
	l.now = func() time.Time { return now }
	steps := []struct {
		name      string
		advance   time.Duration
		fail      string // credential that fails
		wantWait  time.Duration
		tolerance time.Duration
	}{
		{name: "a first failure is within the burst", fail: "a"},
		{name: "a second failure empties the bucket, still within the burst", fail: "a"},
		{name: "a third failure is beyond the burst: a token in a second", fail: "a", wantWait: time.Second},
		{name: "half a second later, still beyond it", advance: 500 * time.Millisecond, fail: "a", wantWait: time.Second},
		{name: "a second later a token is back", advance: time.Second, fail: "a"},
		// The license regains 3 tokens a second: it is back to 6, less a's last failure.
		{name: "another credential has its own bucket: the license has 4 left", fail: "b"},
		{name: "c: the license has 3 left", fail: "c"},
		{name: "d: 2 left", fail: "d"},
		{name: "e: 1 left", fail: "e"},
		{name: "f: the license's bucket is empty", fail: "f"},
		{name: "beyond the license's burst for any credential", fail: "g", wantWait: time.Second / 3, tolerance: 2 * time.Millisecond},
		{name: "a minute later all is forgotten", advance: time.Minute, fail: "a"},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		got := l.fail(s.fail, "lic")
		if d := got - s.wantWait; d > s.tolerance || d < -s.tolerance {
			t.Fatalf("%s: wait %s, want %s", s.name, got, s.wantWait)
		}
	}
	now = now.Add(2 * time.Minute)
	l.fail("z", "other") // sweeps: only z's and other's buckets are not full
	if len(l.buckets) != 2 {
		t.Fatalf("full buckets are not forgotten: %d left", len(l.buckets))
	}
	if (*limiter)(nil).fail("a", "b") != 0 || newLimiter(0, 1, 1).fail("a", "b") != 0 {
		t.Fatal("a disabled limiter refuses")
	}
}
