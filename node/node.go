package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/hostsync"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// GroupHost is the pair of primitives every meshnode node offers. The local
// Node implements it, and so does the stub returned by Node.Remote, so a
// caller does not care whether a peer, a bot or a server hosts a mailbox.
type GroupHost interface {
	// RelayMessageToGroup hands env to the hosts of mailbox m. It returns
	// nil once the envelope is durably stored by the node addressed (and,
	// locally, gossiped to the mailbox's online readers).
	RelayMessageToGroup(ctx context.Context, m envelope.MailboxID, env *envelope.Envelope) error
	// FetchNewMessagesForGroup returns at most limit envelopes of m that
	// arrived after the cursor, in arrival order, and the cursor to resume
	// from.
	FetchNewMessagesForGroup(ctx context.Context, m envelope.MailboxID, after store.Cursor, limit int) (store.Page, error)
}

// Arrival is an envelope newly stored by this node.
type Arrival struct {
	Envelope *envelope.Envelope
	From     peer.ID
}

// Node assembles a libp2p host, gossipsub, the host store, relay and fetch.
//
// Lock order: Node.mu is taken alone; it is never held while calling into
// relay, store or pubsub.
type Node struct {
	params   Params
	log      *slog.Logger
	h        host.Host
	ownsHost bool
	ps       *pubsub.PubSub
	st       *store.Store
	relay    *relay.Relay
	fetchSvc *fetch.Service
	fetchCl  *fetch.Client
	sync     *hostsync.Service
	allow    allowlist
	adm      *admission.Controller
	subs     *relay.SubscriptionFilter
	metrics  *metrics
	member   *member // nil for a pure host
	// cstore is the contact records in the member database (package
	// contacts owns their namespace); nil for a pure host.
	cstore   *contacts.Store
	conn     *connState
	progress catchUpProgress // catch-ups running and last done (progress.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines of the member

	mu     sync.Mutex
	hosted map[envelope.MailboxID]struct{}
	// uncaught are group mailboxes hosted but not caught up yet
	// (hostGroupMailbox): no sync session is served for them until then.
	uncaught map[envelope.MailboxID]struct{}
	topics   topicState // topics.go
	// namedHosts are the hosts named by this member's groups, per mailbox.
	namedHosts map[envelope.MailboxID][]peer.ID
	// bootstrap are the peers of Params.Bootstrap (read-only after New).
	bootstrap map[peer.ID]bool
	listeners map[int]chan<- Arrival
	nextL     int
	closed    bool
}

var _ GroupHost = (*Node)(nil)

