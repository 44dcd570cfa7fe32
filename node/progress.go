package node

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/meshnode/meshnode/groupstate"
)

// Catch-up progress, for a person watching a group fill in (the web
// app's progress bar). A catch-up fetches each of a group's mailboxes
// from each of its sources in turn; how many envelopes a host still holds
// is not known before they come, so progress is counted in those fetches
// (Done of Steps), with the envelopes fetched so far beside it.

// CatchUpProgress is where a group's latest catch-up stands.
type CatchUpProgress struct {
	Group   string
	Running bool
	// Steps are the (source, mailbox) fetches planned so far (a key
	// update found on the way adds the next epoch's), Done those finished.
	Steps, Done int
	// Fetched counts the envelopes fetched so far.
	Fetched int
	// Failed counts the sources that failed.
	Failed   int
	Started  time.Time
	Finished time.Time // zero while running
}

// catchUpProgress holds the latest catch-up of each group. Its lock is
// never held across anything but map updates.
type catchUpProgress struct {
	mu sync.Mutex
	by map[groupstate.GroupID]*CatchUpProgress
}

func (c *catchUpProgress) update(gid groupstate.GroupID, fn func(*CatchUpProgress)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[groupstate.GroupID]*CatchUpProgress{}
	}
	p, ok := c.by[gid]
	if !ok {
		p = &CatchUpProgress{Group: gid.String()}
		c.by[gid] = p
	}
	fn(p)
}

func (c *catchUpProgress) start(gid groupstate.GroupID) {
	c.update(gid, func(p *CatchUpProgress) {
		*p = CatchUpProgress{Group: gid.String(), Running: true, Started: time.Now().UTC()}
	})
}

func (c *catchUpProgress) finish(gid groupstate.GroupID) {
	c.update(gid, func(p *CatchUpProgress) { p.Running, p.Finished = false, time.Now().UTC() })
}

func (c *catchUpProgress) forget(gid groupstate.GroupID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.by, gid)
}

// CatchUps reports the latest catch-up of each group that had one since
// the node started, by group ID.
func (n *Node) CatchUps() []CatchUpProgress {
	n.progress.mu.Lock()
	defer n.progress.mu.Unlock()
	out := make([]CatchUpProgress, 0, len(n.progress.by))
	for _, gid := range slices.SortedFunc(maps.Keys(n.progress.by), func(a, b groupstate.GroupID) int { return slices.Compare(a[:], b[:]) }) {
		out = append(out, *n.progress.by[gid])
	}
	return out
}
