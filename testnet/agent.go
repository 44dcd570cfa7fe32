package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
)

// The agent drives one node's daemon through its control API, following
// the plan's schedule, and writes what happens to its event log (JSON
// lines, logEvent): its sends, every message its node shows, its offline
// periods, and at the end what its member database holds and what its
// store uses. The collector replays these logs (replay.go).

// Kinds of log events.
const (
	logReady       = "ready"        // groups formed
	logStart       = "start"        // the traffic phase starts (T: the agent's t0)
	logLate        = "late"         // not ready when the traffic started
	logSetupFailed = "setup_failed" // a group could not be formed
	logSent        = "sent"         // about to send message Msg
	logSendFailed  = "send_failed"
	logShown       = "shown" // the node showed message Msg
	logGap         = "gap"   // the node showed a gap notice
	logOffline     = "offline"
	logOnline      = "online"
	logHeld        = "held"  // message Msg in the member database at the end
	logStore       = "store" // the node's store usage at the end
	logFinal       = "final" // the agent's final catch-up ended
)

// logEvent is one line of an agent's log.
type logEvent struct {
	T     int64  `json:"t"` // Unix nanoseconds
	Kind  string `json:"kind"`
	Node  int    `json:"node"`
	Msg   int    `json:"msg,omitempty"`
	Group int    `json:"group,omitempty"`
	Epoch uint64 `json:"epoch,omitempty"`
	Err   string `json:"err,omitempty"`
	// Store usage (logStore).
	Bytes     int64 `json:"bytes,omitempty"`
	Envelopes int64 `json:"envelopes,omitempty"`
	Mailboxes int64 `json:"mailboxes,omitempty"`
}

// eventLog writes log events, one JSON line each, safe for concurrent
// use; every line is written at once (a killed agent loses nothing
// written before).
type eventLog struct {
	mu   sync.Mutex
	w    io.Writer
	node int
	err  error
}

func (l *eventLog) add(ev logEvent) {
	if ev.T == 0 {
		ev.T = time.Now().UnixNano()
	}
	ev.Node = l.node
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(append(b, '\n')); err != nil && l.err == nil {
		l.err = err
	}
}

// AgentConfig configures an agent.
type AgentConfig struct {
	Plan *Plan
	Node int
	// StartedAt is this agent's start offset from the simulation's start.
	StartedAt time.Duration
	Log       io.Writer
	Logger    *slog.Logger
}

type agent struct {
	cfg   AgentConfig
	plan  *Plan
	s     *Scenario
	sch   *Schedule
	me    PlanNode
	home  *daemon.Home
	rv    rendezvous
	log   *eventLog
	slog  *slog.Logger
	sim0  time.Time
	t0    time.Time
	gids  map[int]string // group index → group ID, for my groups
	mine  []int          // groups I am a member of
	hosts [][]int        // per group, the node indexes it names as hosts
}

// agentPoll is how often an agent polls for files and its daemon.
const agentPoll = 100 * time.Millisecond

// RunAgent runs one node's agent until its run is over.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	p := cfg.Plan
	if cfg.Node < 0 || cfg.Node >= len(p.Nodes) {
		return fmt.Errorf("%w: node %d: the plan has nodes 0 to %d", ErrScenario, cfg.Node, len(p.Nodes)-1)
	}
	home, err := daemon.OpenHome(p.Nodes[cfg.Node].Home)
	if err != nil {
		return err
	}
	a := &agent{cfg: cfg, plan: p, s: &p.Scenario, sch: NewSchedule(&p.Scenario), me: p.Nodes[cfg.Node], home: home,
		rv: rendezvous(p.Rendezvous), log: &eventLog{w: cfg.Log, node: cfg.Node}, slog: cfg.Logger, gids: map[int]string{}}
	if a.slog == nil {
		a.slog = discard
	}
	a.sim0 = time.Now().Add(-cfg.StartedAt)
	a.t0 = a.sim0.Add(p.TrafficAt.D())
	for gi, g := range a.sch.Groups {
		a.hosts = append(a.hosts, groupHosts(a.s, p.Strategy, gi, g))
		if slices.Contains(g.Members, cfg.Node) {
			a.mine = append(a.mine, gi)
		}
	}
	ctx, cancel := context.WithDeadline(ctx, a.sim0.Add(p.End()+30*time.Second))
	defer cancel()
	if err := a.setup(ctx); err != nil {
		a.log.add(logEvent{Kind: logSetupFailed, Err: err.Error()})
		return err
	}
	if time.Now().After(a.t0) {
		a.log.add(logEvent{Kind: logLate})
	}
	if err := sleepUntil(ctx, a.t0); err != nil {
		return err
	}
	a.log.add(logEvent{T: a.t0.UnixNano(), Kind: logStart})
	var wg sync.WaitGroup
	fctx, stopFollow := context.WithCancel(ctx)
	for _, gi := range a.mine {
		wg.Add(1)
		go func() { defer wg.Done(); a.follow(fctx, gi) }()
	}
	err = a.traffic(ctx)
	if err == nil && a.me.Member {
		err = a.final(ctx)
	} else if err == nil {
		err = a.waitMembers(ctx)
	}
	stopFollow()
	wg.Wait()
	a.report(ctx)
	a.log.add(logEvent{Kind: logFinal})
	if perr := a.rv.put(fmt.Sprintf("done-%04d", cfg.Node), nil); perr != nil && err == nil {
		err = perr
	}
	return errors.Join(err, a.log.err)
}