// New starts a node.
func New(ctx context.Context, p Params, opts ...Option) (n *Node, err error) {
	var cfg config
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	allow, err := parseAllowlist(p.Allowlist)
	if err != nil {
		return nil, err
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	n = &Node{
		params:     p,
		log:        cfg.log.With("component", "node"),
		allow:      allow,
		hosted:     make(map[envelope.MailboxID]struct{}),
		uncaught:   make(map[envelope.MailboxID]struct{}),
		topics:     newTopicState(),
		namedHosts: make(map[envelope.MailboxID][]peer.ID),
		bootstrap:  make(map[peer.ID]bool),
		listeners:  make(map[int]chan<- Arrival),
	}
	// The bootstrap set is fixed before anything that reads it starts.
	for _, b := range p.Bootstrap {
		if ai, err := peer.AddrInfoFromString(b); err == nil {
			n.bootstrap[ai.ID] = true
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	// Returns below set n to nil on error; close what was started through
	// a separate reference.
	started := n
	defer func() {
		if err != nil {
			started.Close()
		}
	}()

	var storeOpts []store.Option
	// Each package names itself (component) in its logger.
	storeOpts = append(storeOpts, store.WithLogger(cfg.log))
	if cfg.reg != nil {
		storeOpts = append(storeOpts, store.WithRegisterer(cfg.reg))
	}
	if !p.Store.InMemory && cfg.dataDir == "" {
		return nil, fmt.Errorf("%w: a data directory is required unless the store is in memory", ErrConfig)
	}
	if n.st, err = store.Open(cfg.dataDir, p.Store, storeOpts...); err != nil {
		return nil, fmt.Errorf("node: open store: %w", err)
	}
	n.metrics = newMetrics(cfg.reg)
	if n.adm, err = newAdmission(&p, &cfg); err != nil {
		return nil, err
	}
	n.adm.SetClassifier(n.classify)

	if cfg.host != nil {
		// Another's host (the simulator's mocknet): no resource manager of
		// ours, so no per-prefix limits (admission's doc).
		n.h = cfg.host
	} else {
		key, err := transportKey(&p, &cfg)
		if err != nil {
			return nil, err
		}
		if err := checkListenAddrs(p.ListenAddrs); err != nil {
			return nil, err
		}
		if n.h, err = newHost(&p, key, n.adm); err != nil {
			return nil, err
		}
		n.ownsHost = true
	}
	n.adm.SetSelf(n.h.ID())

	psOpts, err := relay.PubSubOptions(p.Relay)
	if err != nil {
		return nil, err
	}
	// Remote peers' subscriptions are tracked within the relay's limits
	// (relay.SubscriptionFilter): throwaway peers announcing topics
	// cannot grow pubsub's memory.
	if n.subs, err = relay.NewSubscriptionFilter(n.h.Network(), p.Relay, n.adm, n.topicOfInterest,
		cfg.log.With("component", "relay")); err != nil {
		return nil, err
	}
	psOpts = append(psOpts, pubsub.WithAppSpecificRpcInspector(n.inspectRPC), n.subs.Option())
	if n.ps, err = pubsub.NewGossipSub(n.ctx, n.h, psOpts...); err != nil {
		return nil, fmt.Errorf("node: gossipsub: %w", err)
	}
	if n.relay, err = relay.New(n.h, n.ps, n, relay.WithParams(p.Relay), relay.WithPolicy(n),
		relay.WithAdmission(n.adm), relay.WithLogger(cfg.log.With("component", "relay"))); err != nil {
		return nil, err
	}
	if n.fetchSvc, err = fetch.NewService(n.h, n.st, fetch.WithParams(p.Fetch), fetch.WithPolicy(n),
		fetch.WithAdmission(n.adm), fetch.WithLogger(cfg.log.With("component", "fetch"))); err != nil {
		return nil, err
	}
	if n.sync, err = hostsync.New(n.h, n.st, n.Deliver, syncPolicy{n}, hostsync.WithParams(p.Sync),
		hostsync.WithHosts(n.knownHosts), hostsync.WithAdmission(n.adm),
		hostsync.WithLogger(cfg.log.With("component", "hostsync"))); err != nil {
		return nil, err
	}
	// Hosts re-verify what they fetch before storing it; see fetch's doc.
	if n.fetchCl, err = fetch.NewClient(n.h, p.Fetch, true); err != nil {
		return nil, err
	}

	if err := n.registerAdmissionGauges(cfg.reg); err != nil {
		return nil, err
	}
	n.wg.Add(1)
	go n.runTopics()
	// Hosts that serve others resume every mailbox they hold data for, on
	// disk only: their topics are joined as they become active (topics.go),
	// so a restart costs neither a join nor a goroutine per mailbox.
	if p.HostPolicy != PolicyOwn {
		mbs, err := n.st.Mailboxes()
		if err != nil {
			return nil, fmt.Errorf("node: list stored mailboxes: %w", err)
		}
		for _, m := range mbs {
			if err := n.hostStored(m); err != nil {
				return nil, err
			}
		}
	}
	for _, m := range allow.mailboxes {
		if err := n.HostMailbox(m); err != nil {
			return nil, err
		}
	}
	if cfg.identity != nil {
		if err := n.startMember(&cfg); err != nil {
			return nil, err
		}
	}
	if err := n.startConnections(&cfg); err != nil {
		return nil, err
	}
	n.connectBootstrap(ctx)
	n.log.Info("node started", "peer", n.h.ID(), "role", p.Role, "policy", p.HostPolicy, "addrs", n.h.Addrs())
	return n, nil
}

// startMember opens the member database, loads the groups, hosts their
// mailboxes and starts the processing loop.
func (n *Node) startMember(cfg *config) error {
	inMem := n.params.Store.InMemory
	if !inMem && cfg.memberDir == "" {
		return fmt.Errorf("%w: a member database directory is required (WithMemberDB)", ErrConfig)
	}
	db, err := openMemberDB(cfg.memberDir, cfg.dataKey, inMem, n.params.MemberMemTableSize)
	if err != nil {
		return err
	}
	m := &member{
		id: cfg.identity, nick: cfg.nick, db: db, log: n.log, st: n.st, met: n.metrics,
		groups:     map[groupstate.GroupID]*groupEntry{},
		mailboxes:  map[envelope.MailboxID]mailboxRef{},
		followers:  map[int]chan<- Message{},
		catchingUp: map[groupstate.GroupID]bool{},
		kick:       make(chan struct{}, 1),
		recovered:  make(chan struct{}),
	}
	n.member = m
	n.cstore = contacts.NewStore(db.db)
	if err := m.loadGroups(); err != nil {
		return err
	}
	for mb := range m.mailboxes {
		if err := n.hostGroupMailbox(mb); err != nil {
			return err
		}
	}
	for _, e := range m.groups {
		n.setNamedHosts(m.mailboxesOf(e), e.g.Hosts)
	}
	if m.outbox, err = newOutbox(n, cfg.reg); err != nil {
		return err
	}
	n.watchHosts()
	n.wg.Add(3)
	go n.runMember()
	go n.keepHostsConnected()
	go m.outbox.run()
	return nil
}

func (n *Node) connectBootstrap(ctx context.Context) {
	for _, s := range n.params.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			n.log.Warn("ignoring bad bootstrap address", "addr", s, "err", err)
			continue
		}
		if err := n.h.Connect(ctx, *ai); err != nil {
			// Dropped: a bootstrap peer that is down is retried by callers
			// that need it (fetch, relay dial on demand).
			n.log.Warn("could not reach bootstrap peer", "peer", ai.ID, "err", err)
		}
	}
}

// Close stops everything the node started.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for id, ch := range n.listeners {
		close(ch)
		delete(n.listeners, id)
	}
	n.mu.Unlock()

	var errs []error
	if n.relay != nil {
		errs = append(errs, n.relay.Close())
	}
	if n.fetchSvc != nil {
		errs = append(errs, n.fetchSvc.Close())
	}
	if n.sync != nil {
		errs = append(errs, n.sync.Close())
	}
	n.cancel()
	n.wg.Wait()
	errs = append(errs, n.closeConnections())
	if n.member != nil {
		n.member.mu.Lock()
		for id, ch := range n.member.followers {
			close(ch)
			delete(n.member.followers, id)
		}
		n.member.mu.Unlock()
		errs = append(errs, n.member.db.Close())
	}
	if n.subs != nil {
		n.subs.Close()
	}
	if n.ownsHost && n.h != nil {
		errs = append(errs, n.h.Close())
	}
	if n.st != nil {
		errs = append(errs, n.st.Close())
	}
	return errors.Join(errs...)
}

