package hostsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/ratelimit"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/store"
)

// ProtocolID is the sync protocol.
const ProtocolID = "/meshnode/sync/2.0.0"

// ServiceName is the resource-manager service of the sync protocol.
const ServiceName = "meshnode.sync"

// Policy decides whether this node syncs a mailbox with a remote peer (the
// node's hosting policy, as for relay and fetch).
type Policy interface {
	Serves(m envelope.MailboxID, from peer.ID) bool
}

// Service runs the sync protocol: it answers incoming sessions, starts
// sessions on demand (SyncWith, Trigger) and on its schedule (Watch).
//
// Lock order: Service.mu is taken alone, never while calling the store,
// the host or the scheduler.
type Service struct {
	h       host.Host
	st      *store.Store
	deliver DeliverFunc
	policy  Policy
	p       Params
	log     *slog.Logger
	served  func(peer.ID, envelope.MailboxID, *Stats, error)
	adm     *admission.Controller       // nil: MaxIncoming and MaxIncomingPerPeer only
	limiter *ratelimit.Limiter[peer.ID] // incoming sessions per peer
	strikes *ratelimit.Limiter[peer.ID] // protocol violations per peer
	budget  *ratelimit.Limiter[peer.ID] // envelope bytes moved per peer
	slots   chan struct{}               // outgoing sessions in progress
	sched   *scheduler

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // sessions, handlers and the scheduler

	mu       sync.Mutex
	closed   bool
	active   map[pairKey]direction
	incoming int
	perPeer  map[peer.ID]int
	banned   map[peer.ID]time.Time
}

// pairKey names the sessions of one peer for one mailbox.
type pairKey struct {
	p peer.ID
	m envelope.MailboxID
}

// direction is a bit set of the sessions running for a pair.
type direction uint8

const (
	outgoing direction = 1 << iota
	incoming
)

// New registers the sync protocol on h. deliver stores what peers send
// (after this package verified it); policy decides which mailboxes are
// synced with whom (nil: only the watched ones, with anyone).
func New(h host.Host, st *store.Store, deliver func(context.Context, *envelope.Envelope, peer.ID) (bool, error), policy Policy, opts ...Option) (*Service, error) {
	if h == nil || st == nil || deliver == nil {
		return nil, fmt.Errorf("%w: host, store and deliver function are required", ErrInvalidParams)
	}
	cfg := config{params: DefaultParams()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.Default().With("component", "hostsync")
	}
	p := cfg.params
	s := &Service{
		h: h, st: st, deliver: deliver, policy: policy, p: p, log: cfg.log, served: cfg.served, adm: cfg.adm,
		limiter: ratelimit.New[peer.ID](p.SessionRate, p.SessionBurst, p.MaxTrackedPeers),
		strikes: ratelimit.New[peer.ID](float64(p.StrikesBeforeBan-1)/p.StrikeWindow.Seconds(), p.StrikesBeforeBan-1, p.MaxTrackedPeers),
		budget:  ratelimit.New[peer.ID](p.PeerRate, p.PeerBurst, p.MaxTrackedPeers),
		slots:   make(chan struct{}, p.MaxOutgoing),
		active:  make(map[pairKey]direction),
		perPeer: make(map[peer.ID]int),
		banned:  make(map[peer.ID]time.Time),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	sched, err := newScheduler(s, cfg.hostsOf)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.sched = sched
	h.SetStreamHandler(ProtocolID, s.handle)
	return s, nil
}

// Close stops the scheduler, resets the streams of sessions in progress
// and waits for them. It is idempotent.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.h.RemoveStreamHandler(ProtocolID)
	s.cancel()
	s.sched.close()
	s.wg.Wait()
	return nil
}

// enter registers a goroutine Close must wait for.
func (s *Service) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.wg.Add(1)
	return nil
}

// Banned reports whether p is refused for protocol violations.
func (s *Service) Banned(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bannedLocked(p, time.Now())
}

func (s *Service) bannedLocked(p peer.ID, now time.Time) bool {
	until, ok := s.banned[p]
	if ok && !now.Before(until) {
		delete(s.banned, p)
		return false
	}
	return ok
}

