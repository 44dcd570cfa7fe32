package testnet

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

// setupWorkers bounds concurrent node starts and joins.
const setupWorkers = 4

// simNode is one node of a simulation.
type simNode struct {
	idx    int
	member bool
	h      *simHost
	n      *node.Node
	reg    *prometheus.Registry
	c      counters
	groups []int // groups this node belongs to or hosts

	// Counters at the start of the traffic phase: bytes and duplicates
	// are measured from there (group formation is not the strategy's
	// running cost).
	startBytes, startBase int64
	startDups             float64

	stopFollow func()
	sendq      chan sendJob

	bps    *pubsub.PubSub
	topics map[int]*pubsub.Topic
	mesh   *meshTracer // the baseline router's mesh, per topic
}

type sendJob struct {
	ev Event
	at time.Time
}

// simGroup is one group in a simulation.
type simGroup struct {
	idx   int
	plan  GroupPlan
	id    string
	hosts []int // node indexes the group names as hosts
	nodes []int // members and hosts
	// manager is the node that manages a managed group; opq feeds it the
	// group's removals and rotations in schedule order.
	manager int
	opq     chan Event
}

// sim is one strategy's run of a schedule.
type sim struct {
	s     *Scenario
	sch   *Schedule
	st    Strategy
	cfg   *config
	nodes []*simNode
	infra []int
	grps  []*simGroup
	mn    mocknet.Mocknet
	fab   *fabric
	env   *runEnv
	col   *collector

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // followers, baseline readers, senders

	memPerNode int64

	// started and formed count setup's progress (nodes, groups).
	started, formed atomic.Int64
}

// infraCount is the number of infrastructure nodes of a strategy.
func infraCount(s *Scenario, st Strategy) int {
	switch st {
	case StrategyServer, StrategyHybrid:
		return s.Hosts
	case StrategyBot:
		return s.Bots
	}
	return 0
}

// groupHosts lists the node indexes a group names as hosts.
func groupHosts(s *Scenario, st Strategy, gi int, g GroupPlan) []int {
	var out []int
	switch st {
	case StrategyServer, StrategyHybrid:
		for i := range s.Hosts {
			out = append(out, s.Peers+i)
		}
	case StrategyBot:
		out = append(out, s.Peers+gi%s.Bots)
	}
	if st == StrategyPeers || st == StrategyHybrid {
		out = append(out, g.Members[:s.PeerHosts]...)
	}
	return out
}

func newSim(s *Scenario, sch *Schedule, st Strategy, cfg *config) *sim {
	ctx, cancel := context.WithCancel(context.Background())
	return &sim{s: s, sch: sch, st: st, cfg: cfg, ctx: ctx, cancel: cancel}
}