// Host is the libp2p host.
func (n *Node) Host() host.Host { return n.h }

// ID is the transport peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Addrs returns the node's full multiaddrs (with /p2p/ID).
func (n *Node) Addrs() []ma.Multiaddr {
	ai := peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()}
	addrs, _ := peer.AddrInfoToP2pAddrs(&ai)
	return addrs
}

// Store is the node's envelope store.
func (n *Node) Store() *store.Store { return n.st }

// Relay is the node's relay.
func (n *Node) Relay() *relay.Relay { return n.relay }

// Params returns the node's parameters.
func (n *Node) Params() Params { return n.params }

// HostMailbox makes this node store and serve m and join its topic for as
// long as it hosts m (a pinned mailbox: topics.go).
func (n *Node) HostMailbox(m envelope.MailboxID) error {
	if err := n.host(m, true); err != nil {
		return err
	}
	if err := n.relay.Join(m); err != nil {
		return err
	}
	n.sync.Watch(m)
	return nil
}

// maxSyncPeers bounds the topic peers a node reconciles a mailbox with
// when its group names no hosts.
const maxSyncPeers = 4

// knownHosts are the peers to reconcile mailbox m with (called by the sync
// scheduler; it takes only Node.mu and relay's lock):
//   - the hosts named by this member's group, when it names any, and the
//     Params.MemberSyncPeers other topic peers (members) closest to this
//     node by XOR distance of their IDs' hashes: members push to the hosts
//     directly, and reconciling with every other member would multiply
//     traffic by the group size, but a few member partners spread what a
//     host dropped or never had (equivocation evidence, a host that comes
//     back empty), within the byte budget of Params.Sync;
//   - otherwise the bootstrap peers on the topic (explicit federation of
//     community hosts) and the maxSyncPeers topic peers closest to this
//     node — a stable sparse overlay in which every node has a few sync
//     partners.
func (n *Node) knownHosts(m envelope.MailboxID) []peer.ID {
	n.mu.Lock()
	named := slices.Clone(n.namedHosts[m])
	n.mu.Unlock()
	if len(named) > 0 {
		named = slices.DeleteFunc(named, func(p peer.ID) bool { return p == n.h.ID() })
		others := slices.DeleteFunc(n.relay.TopicPeers(m), func(p peer.ID) bool { return slices.Contains(named, p) })
		return append(named, n.closest(others, n.params.MemberSyncPeers)...)
	}
	peers := n.relay.TopicPeers(m)
	var out []peer.ID
	rest := peers[:0:0]
	for _, p := range peers {
		if n.bootstrap[p] {
			out = append(out, p)
		} else {
			rest = append(rest, p)
		}
	}
	return append(out, n.closest(rest, maxSyncPeers)...)
}

