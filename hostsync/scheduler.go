package hostsync

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
)

// maxJoinedPerMailbox bounds the peers remembered from PeerJoined.
const maxJoinedPerMailbox = 256

// scheduler decides when to sync which watched mailbox with which peer.
// Its loop goroutine owns watched, pairs and running; the public methods
// post functions to it. mu guards only watchSet, which the stream handler
// reads.
type scheduler struct {
	s       *Service
	hostsOf func(envelope.MailboxID) []peer.ID
	cmds    chan func()
	results chan result
	sub     event.Subscription

	mu       sync.Mutex
	watchSet map[envelope.MailboxID]struct{}

	// Owned by the loop.
	watched map[envelope.MailboxID]*watch
	pairs   map[pairKey]*pairState
	running int
}

// watch is the schedule of one watched mailbox.
type watch struct {
	next   time.Time            // next periodic sync with every known host
	seen   map[peer.ID]struct{} // hostsOf at the last poll
	joined map[peer.ID]struct{} // peers passed to PeerJoined
}

// pairState is the schedule of one (peer, mailbox).
type pairState struct {
	pending   bool // a sync is wanted
	running   bool
	failures  int
	notBefore time.Time // backoff
}

type result struct {
	k   pairKey
	st  *Stats
	err error
}

func newScheduler(s *Service, hostsOf func(envelope.MailboxID) []peer.ID) (*scheduler, error) {
	sub, err := s.h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, fmt.Errorf("hostsync: subscribing to connection events: %w", err)
	}
	sc := &scheduler{
		s: s, hostsOf: hostsOf, sub: sub,
		cmds:     make(chan func(), 64),
		results:  make(chan result),
		watchSet: make(map[envelope.MailboxID]struct{}),
		watched:  make(map[envelope.MailboxID]*watch),
		pairs:    make(map[pairKey]*pairState),
	}
	s.wg.Add(1)
	go sc.loop()
	return sc, nil
}

func (sc *scheduler) close() { _ = sc.sub.Close() }

// post runs fn on the loop; it is dropped once the service is closed.
func (sc *scheduler) post(fn func()) {
	select {
	case sc.cmds <- fn:
	case <-sc.s.ctx.Done():
	}
}

func (sc *scheduler) watching(m envelope.MailboxID) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	_, ok := sc.watchSet[m]
	return ok
}

// Watch marks m as a mailbox this node hosts: the service syncs it with
// its known hosts now, whenever a new host appears (WithHosts, PeerJoined,
// a connection to a known host), every Params.Interval (jittered), and on
// Trigger. Watching twice is a no-op.
func (s *Service) Watch(m envelope.MailboxID) {
	sc := s.sched
	sc.mu.Lock()
	_, already := sc.watchSet[m]
	sc.watchSet[m] = struct{}{}
	sc.mu.Unlock()
	if already {
		return
	}
	sc.post(func() {
		if _, ok := sc.watched[m]; ok {
			return
		}
		w := &watch{next: time.Now().Add(sc.jitter(s.p.Interval)), seen: map[peer.ID]struct{}{}, joined: map[peer.ID]struct{}{}}
		sc.watched[m] = w
		sc.poll(m, w, true)
		sc.dispatch()
	})
}

// Unwatch stops scheduling m. Sessions in progress finish; with a nil
// Policy, incoming sessions for m are refused from now on.
func (s *Service) Unwatch(m envelope.MailboxID) {
	sc := s.sched
	sc.mu.Lock()
	delete(sc.watchSet, m)
	sc.mu.Unlock()
	sc.post(func() {
		delete(sc.watched, m)
		for k, ps := range sc.pairs {
			if k.m == m {
				ps.pending = false
				sc.tidy(k, ps)
			}
		}
	})
}

// Trigger syncs the watched mailbox m with all its known hosts as soon as
// their backoff allows (the member layer calls it when it detects a gap).
// Sessions already running are not repeated. Unwatched mailboxes are
// ignored.
func (s *Service) Trigger(m envelope.MailboxID) {
	sc := s.sched
	sc.post(func() {
		if w, ok := sc.watched[m]; ok {
			sc.poll(m, w, true)
			sc.dispatch()
		}
	})
}

// PeerJoined reports that p hosts the watched mailbox m (for example, p
// joined m's gossip topic). p is synced with now and kept as a known host
// of m until Unwatch.
func (s *Service) PeerJoined(m envelope.MailboxID, p peer.ID) {
	sc := s.sched
	sc.post(func() {
		w, ok := sc.watched[m]
		if !ok || p == s.h.ID() {
			return
		}
		if _, known := w.joined[p]; !known && len(w.joined) < maxJoinedPerMailbox {
			w.joined[p] = struct{}{}
		}
		sc.request(pairKey{p: p, m: m})
		sc.dispatch()
	})
}

func (sc *scheduler) loop() {
	defer sc.s.wg.Done()
	tick := time.NewTicker(sc.s.p.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-sc.s.ctx.Done():
			return
		case fn := <-sc.cmds:
			fn()
		case r := <-sc.results:
			sc.finished(r)
		case ev, ok := <-sc.sub.Out():
			if !ok {
				return
			}
			if e, ok := ev.(event.EvtPeerConnectednessChanged); ok {
				sc.connectedness(e)
			}
		case <-tick.C:
			now := time.Now()
			for m, w := range sc.watched {
				sc.poll(m, w, !now.Before(w.next))
			}
			for k, ps := range sc.pairs {
				sc.tidy(k, ps)
			}
			sc.dispatch()
		}
	}
}

