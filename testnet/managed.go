package testnet

import (
	"context"
	"fmt"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/node"
)

// Managed groups in the simulation: the group's manager (its creator, or
// its bot under the bot strategy) creates it with node.Managed and adds
// every other member by key package (NewKeyPackage at the member,
// AddMember at the manager, the welcome through the group's hosts); the
// schedule's removals and rotations are done by the manager, one group's
// operations in order.

// manageInterval is the members' manager-loop period (node.Params
// .ManageInterval) in managed scenarios: how soon a new member fetches
// its welcome when gossip did not bring it.
const manageInterval = time.Second

// joinTimeout bounds one member's join (key package → welcome → group).
const joinTimeout = 2 * time.Minute

// joinWorkers bounds concurrent joins of one group: they mostly wait for
// welcomes, and the manager serialises the adds.
const joinWorkers = 16

// opTimeout bounds one removal or rotation at the manager.
const opTimeout = time.Minute

// formManaged creates group g as a managed group at its manager and adds
// every member that is not the manager, waiting until each has joined.
func (m *sim) formManaged(ctx context.Context, g *simGroup, hosts []string) error {
	mgr := m.nodes[g.manager].n
	info, _, err := mgr.CreateGroup(ctx, fmt.Sprintf("g%04d", g.idx), hosts, node.Managed(groupstate.DefaultPolicy()))
	if err != nil {
		return fmt.Errorf("testnet: create managed group %d: %w", g.idx, err)
	}
	g.id = info.ID
	m.col.named(g.id, g.idx)
	var joiners []int
	for _, mi := range g.plan.Members {
		if mi != g.manager {
			joiners = append(joiners, mi)
		}
	}
	return parallel(ctx, len(joiners), joinWorkers, func(ctx context.Context, k int) error {
		mi := joiners[k]
		mn := m.nodes[mi].n
		kp, err := mn.NewKeyPackage(ctx, 0, hosts)
		if err != nil {
			return fmt.Errorf("testnet: key package of node %d: %w", mi, err)
		}
		if _, err := mgr.AddMember(ctx, g.id, kp.KeyPackage, groupstate.RoleWrite); err != nil {
			return fmt.Errorf("testnet: add node %d to group %d: %w", mi, g.idx, err)
		}
		deadline := time.Now().Add(joinTimeout)
		for {
			if _, err := mn.GroupInfo(g.id); err == nil {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("testnet: node %d received no welcome to group %d within %v", mi, g.idx, joinTimeout)
			}
			if err := sleepUntil(ctx, time.Now().Add(50*time.Millisecond)); err != nil {
				return err
			}
		}
	})
}

// startManagers starts one operation queue per group that has removals
// or rotations in the schedule.
func (m *sim) startManagers() {
	ops := make([]int, len(m.grps))
	for _, ev := range m.sch.Events {
		if ev.Kind == EventRemove || ev.Kind == EventRotate {
			ops[ev.Group]++
		}
	}
	for gi, g := range m.grps {
		if ops[gi] == 0 {
			continue
		}
		g.opq = make(chan Event, ops[gi])
		m.wg.Add(1)
		go m.manage(g)
	}
}

// manage does a group's removals and rotations at its manager, in order.
func (m *sim) manage(g *simGroup) {
	defer m.wg.Done()
	mgr := m.nodes[g.manager].n
	for ev := range g.opq {
		ctx, cancel := context.WithTimeout(m.ctx, opTimeout)
		var res *node.ManageResult
		var err error
		if ev.Kind == EventRemove {
			res, err = mgr.RemoveMember(ctx, g.id, m.nodes[ev.Node].n.Fingerprint())
		} else {
			res, err = mgr.Rotate(ctx, g.id)
		}
		cancel()
		m.col.managed(ev, time.Now(), res, err)
		if err != nil && m.ctx.Err() == nil {
			m.cfg.log.Info("manager operation failed", "group", g.idx, "op", ev.Kind, "node", ev.Node, "err", err)
		}
	}
}

// epochSeen records the epoch a member is in after its node showed a
// state event or a rotation of a group.
func (m *sim) epochSeen(sn *simNode, group string, at time.Time) {
	gi, ok := m.col.groupIndex(group)
	if !ok {
		return
	}
	info, err := sn.n.GroupInfo(group)
	if err != nil {
		return // Dropped: a group being closed; the next event records it.
	}
	m.col.epochAt(sn.idx, gi, info.Epoch, at)
}

// opRecord is a removal or rotation as the manager did it.
type opRecord struct {
	ev    Event
	done  time.Time
	epoch uint64 // the group's epoch afterwards
	ok    bool
}

// epochMark is when a member was first seen in an epoch.
type epochMark struct {
	epoch uint64
	at    time.Time
}

func (c *collector) named(id string, gi int) {
	c.mu.Lock()
	c.gidx[id] = gi
	c.mu.Unlock()
}

func (c *collector) groupIndex(id string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gi, ok := c.gidx[id]
	return gi, ok
}

func (c *collector) opQueued() {
	c.mu.Lock()
	c.opsQueued++
	c.mu.Unlock()
}

func (c *collector) managed(ev Event, done time.Time, res *node.ManageResult, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := opRecord{ev: ev, done: done, ok: err == nil && res != nil && res.Rotated}
	if res != nil {
		r.epoch = res.Epoch
	}
	c.ops = append(c.ops, r)
}