// closest returns the k peers of ps closest to this node by XOR distance
// of their IDs' hashes (ps is reordered).
func (n *Node) closest(ps []peer.ID, k int) []peer.ID {
	self := sha256.Sum256([]byte(n.h.ID()))
	dist := func(p peer.ID) [32]byte {
		h := sha256.Sum256([]byte(p))
		for i := range h {
			h[i] ^= self[i]
		}
		return h
	}
	slices.SortFunc(ps, func(a, b peer.ID) int {
		da, db := dist(a), dist(b)
		return bytes.Compare(da[:], db[:])
	})
	return ps[:min(len(ps), k)]
}

// setNamedHosts records the hosts a group names for its mailboxes.
func (n *Node) setNamedHosts(mbs []envelope.MailboxID, hosts []string) {
	ais, _ := parseHosts(hosts)
	ids := make([]peer.ID, 0, len(ais))
	for _, ai := range ais {
		ids = append(ids, ai.ID)
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range mbs {
		n.namedHosts[m] = ids
	}
}

// DropMailbox stops serving m (its stored envelopes stay until retention).
func (n *Node) DropMailbox(m envelope.MailboxID) error {
	n.mu.Lock()
	delete(n.hosted, m)
	delete(n.uncaught, m)
	delete(n.topics.pinned, m)
	delete(n.topics.byHash, relay.TopicHash(m))
	n.mu.Unlock()
	n.sync.Unwatch(m)
	return n.relay.Leave(m)
}

// Hosts reports whether this node hosts m.
func (n *Node) Hosts(m envelope.MailboxID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.hosted[m]
	return ok
}

// HostedCount is the number of mailboxes this node hosts.
func (n *Node) HostedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.hosted)
}

// HostedMailboxes lists the mailboxes this node hosts.
func (n *Node) HostedMailboxes() []envelope.MailboxID {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]envelope.MailboxID, 0, len(n.hosted))
	for m := range n.hosted {
		out = append(out, m)
	}
	return out
}

