package actors

import (
	"math"
	"sync"
	"time"
)

// limiter counts failed sign-ins with token buckets, one per credential and one per license:
// each failure spends a token, tokens come back at a steady rate, and a failure that finds a
// bucket without a whole token is answered 429 (so that clients back off and the log shows the
// attack) until one has come back. It only ever sees failures: a sign-in that verifies is never
// refused, since refusing it would let forged assertions lock a real user out. It belongs to the
// engine's callers, not to an actor: counting costs a map look-up under a mutex.
type limiter struct {
	perMinute float64 // tokens regained per minute by a credential's bucket
	burst     float64 // a credential's bucket size
	factor    float64 // a license's bucket is factor times larger and faster
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(perMinute, burst, factor float64) *limiter {
	return &limiter{perMinute: perMinute, burst: burst, factor: factor, now: time.Now, buckets: map[string]*bucket{}}
}

// refill brings a bucket up to now and returns it (nil when it would be full: full buckets
// need no entry).
func (l *limiter) refill(key string, size, rate float64, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		return nil
	}
	b.tokens = math.Min(size, b.tokens+now.Sub(b.at).Minutes()*rate)
	b.at = now
	if b.tokens >= size {
		delete(l.buckets, key)
		return nil
	}
	return b
}

// fail spends a token of the credential's bucket and of the license's. It returns zero when
// both had a whole token to spend, else how long until the emptier has one again: the failure
// was beyond the burst.
func (l *limiter) fail(credential, license string) time.Duration {
	if l == nil || l.perMinute <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range l.keys(credential, license) {
		b := l.refill(k.key, k.size, k.rate, now)
		if b == nil {
			b = &bucket{tokens: k.size, at: now}
			l.buckets[k.key] = b
		}
		over := b.tokens < 1
		b.tokens = math.Max(0, b.tokens-1)
		if over {
			wait = max(wait, time.Duration((1-b.tokens)/k.rate*float64(time.Minute)))
		}
	}
	if now.Sub(l.lastSweep) > time.Minute {
		// Forget the buckets that have filled up again.
		l.lastSweep = now
		for key := range l.buckets {
			size, rate := l.limits(key)
			l.refill(key, size, rate, now)
		}
	}
	return wait
}

type bucketKey struct {
	key        string
	size, rate float64
}

// limits are the size and rate of a bucket: a license's ("l…") are factor times a credential's.
func (l *limiter) limits(key string) (size, rate float64) {
	if key[0] == 'l' {
		return l.burst * l.factor, l.perMinute * l.factor
	}
	return l.burst, l.perMinute
}

func (l *limiter) keys(credential, license string) []bucketKey {
	out := make([]bucketKey, 0, 2)
	for _, k := range []string{"c" + credential, "l" + license} {
		size, rate := l.limits(k)
		out = append(out, bucketKey{k, size, rate})
	}
	return out
}