// known returns the known hosts of m: hostsOf and the joined peers.
func (sc *scheduler) known(m envelope.MailboxID, w *watch) (fromHosts, all []peer.ID) {
	if sc.hostsOf != nil {
		fromHosts = sc.hostsOf(m)
	}
	all = append([]peer.ID(nil), fromHosts...)
	for p := range w.joined {
		all = append(all, p)
	}
	return fromHosts, all
}

// poll requests a sync with every host of m that is new since the last
// poll, or with every host when all is set (the periodic sync, Watch,
// Trigger).
func (sc *scheduler) poll(m envelope.MailboxID, w *watch, all bool) {
	fromHosts, everyone := sc.known(m, w)
	self := sc.s.h.ID()
	seen := make(map[peer.ID]struct{}, len(fromHosts))
	for _, p := range fromHosts {
		seen[p] = struct{}{}
		if _, before := w.seen[p]; !before && p != self {
			sc.request(pairKey{p: p, m: m})
		}
	}
	w.seen = seen
	if all {
		for _, p := range everyone {
			if p != self {
				sc.request(pairKey{p: p, m: m})
			}
		}
		w.next = time.Now().Add(sc.jitter(sc.s.p.Interval))
	}
}

// connectedness syncs with a peer that connects, for the watched
// mailboxes it is known to host; a peer that disconnects will count as
// new when it reappears in hostsOf.
func (sc *scheduler) connectedness(e event.EvtPeerConnectednessChanged) {
	for m, w := range sc.watched {
		if e.Connectedness != network.Connected {
			delete(w.seen, e.Peer)
			continue
		}
		_, everyone := sc.known(m, w)
		for _, p := range everyone {
			if p == e.Peer {
				sc.request(pairKey{p: p, m: m})
				break
			}
		}
	}
	sc.dispatch()
}

func (sc *scheduler) request(k pairKey) {
	ps, ok := sc.pairs[k]
	if !ok {
		ps = &pairState{}
		sc.pairs[k] = ps
	}
	ps.pending = true
}

// dispatch starts pending sessions whose backoff has passed, up to
// MaxOutgoing at a time.
func (sc *scheduler) dispatch() {
	now := time.Now()
	for k, ps := range sc.pairs {
		if sc.running >= sc.s.p.MaxOutgoing {
			return
		}
		if !ps.pending || ps.running || now.Before(ps.notBefore) {
			continue
		}
		if _, ok := sc.watched[k.m]; !ok || sc.s.Banned(k.p) {
			ps.pending = false
			sc.tidy(k, ps)
			continue
		}
		ps.pending, ps.running = false, true
		sc.running++
		sc.s.wg.Add(1)
		go sc.run(k)
	}
}

func (sc *scheduler) run(k pairKey) {
	defer sc.s.wg.Done()
	st, err := sc.s.SyncWith(sc.s.ctx, k.p, k.m)
	select {
	case sc.results <- result{k: k, st: st, err: err}:
	case <-sc.s.ctx.Done():
	}
}

// finished records the outcome of a session: backoff after a failure, a
// follow-up session after a truncated one.
func (sc *scheduler) finished(r result) {
	sc.running--
	ps, ok := sc.pairs[r.k]
	if !ok {
		return
	}
	ps.running = false
	switch {
	case r.err == nil:
		ps.failures, ps.notBefore = 0, time.Time{}
		if r.st.Truncated {
			ps.pending = true
		}
		if r.st.Throttled {
			// Out of byte budget with this peer: the next session waits
			// for it to refill.
			ps.notBefore = time.Now().Add(sc.jitter(sc.s.p.BackoffMin))
		}
	case errors.Is(r.err, ErrBusy), errors.Is(r.err, ErrClosed), errors.Is(r.err, context.Canceled):
		// Busy: a session of the peer for this mailbox runs and syncs both
		// ways. Closed: nothing more to do.
	case errors.Is(r.err, status.ErrRateLimited), errors.Is(r.err, status.ErrBusy):
		// The peer is busy, most often with its own session with us for
		// this mailbox (both sides started at once), which syncs both
		// ways, or has no capacity for another session now (its sync
		// gate, under load). Not a failure; a request before BackoffMin
		// waits.
		ps.notBefore = time.Now().Add(sc.jitter(sc.s.p.BackoffMin))
	default:
		ps.failures++
		back := sc.s.p.BackoffMin << min(ps.failures-1, 20)
		if back > sc.s.p.BackoffMax || back <= 0 {
			back = sc.s.p.BackoffMax
		}
		ps.notBefore = time.Now().Add(sc.jitter(back))
		sc.s.log.Debug("sync failed; backing off", "peer", r.k.p, "mailbox", r.k.m.Short(),
			"failures", ps.failures, "for", back, "err", r.err)
	}
	sc.tidy(r.k, ps)
	sc.dispatch()
}

// tidy forgets a pair with nothing pending or running once its backoff
// no longer matters: at once for an unwatched mailbox, when the backoff
// has passed for a pair without failures, BackoffMax later otherwise (a
// pair that keeps failing is remembered while it is requested).
func (sc *scheduler) tidy(k pairKey, ps *pairState) {
	if ps.pending || ps.running {
		return
	}
	now := time.Now()
	if sc.watched[k.m] == nil || (ps.failures == 0 && !now.Before(ps.notBefore)) ||
		now.After(ps.notBefore.Add(sc.s.p.BackoffMax)) {
		delete(sc.pairs, k)
	}
}

// jitter spreads d by ±Jitter so hosts that start together do not sync
// in lockstep.
func (sc *scheduler) jitter(d time.Duration) time.Duration {
	j := sc.s.p.Jitter
	return time.Duration(float64(d) * (1 - j + 2*j*rand.Float64()))
}
