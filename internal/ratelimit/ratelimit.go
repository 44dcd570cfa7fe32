// Package ratelimit keeps one token bucket per key (a peer ID) in a bounded
// LRU, so a flood of new peer IDs cannot grow memory without bound.
package ratelimit

import (
	"time"

	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Limiter hands out per-key token buckets.
type Limiter[K comparable] struct {
	mu      sync.Mutex
	buckets *lru.Cache[K, *rate.Limiter]
	limit   rate.Limit
	burst   int
}

// New returns a limiter allowing perSecond events per key with the given
// burst, tracking at most maxKeys keys (least recently used forgotten).
// perSecond <= 0 disables limiting.
func New[K comparable](perSecond float64, burst, maxKeys int) *Limiter[K] {
	if maxKeys <= 0 {
		maxKeys = 1
	}
	c, _ := lru.New[K, *rate.Limiter](maxKeys) // only fails for size <= 0
	lim := rate.Limit(perSecond)
	if perSecond <= 0 {
		lim = rate.Inf
	}
	if burst < 1 {
		burst = 1
	}
	return &Limiter[K]{buckets: c, limit: lim, burst: burst}
}

// Allow takes n tokens from key's bucket if it has them.
func (l *Limiter[K]) Allow(key K, n int) bool {
	if l.limit == rate.Inf {
		return true
	}
	l.mu.Lock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets.Add(key, b)
	}
	l.mu.Unlock()
	return b.AllowN(timeNow(), n)
}

var timeNow = time.Now

// Take is Allow that can be undone: it takes n tokens from key's bucket if
// it has them, and returns a function that gives them back (as far as
// later takers allow) when what they paid for did not happen after all.
func (l *Limiter[K]) Take(key K, n int) (bool, func()) {
	if l.limit == rate.Inf {
		return true, func() {}
	}
	l.mu.Lock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets.Add(key, b)
	}
	l.mu.Unlock()
	now := timeNow()
	r := b.ReserveN(now, n)
	if !r.OK() {
		return false, nil
	}
	if r.DelayFrom(now) > 0 {
		r.CancelAt(now)
		return false, nil
	}
	// Cancelled as of when it was taken: a reservation whose time to act
	// has passed counts as used, and would give nothing back.
	return true, func() { r.CancelAt(now) }
}
