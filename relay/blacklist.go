package relay

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// expiringBlacklist is a pubsub.Blacklist whose entries expire. Unlike
// pubsub's TimeCachedBlacklist it runs no sweeper goroutine (that one is
// started on context.Background and never stops, one per node): expired
// entries are dropped lazily, and the map is bounded.
type expiringBlacklist struct {
	mu      sync.Mutex
	ttl     time.Duration
	max     int
	entries map[peer.ID]time.Time // expiry
	now     func() time.Time
}

func newExpiringBlacklist(ttl time.Duration, max int) *expiringBlacklist {
	return &expiringBlacklist{ttl: ttl, max: max, entries: map[peer.ID]time.Time{}, now: time.Now}
}

// Add blacklists p for the TTL. It reports false if the list is full of
// live entries (the peer is then not blacklisted, only rate-limited).
func (b *expiringBlacklist) Add(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if len(b.entries) >= b.max {
		for q, exp := range b.entries {
			if !now.Before(exp) {
				delete(b.entries, q)
			}
		}
		if len(b.entries) >= b.max {
			return false
		}
	}
	b.entries[p] = now.Add(b.ttl)
	return true
}

// Contains reports whether p is blacklisted now.
func (b *expiringBlacklist) Contains(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	exp, ok := b.entries[p]
	if !ok {
		return false
	}
	if !b.now().Before(exp) {
		delete(b.entries, p)
		return false
	}
	return true
}
