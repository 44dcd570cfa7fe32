package testnet

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// traffic runs the schedule's events in wall-clock time.
func (m *sim) traffic(ctx context.Context, prog *progress) error {
	for _, sn := range m.nodes {
		sn.startBytes = sn.c.sent.Load() + sn.c.recv.Load()
		sn.startBase = sn.c.baseSent.Load() + sn.c.baseRecv.Load()
		sn.startDups = counterValue(sn.reg, dupCounter)
	}
	m.col.start(time.Now())
	start := m.col.t0
	for _, ev := range m.sch.Events {
		if err := sleepUntil(ctx, start.Add(ev.At)); err != nil {
			return err
		}
		now := time.Now()
		switch ev.Kind {
		case EventSend:
			m.col.sent(ev, now)
			m.nodes[ev.Node].sendq <- sendJob{ev: ev, at: now}
			if m.s.BaselineOn() {
				m.publishBaseline(ev)
			}
		case EventOffline:
			m.col.setOnline(ev.Node, false, now)
			if err := m.fab.setOnline(ev.Node, false); err != nil {
				return err
			}
		case EventOnline:
			if err := m.fab.setOnline(ev.Node, true); err != nil {
				return err
			}
			m.col.setOnline(ev.Node, true, now)
			m.reconnect(ev.Node)
		case EventPartition:
			side := make([]int, len(m.nodes))
			copy(side, ev.Side)
			if err := m.fab.partition(side); err != nil {
				return err
			}
		case EventRemove, EventRotate:
			m.col.opQueued()
			m.grps[ev.Group].opq <- ev
		case EventHeal:
			if err := m.fab.partition(nil); err != nil {
				return err
			}
			for i := range m.nodes {
				m.reconnect(i)
			}
		}
		prog.update(m, ev.At)
	}
	if err := sleepUntil(ctx, start.Add(m.s.Duration.D())); err != nil {
		return err
	}
	prog.update(m, m.s.Duration.D())
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// reconnect dials the hosts named by node i's groups, as an application
// does when its network comes back (the node itself redials only at its
// next background catch-up).
func (m *sim) reconnect(i int) {
	sn := m.nodes[i]
	seen := map[int]bool{i: true}
	var targets []peer.AddrInfo
	for _, gi := range sn.groups {
		for _, h := range m.grps[gi].hosts {
			if !seen[h] && m.fab.reachable(i, h) {
				seen[h] = true
				hn := m.nodes[h].h
				targets = append(targets, peer.AddrInfo{ID: hn.ID(), Addrs: hn.Addrs()})
			}
		}
	}
	if len(targets) == 0 {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for _, ai := range targets {
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			// Dropped: a host that went away again is retried by the
			// node's own catch-up.
			_ = sn.h.Connect(ctx, ai)
			cancel()
		}
	}()
}

// catchUpPollInterval is how often the final phase checks completeness.
const catchUpPollInterval = 250 * time.Millisecond

// finalCatchUp brings everyone back, heals the network, and has every
// member catch up each of its groups until everything is delivered or the
// phase's time is up.
func (m *sim) finalCatchUp(ctx context.Context, prog *progress) error {
	now := time.Now()
	m.col.endTraffic(now)
	if err := m.fab.partition(nil); err != nil {
		return err
	}
	for i := range m.nodes {
		if !m.fab.isOnline(i) {
			if err := m.fab.setOnline(i, true); err != nil {
				return err
			}
			m.col.setOnline(i, true, now)
		}
	}
	for i := range m.nodes {
		m.reconnect(i)
	}
	deadline := now.Add(m.s.CatchUp.D())
	round := func() {
		_ = parallel(ctx, len(m.nodes), setupWorkers, func(ctx context.Context, i int) error {
			sn := m.nodes[i]
			if !sn.member {
				return nil
			}
			for _, gi := range sn.groups {
				if m.col.complete(i, gi) && !m.col.epochBehind(i, gi) {
					continue
				}
				cctx, cancel := context.WithDeadline(ctx, deadline)
				// Dropped: a failed catch-up is retried next round; what
				// stays missing shows in the eventual delivery ratio.
				_, _ = sn.n.CatchUp(cctx, m.grps[gi].id)
				cancel()
			}
			return nil
		})
	}
	nextRound := time.Now()
	for {
		if m.col.allDelivered() && m.col.epochsReached() {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		if !time.Now().Before(nextRound) {
			round()
			nextRound = time.Now().Add(2 * time.Second)
		}
		prog.finalUpdate(m, time.Since(now))
		if err := sleepUntil(ctx, time.Now().Add(catchUpPollInterval)); err != nil {
			return err
		}
	}
	m.col.endCatchUp(time.Now())
	// Every pair gets its full deadline, the baseline's too, before the
	// run is measured, unless everything arrived already.
	for !m.col.settled() && time.Now().Before(now.Add(m.s.Deadline.D())) {
		if err := sleepUntil(ctx, time.Now().Add(catchUpPollInterval)); err != nil {
			return err
		}
	}
	// The members' databases are the ground truth of eventual delivery.
	for _, sn := range m.nodes {
		if !sn.member {
			continue
		}
		for _, gi := range sn.groups {
			msgs, err := sn.n.Messages(m.grps[gi].id, 0)
			if err != nil {
				return fmt.Errorf("testnet: read messages of node %d: %w", sn.idx, err)
			}
			for _, msg := range msgs {
				if id, ok := parseText(msg.Text); ok && !msg.Own {
					m.col.stored(id, sn.idx, msg.Epoch)
				}
			}
		}
	}
	return nil
}