// strike counts a protocol violation of p and bans p after
// StrikesBeforeBan of them within StrikeWindow.
func (s *Service) strike(p peer.ID, reason error) {
	s.log.Debug("sync protocol violation", "peer", p, "err", reason)
	if s.p.StrikesBeforeBan > 1 && s.strikes.Allow(p, 1) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.banned) >= s.p.MaxTrackedPeers {
		for q, until := range s.banned {
			if !now.Before(until) || len(s.banned) >= s.p.MaxTrackedPeers {
				delete(s.banned, q)
			}
		}
	}
	s.banned[p] = now.Add(s.p.BanFor)
	s.log.Warn("refusing sync peer for protocol violations", "peer", p, "for", s.p.BanFor, "last", reason)
}

// claim marks a session of dir for (p, m) as running. It refuses a second
// session in the same direction, and an outgoing one while the peer's
// session is running (it syncs both ways). For an incoming session while
// our outgoing one runs (both sides started at once), the session of the
// lower peer ID wins.
func (s *Service) claim(k pairKey, dir direction) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.active[k]
	switch {
	case cur&dir != 0:
		return false
	case dir == outgoing && cur&incoming != 0:
		return false
	case dir == incoming && cur&outgoing != 0 && s.h.ID() < k.p:
		return false
	}
	s.active[k] = cur | dir
	return true
}

func (s *Service) release(k pairKey, dir direction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.active[k] &^ dir; cur != 0 {
		s.active[k] = cur
	} else {
		delete(s.active, k)
	}
}

// sessionMemory is what one session reserves with the resource manager:
// the largest frames it reads and writes, and its write buffer's worth of
// pushed envelopes.
func (s *Service) sessionMemory() int {
	return 2*(1+s.p.Reconcile.MaxMessageSize) + 2*s.p.MaxEnvelopeSize
}

// SyncWith runs one session with p for mailbox m, as the initiator, and
// returns what it cost and moved. When it returns without error, p has
// stored what this node pushed and this node what it received. On error
// the Stats describe the part that ran (nil if nothing did). Errors:
// ErrBusy (a session for p and m runs already), ErrBanned, ErrClosed, a
// remote refusal (*status.Error: status.ErrNotServed,
// status.ErrRateLimited, ...), ErrProtocol (p misbehaved; p got a
// strike), or the transport's error.
func (s *Service) SyncWith(ctx context.Context, p peer.ID, m envelope.MailboxID) (*Stats, error) {
	if p == s.h.ID() {
		return nil, fmt.Errorf("%w: cannot sync with ourselves", ErrInvalidParams)
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	if s.Banned(p) {
		return nil, fmt.Errorf("%w: %s", ErrBanned, p)
	}
	k := pairKey{p: p, m: m}
	if !s.claim(k, outgoing) {
		return nil, fmt.Errorf("%w: a session with %s for %s is running", ErrBusy, p, m.Short())
	}
	defer s.release(k, outgoing)
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
	defer func() { <-s.slots }()

	start := time.Now()
	deadline := start.Add(s.p.SessionTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	stopOnClose := context.AfterFunc(s.ctx, cancel)
	defer stopOnClose()

	str, err := s.h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("hostsync: open stream to %s: %w", p, err)
	}
	_ = str.SetDeadline(deadline)
	// Reset unblocks reads and writes at once when ctx ends or the service
	// closes; after a clean end, Close has run first and Reset is a no-op.
	clean := false
	stopReset := context.AfterFunc(ctx, func() { _ = str.Reset() })
	defer func() {
		stopReset()
		if clean {
			_ = str.Close()
		} else {
			_ = str.Reset()
		}
	}()
	if err := str.Scope().SetService(ServiceName); err != nil {
		return nil, fmt.Errorf("hostsync: resource manager: %w", err)
	}
	mem := s.sessionMemory()
	if err := str.Scope().ReserveMemory(mem, network.ReservationPriorityMedium); err != nil {
		return nil, fmt.Errorf("%w: resource manager refused %d bytes: %v", ErrBusy, mem, err)
	}
	defer str.Scope().ReleaseMemory(mem)

	sess := &session{
		ctx: ctx, c: newConn(str, deadline, s.p.IdleTimeout), st: s.st, deliver: s.deliver,
		p: s.p, m: m, peer: p, start: start, budget: s.budget,
	}
	err = sess.initiate()
	st := sess.stats
	st.BytesSent, st.BytesReceived = sess.c.sent, sess.c.recv
	st.Elapsed = time.Since(start)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ErrProtocol) {
			err = fmt.Errorf("hostsync: session with %s: %w (%w)", p, ctx.Err(), err)
		}
		if isViolation(err) {
			s.strike(p, err)
		}
		return &st, err
	}
	clean = true
	return &st, nil
}