func (c *collector) epochAt(node, group int, epoch uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := [2]int{node, group}
	marks := c.epochs[k]
	if n := len(marks); n > 0 && marks[n-1].epoch >= epoch {
		return
	}
	c.epochs[k] = append(marks, epochMark{epoch: epoch, at: at})
}

// epochShown records that a member showed a message of a group's epoch.
func (c *collector) epochShown(node int, group string, epoch uint64, at time.Time) {
	if gi, ok := c.groupIndex(group); ok {
		c.epochAt(node, gi, epoch, at)
	}
}

// reached returns when a member was first seen at epoch or later. Call
// with c.mu held.
func (c *collector) reached(node, group int, epoch uint64) (time.Time, bool) {
	for _, mk := range c.epochs[[2]int{node, group}] {
		if mk.epoch >= epoch {
			return mk.at, true
		}
	}
	return time.Time{}, false
}

// remains reports whether member rc is still in group gi after the
// schedule offset at. It reads only what the schedule fixed (safe without
// c.mu), as does isRecipient.
func (c *collector) remains(gi, rc int, at time.Duration) bool {
	t, ok := c.removedAt[[2]int{gi, rc}]
	return !ok || t > at
}

// isRecipient reports whether member rc should get message ev: a member
// of its group other than its author, not removed at or before its send.
func (c *collector) isRecipient(ev Event, rc int) bool {
	return rc != ev.Node && c.inGroup[[2]int{ev.Group, rc}] && c.remains(ev.Group, rc, ev.At)
}

// epochBehind reports whether a member that remains in a group has not
// been seen in the epoch of the group's last operation yet.
func (c *collector) epochBehind(node, group int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, op := range c.ops {
		if op.ok && op.ev.Group == group && c.remains(group, node, op.ev.At) {
			if _, ok := c.reached(node, group, op.epoch); !ok {
				return true
			}
		}
	}
	return false
}

// epochsReached reports whether every operation queued is done and every
// remaining member was seen in its epoch.
func (c *collector) epochsReached() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ops) < c.opsQueued {
		return false
	}
	for _, op := range c.ops {
		if !op.ok {
			continue
		}
		for _, rc := range c.m.sch.Groups[op.ev.Group].Members {
			if !c.remains(op.ev.Group, rc, op.ev.At) {
				continue
			}
			if _, ok := c.reached(rc, op.ev.Group, op.epoch); !ok {
				return false
			}
		}
	}
	return true
}

// removedShown records the epoch of a message a removed member showed or
// holds. Call with c.mu held.
func (c *collector) removedShown(msg, node int, epoch uint64) {
	ev, ok := c.msgEv[msg]
	if !ok {
		return
	}
	if _, removed := c.removedAt[[2]int{ev.Group, node}]; !removed {
		return
	}
	k := [2]int{msg, node}
	if e, seen := c.removedSeen[k]; !seen || epoch > e {
		c.removedSeen[k] = epoch
	}
}

// managedResult computes the managed-group metrics. Call with c.mu held.
func (c *collector) managedResult(sr *StrategyResult) *ManagedResult {
	r := &ManagedResult{}
	var all, each []float64
	for _, op := range c.ops {
		if !op.ok {
			r.Failed++
			continue
		}
		r.Rotations++
		if op.ev.Kind == EventRemove {
			r.Removals++
		}
		var slowest time.Duration
		complete := true
		for _, rc := range c.m.sch.Groups[op.ev.Group].Members {
			if !c.remains(op.ev.Group, rc, op.ev.At) {
				continue
			}
			t, ok := c.reached(rc, op.ev.Group, op.epoch)
			if !ok {
				complete = false
				continue
			}
			// A member offline when the operation finished is timed
			// from its return: the figure is the protocol's delay, not
			// the churn schedule's.
			d := max(0, t.Sub(c.onlineFrom(rc, op.done)))
			slowest = max(slowest, d)
			each = append(each, ms(d))
		}
		if complete {
			all = append(all, ms(slowest))
		} else {
			r.KeyCatchUpIncomplete++
		}
		if op.ev.Kind == EventRemove {
			c.forwardSecrecy(&r.ForwardSecrecy, op)
		}
	}
	r.KeyCatchUpMs = percentiles(all)
	sr.Series.KeyCatchUpCDF = cdf(all)
	r.KeyCatchUpMemberMs = percentiles(each)
	return r
}

// forwardSecrecy checks one removal: the removed member must show no
// message of the removal's epoch or later; messages sent after the
// removal in an older epoch (by a member not yet moved) are counted
// apart. Call with c.mu held.
func (c *collector) forwardSecrecy(fs *ForwardSecrecy, op opRecord) {
	gone := op.ev.Node
	for id, ev := range c.msgEv {
		if ev.Group != op.ev.Group || ev.Node == gone {
			continue
		}
		epoch, shown := c.removedSeen[[2]int{id, gone}]
		after := c.sends[id].After(op.done)
		if after {
			fs.Checked++
		}
		switch {
		case shown && epoch >= op.epoch:
			fs.Violations++
		case shown && after:
			fs.OldEpochShown++
		}
	}
}