// client waits for the node's daemon to answer and returns a client of it.
func (a *agent) client(ctx context.Context) (*api.Client, error) {
	for {
		c, err := a.home.Client()
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = c.Status(sctx)
			cancel()
			if err == nil {
				return c, nil
			}
			c.Close()
		}
		if err := sleepUntil(ctx, time.Now().Add(agentPoll)); err != nil {
			return nil, fmt.Errorf("testnet: the daemon of node %d does not answer: %w", a.me.Index, err)
		}
	}
}

// wait polls the rendezvous for a file until it exists.
func (a *agent) wait(ctx context.Context, name string) ([]byte, error) {
	for {
		b, ok, err := a.rv.get(name)
		if err != nil || ok {
			return b, err
		}
		if err := sleepUntil(ctx, time.Now().Add(agentPoll)); err != nil {
			return nil, fmt.Errorf("testnet: waiting for %s: %w", name, err)
		}
	}
}

// pickAddr prefers a routable IPv4 address (Shadow's), then loopback.
func pickAddr(addrs []string) string {
	for _, a := range addrs {
		if strings.HasPrefix(a, "/ip4/") && !strings.HasPrefix(a, "/ip4/127.") {
			return a
		}
	}
	for _, a := range addrs {
		if strings.HasPrefix(a, "/ip4/") {
			return a
		}
	}
	if len(addrs) > 0 {
		return addrs[0]
	}
	return ""
}

// setup publishes the node's address, then creates or joins its groups.
func (a *agent) setup(ctx context.Context) error {
	sctx, cancel := context.WithDeadline(ctx, a.t0)
	defer cancel()
	c, err := a.client(sctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(sctx)
	if err != nil {
		return err
	}
	addr := pickAddr(st.Addrs)
	if addr == "" {
		return fmt.Errorf("testnet: node %d has no address", a.me.Index)
	}
	if err := a.rv.put(addrFile(a.me.Index), []byte(addr+"\n")); err != nil {
		return err
	}
	for _, gi := range a.mine {
		g := a.sch.Groups[gi]
		if g.Members[0] == a.me.Index {
			var hosts []string
			for _, h := range a.hosts[gi] {
				b, err := a.wait(sctx, addrFile(h))
				if err != nil {
					return err
				}
				hosts = append(hosts, firstLine(b))
			}
			cg, err := c.CreateGroup(sctx, fmt.Sprintf("g%04d", gi), hosts)
			if err != nil {
				return fmt.Errorf("testnet: node %d creates group %d: %w", a.me.Index, gi, err)
			}
			a.gids[gi] = cg.Group.ID
			if err := a.rv.put(inviteFile(gi), []byte(cg.Group.ID+"\n"+cg.Invite+"\n")); err != nil {
				return err
			}
			continue
		}
		b, err := a.wait(sctx, inviteFile(gi))
		if err != nil {
			return err
		}
		_, invite, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		info, err := c.JoinGroup(sctx, invite, nick(a.me.Index))
		if err != nil {
			return fmt.Errorf("testnet: node %d joins group %d: %w", a.me.Index, gi, err)
		}
		a.gids[gi] = info.ID
	}
	a.log.add(logEvent{Kind: logReady})
	return a.rv.put(readyFile(a.me.Index), nil)
}

// follow logs every message the node shows in group gi, once, across
// restarts of the daemon (the stream lists the history again on each
// reconnection; messages already logged are skipped).
func (a *agent) follow(ctx context.Context, gi int) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		c, err := a.client(ctx)
		if err != nil {
			return
		}
		st, err := c.MessageStream(ctx, a.gids[gi], 0, true)
		if err == nil {
			for {
				msg, err := st.Next()
				if err != nil {
					break
				}
				if seen[msg.ID] || msg.Own {
					continue
				}
				seen[msg.ID] = true
				at := time.Now()
				if !msg.Received.IsZero() && msg.Received.Before(at) {
					at = msg.Received
				}
				if msg.Kind == api.KindGap {
					a.log.add(logEvent{T: at.UnixNano(), Kind: logGap, Group: gi})
					continue
				}
				if id, ok := parseText(msg.Text); ok {
					a.log.add(logEvent{T: at.UnixNano(), Kind: logShown, Msg: id, Group: gi, Epoch: msg.Epoch})
				}
			}
			st.Close()
		}
		c.Close()
		_ = sleepUntil(ctx, time.Now().Add(agentPoll))
	}
}