// Serves implements the relay and fetch hosting policy. A request for a
// hosted mailbox is activity on it (topics.go).
func (n *Node) Serves(m envelope.MailboxID, from peer.ID) bool {
	if n.Hosts(m) {
		n.touch(m)
		return true
	}
	switch n.params.HostPolicy {
	case PolicyOpen:
		return true
	case PolicyAllowlist:
		return n.allow.has(from, m)
	}
	return false
}

// syncPolicy is the node's policy for sync sessions others start: as
// Serves, except for a member's mailbox before its first catch-up — a
// session a host starts then would deliver what the catch-up is fetching
// (each envelope twice). The host retries after its backoff; by then
// this node syncs the mailbox itself (caughtUp).
type syncPolicy struct{ n *Node }

func (p syncPolicy) Serves(m envelope.MailboxID, from peer.ID) bool {
	p.n.mu.Lock()
	_, uncaught := p.n.uncaught[m]
	p.n.mu.Unlock()
	return !uncaught && p.n.Serves(m, from)
}

// Subscribe returns a channel of envelopes newly stored by this node and a
// function to stop. A slow listener misses arrivals (they remain fetchable
// from the store); the channel is buffered.
func (n *Node) Subscribe(buffer int) (<-chan Arrival, func()) {
	ch := make(chan Arrival, buffer)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		close(ch)
		return ch, func() {}
	}
	id := n.nextL
	n.nextL++
	n.listeners[id] = ch
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if c, ok := n.listeners[id]; ok {
			close(c)
			delete(n.listeners, id)
		}
	}
}

func (n *Node) notify(a Arrival) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.listeners {
		select {
		case ch <- a:
		default:
			n.metrics.listenerDrops.Inc()
		}
	}
}

// RelayMessageToGroup (local): verifies env, stores it if this node hosts m
// and gossips it on m's topic if joined.
func (n *Node) RelayMessageToGroup(ctx context.Context, m envelope.MailboxID, env *envelope.Envelope) error {
	if env.Mailbox() != m {
		return fmt.Errorf("%w: envelope is for %s, not %s", envelope.ErrWrongMailbox, env.Mailbox().Short(), m.Short())
	}
	if env.Size() > n.params.Relay.MaxEnvelopeSize {
		return fmt.Errorf("%w: %d bytes, limit %d", envelope.ErrTooLarge, env.Size(), n.params.Relay.MaxEnvelopeSize)
	}
	if err := env.Verify(); err != nil {
		return err
	}
	hosted := n.Hosts(m)
	if !hosted && !n.relay.Joined(m) {
		return fmt.Errorf("%w: %s", ErrNotHosted, m.Short())
	}
	if hosted {
		if _, err := n.Deliver(ctx, env, n.h.ID()); err != nil {
			return err
		}
	}
	if n.relay.Joined(m) {
		if err := n.relay.Publish(ctx, env); err != nil {
			return fmt.Errorf("node: gossip: %w", err)
		}
	}
	return nil
}

// FetchNewMessagesForGroup (local) pages through this node's store.
func (n *Node) FetchNewMessagesForGroup(_ context.Context, m envelope.MailboxID, after store.Cursor, limit int) (store.Page, error) {
	if limit <= 0 || limit > n.params.Fetch.MaxPageCount {
		limit = n.params.Fetch.MaxPageCount
	}
	return n.st.Page(m, after, limit, n.params.Fetch.MaxPageBytes)
}

// Remote returns the GroupHost stub for the node p.
func (n *Node) Remote(p peer.ID) GroupHost { return remote{n: n, p: p} }

type remote struct {
	n *Node
	p peer.ID
}

func (r remote) RelayMessageToGroup(ctx context.Context, m envelope.MailboxID, env *envelope.Envelope) error {
	return relay.Send(ctx, r.n.h, r.p, m, env, r.n.params.Relay.StreamTimeout)
}

func (r remote) FetchNewMessagesForGroup(ctx context.Context, m envelope.MailboxID, after store.Cursor, limit int) (store.Page, error) {
	if limit <= 0 || limit > r.n.params.Fetch.MaxPageCount {
		limit = r.n.params.Fetch.MaxPageCount
	}
	return r.n.fetchCl.Fetch(ctx, r.p, m, after, limit)
}