// setup builds the network, starts every node, forms the groups and
// starts the observers.
func (m *sim) setup(ctx context.Context) error {
	s := m.s
	total := s.Peers + infraCount(s, m.st)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	m.mn = mocknet.New()
	m.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: s.Link.Latency.D(), Bandwidth: float64(s.Link.Bandwidth)})
	model := linkModel{latency: s.Link.Latency.D(), jitter: s.Link.Jitter.D(), loss: s.Link.Loss}
	ids := make([]peer.ID, total)
	m.nodes = make([]*simNode, total)
	for i := range total {
		h, err := m.mn.GenPeer()
		if err != nil {
			return fmt.Errorf("testnet: mocknet peer: %w", err)
		}
		sn := &simNode{idx: i, member: i < s.Peers, reg: prometheus.NewRegistry(), topics: map[int]*pubsub.Topic{}}
		sn.h = &simHost{Host: h, model: model, c: &sn.c}
		m.nodes[i], ids[i] = sn, h.ID()
		if !sn.member {
			m.infra = append(m.infra, i)
		}
	}
	m.fab = newFabric(m.mn, ids)
	for gi, plan := range m.sch.Groups {
		g := &simGroup{idx: gi, plan: plan, hosts: groupHosts(s, m.st, gi, plan), manager: plan.Members[0]}
		if m.st == StrategyBot {
			g.manager = g.hosts[0]
		}
		seen := map[int]bool{}
		for _, i := range append(append([]int{}, plan.Members...), g.hosts...) {
			if !seen[i] {
				seen[i] = true
				g.nodes = append(g.nodes, i)
				m.nodes[i].groups = append(m.nodes[i].groups, gi)
			}
		}
		for a := range g.nodes {
			for b := a + 1; b < len(g.nodes); b++ {
				if err := m.fab.allow(g.nodes[a], g.nodes[b]); err != nil {
					return fmt.Errorf("testnet: link: %w", err)
				}
			}
		}
		m.grps = append(m.grps, g)
	}
	m.env = &runEnv{s: s, sch: m.sch, st: m.st, n: total, infra: m.infra}
	m.col = newCollector(m.env)

	if err := parallel(ctx, total, setupWorkers, m.startNode); err != nil {
		return err
	}
	for _, sn := range m.nodes {
		if sn.member {
			if err := m.follow(sn); err != nil {
				return err
			}
		}
	}
	if s.BaselineOn() {
		if err := m.startBaseline(); err != nil {
			return err
		}
	}
	// Managed groups too are formed several at a time. A node joining two
	// of them in the same second used to make byte-identical key packages
	// (same identity and nick), whose welcome mailboxes collided, so it
	// joined only one group, formed at once or not; key packages carry a
	// random nonce since (keymgmt, version 2). TestSeveralManagedGroups
	// covers it.
	if err := parallel(ctx, len(m.grps), setupWorkers, func(ctx context.Context, gi int) error {
		defer m.formed.Add(1)
		return m.formGroup(ctx, gi)
	}); err != nil {
		return err
	}
	if s.ManagedGroups() {
		m.startManagers()
	}
	for _, sn := range m.nodes {
		if sn.member {
			sn.sendq = make(chan sendJob, 1024)
			m.wg.Add(1)
			go m.sender(sn)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	m.memPerNode = max(used, 0) / int64(total)
	return nil
}

// parallel runs fn(0..n-1) on at most workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				if err := fn(ctx, i); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
	go func() {
		defer close(idx)
		for i := range n {
			select {
			case idx <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

func nick(i int) string { return fmt.Sprintf("m%04d", i) }

func (m *sim) nodeParams(sn *simNode) node.Params {
	var p node.Params
	switch {
	case sn.member:
		p = node.DefaultParams(node.RoleMember)
	case m.st == StrategyBot:
		p = node.DefaultParams(node.RoleBot)
	default:
		p = node.DefaultParams(node.RoleHost)
	}
	if !sn.member {
		p.HostPolicy = node.PolicyOpen
		// The transport key comes from the mocknet host.
		p.StablePeerID = false
	}
	p.Store = store.InMemoryParams()
	p.MemberMemTableSize = 1 << 20
	p.ProcessInterval = time.Second
	p.CatchUpInterval = m.s.CatchUpInterval.D()
	if m.s.ManagedGroups() {
		// New members look for their welcome at this period when it does
		// not reach them by gossip first.
		p.ManageInterval = manageInterval
	}
	return p
}

func (m *sim) startNode(ctx context.Context, i int) error {
	sn := m.nodes[i]
	opts := []node.Option{node.WithHost(sn.h), node.WithLogger(m.cfg.nodeLog), node.WithRegisterer(sn.reg)}
	// A bot managing groups needs an identity, as members do.
	if sn.member || m.st == StrategyBot && m.s.ManagedGroups() {
		id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
		if err != nil {
			return err
		}
		opts = append(opts, node.WithIdentity(id, nick(i)), node.WithMemberDB("", nil))
	}
	n, err := node.New(ctx, m.nodeParams(sn), opts...)
	if err != nil {
		return fmt.Errorf("testnet: start node %d: %w", i, err)
	}
	sn.n = n
	m.started.Add(1)
	return nil
}

// addr is node i's full multiaddr (with /p2p/).
func (m *sim) addr(i int) string { return m.nodes[i].n.Addrs()[0].String() }

// formGroup creates group gi at its first member and joins the others.
func (m *sim) formGroup(ctx context.Context, gi int) error {
	g := m.grps[gi]
	hosts := make([]string, 0, len(g.hosts))
	for _, h := range g.hosts {
		hosts = append(hosts, m.addr(h))
	}
	if m.s.ManagedGroups() {
		return m.formManaged(ctx, g, hosts)
	}
	creator := m.nodes[g.plan.Members[0]].n
	info, invite, err := creator.CreateGroup(ctx, fmt.Sprintf("g%04d", gi), hosts)
	if err != nil {
		return fmt.Errorf("testnet: create group %d: %w", gi, err)
	}
	g.id = info.ID
	m.col.named(g.id, gi)
	return parallel(ctx, len(g.plan.Members)-1, setupWorkers, func(ctx context.Context, k int) error {
		mi := g.plan.Members[k+1]
		if _, err := m.nodes[mi].n.JoinGroup(ctx, invite, ""); err != nil {
			return fmt.Errorf("testnet: node %d joins group %d: %w", mi, gi, err)
		}
		return nil
	})
}

// textPrefix starts every simulated message: "tn <msg> ".
const textPrefix = "tn "

// minTextSize fits the prefix and an eight-digit message number.
const minTextSize = len(textPrefix) + 9

func messageText(msg, size int) string {
	head := fmt.Sprintf("%s%08d ", textPrefix, msg)
	return head + strings.Repeat("x", max(0, size-len(head)))
}

func parseText(t string) (int, bool) {
	if !strings.HasPrefix(t, textPrefix) || len(t) < minTextSize {
		return 0, false
	}
	var msg int
	if _, err := fmt.Sscanf(t[len(textPrefix):len(textPrefix)+8], "%d", &msg); err != nil {
		return 0, false
	}
	return msg, true
}

// followBuffer is each member's Follow channel: the reader only parses
// and records, so it keeps up; each slot costs a Message (about 220
// bytes), and 4,096 of them were 0.9 MiB per member.
const followBuffer = 512

// follow records every message a member shows.
func (m *sim) follow(sn *simNode) error {
	ch, stop, err := sn.n.Follow(followBuffer)
	if err != nil {
		return err
	}
	sn.stopFollow = stop
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for msg := range ch {
			now := time.Now()
			switch msg.Kind {
			case node.KindGap:
				m.col.gapNotice()
				continue
			case node.KindEvent:
				m.epochSeen(sn, msg.Group, now)
				continue
			}
			if id, ok := parseText(msg.Text); ok && !msg.Own {
				m.col.shown(id, sn.idx, now, msg.Epoch)
				if m.s.ManagedGroups() {
					// A message of an epoch shows its keys are held, should
					// the rotation's event have been missed.
					m.col.epochShown(sn.idx, msg.Group, msg.Epoch, now)
				}
			}
		}
	}()
	return nil
}

// sender sends a member's messages one after the other, in schedule order
// (a member's sequence numbers then follow message numbers).
func (m *sim) sender(sn *simNode) {
	defer m.wg.Done()
	for job := range sn.sendq {
		g := m.grps[job.ev.Group]
		ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		_, err := sn.n.Send(ctx, g.id, messageText(job.ev.Msg, m.s.Traffic.Size))
		cancel()
		if err != nil {
			m.col.sendFailed()
			if m.ctx.Err() == nil {
				m.cfg.log.Info("send failed", "node", sn.idx, "msg", job.ev.Msg, "err", err)
			}
		}
	}
}

// finals reads what every node reports at the end: bytes and duplicates
// since the start of traffic, and the store usage of hosting nodes.
func (m *sim) finals() []nodeFinal {
	hosting := map[int]bool{}
	for _, g := range m.grps {
		for _, h := range g.hosts {
			hosting[h] = true
		}
	}
	out := make([]nodeFinal, len(m.nodes))
	for i, sn := range m.nodes {
		f := nodeFinal{
			member:    sn.member,
			bytes:     sn.c.sent.Load() + sn.c.recv.Load() - sn.startBytes,
			baseBytes: sn.c.baseSent.Load() + sn.c.baseRecv.Load() - sn.startBase,
			dups:      counterValue(sn.reg, dupCounter) - sn.startDups,
			hosting:   hosting[i],
		}
		if f.hosting {
			u := sn.n.Store().Usage()
			role := "member"
			if !sn.member {
				role = string(sn.n.Params().Role)
			}
			f.usage = HostStorage{Node: i, Role: role, Bytes: u.Bytes, Envelopes: u.Count, Mailboxes: u.Mailboxes}
		}
		out[i] = f
	}
	return out
}

// close stops everything the simulation started.
func (m *sim) close() error {
	for _, sn := range m.nodes {
		if sn != nil && sn.sendq != nil {
			close(sn.sendq)
			sn.sendq = nil
		}
	}
	for _, g := range m.grps {
		if g.opq != nil {
			close(g.opq)
			g.opq = nil
		}
	}
	m.cancel()
	var mu sync.Mutex
	var errs []error
	_ = parallel(context.Background(), len(m.nodes), setupWorkers, func(_ context.Context, i int) error {
		if sn := m.nodes[i]; sn != nil && sn.n != nil {
			if err := sn.n.Close(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %d: %w", i, err))
				mu.Unlock()
			}
		}
		return nil
	})
	if m.mn != nil {
		errs = append(errs, m.mn.Close())
	}
	m.wg.Wait()
	return errors.Join(errs...)
}
