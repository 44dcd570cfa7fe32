package relay

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestExpiringBlacklist(t *testing.T) {
	now := time.Unix(0, 0)
	b := newExpiringBlacklist(time.Minute, 2)
	b.now = func() time.Time { return now }
	a, c, d := peer.ID("a"), peer.ID("c"), peer.ID("d")
	if !b.Add(a) || !b.Add(c) || !b.Contains(a) {
		t.Fatal("entries not added")
	}
	if b.Add(d) || b.Contains(d) {
		t.Fatal("full list took a third entry")
	}
	now = now.Add(time.Minute)
	if b.Contains(a) {
		t.Fatal("entry did not expire")
	}
	if !b.Add(d) || !b.Contains(d) {
		t.Fatal("expired entries not reclaimed")
	}
}
