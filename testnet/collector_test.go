package testnet

import (
	"testing"
	"time"
)

func TestOnlineFrom(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	c := &collector{offline: [][]interval{
		0: nil,
		1: {{from: at(10), to: at(20)}, {from: at(30)}},
	}}
	for _, tc := range []struct {
		node    int
		t, want time.Time
	}{
		{0, at(15), at(15)}, // never offline
		{1, at(5), at(5)},   // online then
		{1, at(10), at(20)}, // went offline at that instant: from its return
		{1, at(15), at(20)}, // offline: from its return
		{1, at(20), at(20)}, // back at that instant
		{1, at(25), at(25)},
		{1, at(35), at(35)}, // offline to the end: no return to time from
	} {
		if got := c.onlineFrom(tc.node, tc.t); !got.Equal(tc.want) {
			t.Errorf("node %d at %v: %v, want %v", tc.node, tc.t.Sub(t0), got.Sub(t0), tc.want.Sub(t0))
		}
	}
}