// traffic sends this node's messages and logs its offline periods, at
// their offsets from the traffic's start.
func (a *agent) traffic(ctx context.Context) error {
	for _, ev := range a.sch.Events {
		if ev.Node != a.me.Index || !a.me.Member {
			continue
		}
		switch ev.Kind {
		case EventSend, EventOffline, EventOnline:
		default:
			continue
		}
		if err := sleepUntil(ctx, a.t0.Add(ev.At)); err != nil {
			return err
		}
		switch ev.Kind {
		case EventOffline:
			a.log.add(logEvent{Kind: logOffline})
		case EventOnline:
			a.log.add(logEvent{Kind: logOnline})
		case EventSend:
			a.send(ctx, ev)
		}
	}
	return sleepUntil(ctx, a.t0.Add(a.s.Duration.D()))
}

func (a *agent) send(ctx context.Context, ev Event) {
	a.log.add(logEvent{Kind: logSent, Msg: ev.Msg, Group: ev.Group})
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := a.client(sctx)
	if err == nil {
		_, err = c.Send(sctx, a.gids[ev.Group], messageText(ev.Msg, a.s.Traffic.Size))
		c.Close()
	}
	if err != nil {
		a.log.add(logEvent{Kind: logSendFailed, Msg: ev.Msg, Group: ev.Group, Err: err.Error()})
	}
}

// expected lists, per group of mine, the messages this node should hold
// at the end.
func (a *agent) expected() map[int]map[int]bool {
	inGroup := map[[2]int]bool{}
	for gi, g := range a.sch.Groups {
		for _, m := range g.Members {
			inGroup[[2]int{gi, m}] = true
		}
	}
	c := &collector{inGroup: inGroup, removedAt: a.sch.removedAt()}
	out := map[int]map[int]bool{}
	for _, ev := range a.sch.Events {
		if ev.Kind == EventSend && c.isRecipient(ev, a.me.Index) {
			if out[ev.Group] == nil {
				out[ev.Group] = map[int]bool{}
			}
			out[ev.Group][ev.Msg] = true
		}
	}
	return out
}

// final catches up until the member database holds every message of its
// groups, or the catch-up limit; every message gets at least the
// delivery deadline.
func (a *agent) final(ctx context.Context) error {
	end := a.t0.Add((a.s.Duration + a.s.CatchUp).D())
	minEnd := a.t0.Add((a.s.Duration + a.s.Deadline).D())
	want := a.expected()
	next := time.Now()
	for {
		missing := 0
		c, err := a.client(ctx)
		if err != nil {
			return err
		}
		for _, gi := range a.mine {
			held, err := c.Messages(ctx, a.gids[gi], 0)
			if err != nil {
				continue
			}
			got := 0
			for _, m := range held {
				if id, ok := parseText(m.Text); ok && !m.Own && want[gi][id] {
					got++
				}
			}
			if got < len(want[gi]) {
				missing += len(want[gi]) - got
				if !time.Now().Before(next) {
					cctx, cancel := context.WithDeadline(ctx, end)
					_, _ = c.CatchUp(cctx, a.gids[gi]) // Dropped: retried next round; what stays missing shows.
					cancel()
				}
			}
		}
		c.Close()
		if !time.Now().Before(next) {
			next = time.Now().Add(2 * time.Second)
		}
		now := time.Now()
		if (missing == 0 && !now.Before(minEnd)) || now.After(end) {
			return nil
		}
		if err := sleepUntil(ctx, now.Add(250*time.Millisecond)); err != nil {
			return err
		}
	}
}

// waitMembers keeps an infrastructure node's agent until every member's
// agent is done (or the end), so that its store is read last.
func (a *agent) waitMembers(ctx context.Context) error {
	end := a.t0.Add((a.s.Duration + a.s.CatchUp + a.s.Deadline).D())
	for _, n := range a.plan.Nodes {
		if !n.Member {
			continue
		}
		for {
			if _, ok, _ := a.rv.get(fmt.Sprintf("done-%04d", n.Index)); ok || time.Now().After(end) {
				break
			}
			if err := sleepUntil(ctx, time.Now().Add(agentPoll)); err != nil {
				return err
			}
		}
	}
	return nil
}

// report logs what the member database holds and the store's usage.
func (a *agent) report(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := a.client(rctx)
	if err != nil {
		return
	}
	defer c.Close()
	for _, gi := range a.mine {
		held, err := c.Messages(rctx, a.gids[gi], 0)
		if err != nil {
			continue
		}
		for _, m := range held {
			if id, ok := parseText(m.Text); ok && !m.Own {
				a.log.add(logEvent{Kind: logHeld, Msg: id, Group: gi, Epoch: m.Epoch})
			}
		}
	}
	if st, err := c.Status(rctx); err == nil {
		a.log.add(logEvent{Kind: logStore, Bytes: st.Store.Bytes, Envelopes: st.Store.Envelopes, Mailboxes: int64(st.HostedMailboxes)})
	}
}