// handle serves one incoming session. With admission, the stream is
// pending in the sync gate from accept until its hello has arrived
// (within HelloTimeout; it may be reset sooner to make room for a newer
// stream), then active, privileged or general, or refused Busy.
func (s *Service) handle(str network.Stream) {
	t := s.adm.Sync().Open(str)
	defer t.Close()
	deadline := time.Now().Add(s.p.SessionTimeout)
	_ = str.SetDeadline(deadline)
	if err := str.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("resource manager refused sync stream", "err", err)
		_ = str.Reset()
		return
	}
	if err := s.enter(); err != nil {
		_ = str.Reset()
		return
	}
	defer s.wg.Done()
	stopReset := context.AfterFunc(s.ctx, func() { _ = str.Reset() })
	defer stopReset()
	from := str.Conn().RemotePeer()
	c := newConn(str, deadline, s.p.IdleTimeout)

	start := time.Now()
	// The hello is due within HelloTimeout; every later frame within
	// IdleTimeout.
	c.idle = min(s.p.HelloTimeout, s.p.IdleTimeout)
	h, code, msg, err := s.readHello(c, from)
	c.idle = s.p.IdleTimeout
	if err != nil && code == status.OK {
		// Refusals (another version, larger limits) are answered below
		// and are no strike; a hello that is not one is.
		if isViolation(err) {
			s.strike(from, err)
		}
		if errors.Is(err, ErrTimeout) {
			s.adm.Refuse(admission.ReasonIdleTimeout)
		}
		s.log.Debug("bad sync hello", "peer", from, "err", err)
		_ = str.Reset()
		return
	}
	var release func()
	if code == status.OK {
		code, msg, release = s.admit(str, t, from, h)
	}
	if code == evicted {
		_ = str.Reset()
		return
	}
	if code != status.OK {
		s.log.Debug("sync session refused", "peer", from, "code", code, "msg", msg)
		if c.write((&statusFrame{code: code, msg: msg}).marshal()) != nil || c.flush() != nil {
			_ = str.Reset()
			return
		}
		_ = str.Close()
		return
	}
	defer release()

	view, err := s.st.SyncView(h.mailbox)
	if err != nil {
		s.log.Warn("cannot serve sync session", "peer", from, "mailbox", h.mailbox.Short(), "err", err)
		code, msg := status.FromError(err)
		_ = wire.WriteOne(str, (&statusFrame{code: code, msg: msg}).marshal())
		_ = str.Close()
		return
	}
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	sess := &session{ctx: ctx, c: c, st: s.st, deliver: s.deliver, p: s.p, m: h.mailbox, peer: from, beforeAck: release, start: start, budget: s.budget}
	err = c.write((&statusFrame{code: status.OK}).marshal())
	if err == nil {
		err = sess.respond(view, h)
	} else {
		view.Close()
	}
	st := sess.stats
	st.BytesSent, st.BytesReceived = c.sent, c.recv
	st.Elapsed = time.Since(start)
	if err != nil {
		if isViolation(err) {
			s.strike(from, err)
		}
		s.log.Debug("sync session failed", "peer", from, "mailbox", h.mailbox.Short(), "err", err)
		_ = str.Reset()
	} else {
		_ = str.Close()
	}
	if s.served != nil {
		s.served(from, h.mailbox, &st, err)
	}
}

// evicted is admit's answer for a stream the sync gate reset while it
// was pending: nothing is sent back.
const evicted = status.Code(0xff)

// readHello reads and checks the hello. A non-OK code is a refusal to send
// back; an error with code OK means the stream is to be reset.
func (s *Service) readHello(c *conn, from peer.ID) (*hello, status.Code, string, error) {
	t, b, err := c.read(helloSize)
	if err != nil {
		return nil, status.OK, "", err
	}
	if t != frameHello {
		return nil, status.OK, "", violation("%v frame where the hello was due", t)
	}
	h, err := parseHello(b)
	if errors.Is(err, envelope.ErrVersion) {
		return nil, status.Version, err.Error(), err
	}
	if err != nil {
		return nil, status.OK, "", err
	}
	mine, theirs := s.p.Reconcile, s.p.Reconcile
	theirs.MaxMessageSize, theirs.MaxRounds = h.maxMessage, h.maxRounds
	if _, err := reconcile.NewResponder(reconcile.NewMemSet(), theirs); err != nil {
		return nil, status.OK, "", violation("hello limits: %v", err)
	}
	if theirs.MaxMessageSize > mine.MaxMessageSize || theirs.MaxRounds > mine.MaxRounds {
		msg := fmt.Sprintf("reconcile limits over this host's (%d bytes, %d rounds)", mine.MaxMessageSize, mine.MaxRounds)
		return nil, status.TooLarge, msg, fmt.Errorf("hostsync: %s", msg)
	}
	return h, status.OK, "", nil
}

// admit applies the ban list, rate limit, hosting policy and concurrency
// limits to an incoming session and reserves its memory. The
// concurrency limits are the sync gate's (t) with admission, and
// MaxIncoming and MaxIncomingPerPeer without. On OK the caller must call
// release when the session ends; evicted means the stream was reset
// while pending.
func (s *Service) admit(str network.Stream, t *admission.Ticket, from peer.ID, h *hello) (status.Code, string, func()) {
	if s.Banned(from) {
		return status.RateLimited, "refused for protocol violations; retry later", nil
	}
	if !s.limiter.Allow(from, 1) {
		s.adm.Refuse(admission.ReasonRatePeer)
		return status.RateLimited, "too many sync sessions; slow down", nil
	}
	if !s.serves(h.mailbox, from) {
		return status.NotServed, "this host does not sync that mailbox", nil
	}
	priority := uint8(network.ReservationPriorityMedium)
	gated := s.adm.Sync() != nil
	if gated {
		if err := t.Activate(h.mailbox); err != nil {
			if errors.Is(err, admission.ErrEvicted) {
				return evicted, "", nil
			}
			code, msg := status.FromError(err)
			return code, msg, nil
		}
		if !t.Privileged() {
			// The capacity left is for established mailboxes.
			priority = network.ReservationPriorityLow
		}
	}
	k := pairKey{p: from, m: h.mailbox}
	s.mu.Lock()
	full := !gated && (s.incoming >= s.p.MaxIncoming || s.perPeer[from] >= s.p.MaxIncomingPerPeer)
	if !full {
		s.incoming++
		s.perPeer[from]++
	}
	s.mu.Unlock()
	if full {
		return status.Busy, "too many sync sessions in progress; retry shortly", nil
	}
	unCount := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.incoming--
		if s.perPeer[from]--; s.perPeer[from] <= 0 {
			delete(s.perPeer, from)
		}
	}
	if !s.claim(k, incoming) {
		unCount()
		return status.Busy, "a sync session for this mailbox is running; retry shortly", nil
	}
	mem := s.sessionMemory()
	if err := str.Scope().ReserveMemory(mem, priority); err != nil {
		s.release(k, incoming)
		unCount()
		s.adm.Refuse(admission.ReasonMemoryBusy)
		return status.Busy, "no memory for another sync session now; retry shortly", nil
	}
	var once sync.Once
	return status.OK, "", func() {
		once.Do(func() {
			str.Scope().ReleaseMemory(mem)
			s.release(k, incoming)
			unCount()
		})
	}
}

// serves applies the policy, or with none, the watch list.
func (s *Service) serves(m envelope.MailboxID, from peer.ID) bool {
	if s.policy != nil {
		return s.policy.Serves(m, from)
	}
	return s.sched.watching(m)
}
