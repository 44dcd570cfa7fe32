package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/store"
)

// The outbox: nothing a member sends is left behind.
//
// Every own envelope (messages, directs, profiles, state events, key
// updates, welcomes, requests) is recorded as pending in the member
// database in the same transaction that records it as sent (queueOwnTxn),
// with its encoding. One goroutine, the outbox loop, owns the queue in
// memory and is the only one that relays from it:
//
//	send ─► record message + pending record (one transaction)
//	     ─► own store ─► outbox loop: attempt now ─► reply to the send
//	                                  │
//	       relay to the group's hosts (a group without hosts: up to
//	       maxTopicTargets members met on its topic), each in its own
//	       goroutine, at most Params.Outbox.InFlight at once and
//	       PerHost per host; results come back to the loop
//	                                  │
//	       stored by one or more ─► record "stored by N" (the envelope
//	       is dropped from the record); otherwise retried with backoff
//	       (MinBackoff doubling to MaxBackoff, with jitter), until
//	       stored, or until refused as invalid by every host, or
//	       MaxAge ─► "failed" with the reason
//
// A host that fails (unreachable, rate limited, busy, out of space) backs
// off as a whole, so a host that is down costs one attempt per backoff
// period, not one per queued envelope; refusals that no retry can change
// (malformed, bad signature, wrong mailbox, too large, unsupported
// version) fail the envelope for that host. Before each attempt the
// node clears libp2p's own dial backoff for the host (the outbox's
// schedule decides when to try, and libp2p's would make the first
// attempts after a host's restart fail at once), and when a group's host
// connects, everything waiting for it is tried at once. Records are
// written in batches (one member-database transaction for whatever the
// loop settled since the last), and rewritten at most once per attempt.
//
// The state is visible: SendResult.State, Message.Delivery (and
// StoredByCount, DeliveryError) for own messages, Node.Outbox, and the
// meshnode_outbox_* metrics. No lock is held across a relay: sends hand
// the loop their envelope and wait for the first attempt's outcome.

// OutboxParams tune the outbox.
type OutboxParams struct {
	// MinBackoff and MaxBackoff bound the wait between two attempts of an
	// envelope (doubling from the first to the second), and the time a
	// failing host is left alone.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge: an envelope no host stored within it is given up as failed.
	MaxAge time.Duration
	// InFlight bounds the relays in progress; PerHost those to one host.
	InFlight, PerHost int
}

// DefaultOutboxParams: retry after 1 s, 2 s, 4 s, 8 s, then every 10 s, for a
// week (a host that is down costs each member one dial per 10 s).
func DefaultOutboxParams() OutboxParams {
	return OutboxParams{MinBackoff: time.Second, MaxBackoff: 10 * time.Second, MaxAge: 7 * 24 * time.Hour, InFlight: 64, PerHost: 16}
}

func (p OutboxParams) validate() error {
	if p.MinBackoff <= 0 || p.MaxBackoff < p.MinBackoff || p.MaxAge <= 0 || p.InFlight < 1 || p.PerHost < 1 {
		return fmt.Errorf("Outbox: backoffs %v/%v, MaxAge %v, InFlight %d and PerHost %d must be positive (MaxBackoff ≥ MinBackoff)",
			p.MinBackoff, p.MaxBackoff, p.MaxAge, p.InFlight, p.PerHost)
	}
	return nil
}

// maxTopicTargets bounds the members an envelope of a group without hosts
// is relayed to directly (the first to store it is enough; gossip carries
// it to the others).
const maxTopicTargets = 2

// OutboxEntry is an own envelope no host has stored yet, or one the node
// gave up on.
type OutboxEntry struct {
	ID, Group, GroupName string
	// State is DeliveryPending or DeliveryFailed.
	State       string
	Created     time.Time
	NextAttempt time.Time // zero unless pending
	Attempts    int
	// Reason is the last attempt's outcome per host (pending) or why the
	// node gave up (failed).
	Reason string
}

type obEntry struct {
	gid groupstate.GroupID
	id  envelope.ID
	// env is held only while the entry has one in hand (a send's first
	// attempt); otherwise each attempt reads it from the member database,
	// so a long queue costs its records' size in memory, not its
	// envelopes'.
	env  *envelope.Envelope
	rec  outboxRec
	busy bool
	// fresh: asked for by the user (a send): the next attempt tries every
	// host, backing off or not, as a send always did.
	fresh   bool
	waiters []chan<- *SendResult
	// stored and reasons are those of the attempts so far.
	stored  map[peer.ID]bool
	reasons map[peer.ID]string
}

// obSnap is the live state of a queued envelope.
type obSnap struct {
	attempts int
	next     time.Time
	reason   string
	// held: the loop holds the envelope in memory (tests).
	held bool
}

// snapshot asks the loop for the live state of the queue (nil if the loop
// does not answer: closing, or not started).
func (o *outbox) snapshot(ctx context.Context) map[envelope.ID]obSnap {
	reply := make(chan map[envelope.ID]obSnap, 1)
	select {
	case o.snapc <- reply:
	case <-ctx.Done():
		return nil
	case <-o.n.ctx.Done():
		return nil
	}
	select {
	case s := <-reply:
		return s
	case <-ctx.Done():
		return nil
	}
}

type obHost struct {
	fails int
	until time.Time
	busy  int
	// last is the reason of its last failure.
	last string
}

type obSubmit struct {
	gid   groupstate.GroupID
	env   *envelope.Envelope
	reply chan<- *SendResult
}

// obResult is one attempt's outcome, from its goroutine to the loop.
type obResult struct {
	id envelope.ID
	// gone: the envelope is no longer in the member database (its group
	// was left); loadErr: reading it failed otherwise.
	gone    bool
	loadErr error
	targets []peer.ID
	errs    map[peer.ID]error
	// hostless: the targets were members met on the topic.
	hostless bool
}

type outbox struct {
	n     *Node
	p     OutboxParams
	in    chan obSubmit
	done  chan *obResult
	kickc chan struct{}
	// snapc asks the loop for the live state of its queue (Node.Outbox).
	snapc chan chan map[envelope.ID]obSnap
	// up are hosts that connected since the loop last looked (guarded by
	// upMu; the connection notifier must not block).
	upMu sync.Mutex
	up   map[peer.ID]bool

	// Owned by the loop.
	entries  map[envelope.ID]*obEntry
	hosts    map[peer.ID]*obHost
	inflight int
	dirty    map[envelope.ID]*obEntry
	replies  []func()
	wg       sync.WaitGroup

	m outboxMetrics
}

type outboxMetrics struct {
	pending        prometheus.Gauge
	attempts       *prometheus.CounterVec
	stored, failed prometheus.Counter
	delivery       prometheus.Histogram
}

func newOutbox(n *Node, reg prometheus.Registerer) (*outbox, error) {
	o := &outbox{
		n: n, p: n.params.Outbox,
		in: make(chan obSubmit), done: make(chan *obResult, 64), kickc: make(chan struct{}, 1),
		snapc: make(chan chan map[envelope.ID]obSnap),
		up:    map[peer.ID]bool{}, entries: map[envelope.ID]*obEntry{}, hosts: map[peer.ID]*obHost{},
		dirty: map[envelope.ID]*obEntry{},
	}
	const ns, sub = "meshnode", "outbox"
	o.m = outboxMetrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "pending",
			Help: "Own envelopes no host (or member, in a group without hosts) has stored yet."}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "relays_total",
			Help: "Relays of own envelopes to a host or member, by result (stored, retry, refused)."}, []string{"result"}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "stored_total",
			Help: "Own envelopes stored by at least one host or member."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "failed_total",
			Help: "Own envelopes given up (refused by every host, or older than the outbox's MaxAge)."}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "delivery_seconds",
			Help: "Time from sending an envelope to its first store by a host.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 18)}),
	}
	for _, r := range []string{"stored", "retry", "refused"} {
		o.m.attempts.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{o.m.pending, o.m.attempts, o.m.stored, o.m.failed, o.m.delivery} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("node: register outbox metrics: %w", err)
			}
		}
	}
	return o, nil
}

// submit hands a new own envelope (already recorded as pending and put in
// the own store) to the loop and waits for its first attempt.
func (o *outbox) submit(ctx context.Context, gid groupstate.GroupID, env *envelope.Envelope) *SendResult {
	pending := &SendResult{ID: env.ID().String(), StoredBy: []string{}, Failed: map[string]string{}, State: DeliveryPending}
	reply := make(chan *SendResult, 1)
	select {
	case o.in <- obSubmit{gid: gid, env: env, reply: reply}:
	case <-ctx.Done():
		return pending
	case <-o.n.ctx.Done():
		return pending
	}
	select {
	case r := <-reply:
		return r
	case <-ctx.Done():
		return pending
	case <-o.n.ctx.Done():
		return pending
	}
}

// hostUp notes that p connected (called by the connection notifier).
func (o *outbox) hostUp(p peer.ID) {
	o.upMu.Lock()
	o.up[p] = true
	o.upMu.Unlock()
	select {
	case o.kickc <- struct{}{}:
	default:
	}
}

// run is the outbox loop.
func (o *outbox) run() {
	defer o.n.wg.Done()
	ctx := o.n.ctx
	select {
	case <-o.n.member.recovered:
	case <-ctx.Done():
		return
	}
	o.load()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		o.dispatch(time.Now())
		o.flush()
		o.answer()
		o.m.pending.Set(float64(len(o.entries)))
		timer.Reset(o.nextWake(time.Now()))
		select {
		case <-ctx.Done():
			o.stop()
			return
		case s := <-o.in:
			o.add(s, time.Now())
		case r := <-o.done:
			o.settle(r, time.Now())
		case <-o.kickc:
			o.wakeUp(time.Now())
		case reply := <-o.snapc:
			snap := make(map[envelope.ID]obSnap, len(o.entries))
			for id, e := range o.entries {
				snap[id] = obSnap{attempts: int(e.rec.attempts), next: e.rec.next, reason: e.rec.reason, held: e.env != nil}
			}
			reply <- snap
		case <-timer.C:
		}
		// Take whatever else is ready before writing, so a burst is
		// settled in one transaction.
		for more := true; more; {
			select {
			case s := <-o.in:
				o.add(s, time.Now())
			case r := <-o.done:
				o.settle(r, time.Now())
			default:
				more = false
			}
		}
	}
}

// stop waits for the attempts in flight (they end with the node's
// context) and writes what they settled.
func (o *outbox) stop() {
	finished := make(chan struct{})
	go func() { o.wg.Wait(); close(finished) }()
	for {
		select {
		case r := <-o.done:
			o.settle(r, time.Now())
		case <-finished:
			for len(o.done) > 0 {
				o.settle(<-o.done, time.Now())
			}
			for _, e := range o.entries {
				o.reply(e)
			}
			o.flush()
			o.answer()
			return
		}
	}
}

// load reads the pending records (after a restart).
func (o *outbox) load() {
	m := o.n.member
	err := m.db.scan([]byte{pfxOutbox}, func(k, v []byte) error {
		if len(k) != 1+16+32 {
			return nil
		}
		rec, err := decodeOutboxRec(v)
		if err != nil {
			o.n.log.Error("skipping an outbox record that does not decode", "key", hexKey(k), "err", err)
			return nil
		}
		if rec.state != outboxStatePnd {
			return nil
		}
		var gid groupstate.GroupID
		copy(gid[:], k[1:17])
		var id envelope.ID
		copy(id[:], k[17:])
		e := &obEntry{gid: gid, id: id, rec: *rec, stored: map[peer.ID]bool{}, reasons: map[peer.ID]string{}}
		if rec.legacyEnv != nil {
			// A version 1 record carries its envelope: rewritten as
			// version 2 with the envelope beside it (flush).
			env, err := envelope.Decode(rec.legacyEnv, envelope.AbsoluteMaxSize)
			if err != nil || env.ID() != id {
				o.n.log.Error("skipping an outbox record whose envelope does not decode", "key", hexKey(k), "err", err)
				return nil
			}
			e.env, e.rec.mailbox, e.rec.legacyEnv = env, env.Mailbox(), nil
			o.dirty[id] = e
		}
		o.entries[id] = e
		return nil
	})
	if err != nil {
		o.n.log.Error("loading the outbox failed; pending envelopes wait for the next start", "err", err)
	}
	if len(o.entries) > 0 {
		o.n.log.Info("outbox: trying again the envelopes no host stored before the restart", "pending", len(o.entries))
	}
}

func (o *outbox) add(s obSubmit, now time.Time) {
	id := s.env.ID()
	e, ok := o.entries[id]
	if !ok {
		e = &obEntry{gid: s.gid, id: id, rec: outboxRec{state: outboxStatePnd, mailbox: s.env.Mailbox(), created: now, next: now},
			stored: map[peer.ID]bool{}, reasons: map[peer.ID]string{}}
		o.entries[id] = e
	}
	e.env = s.env
	// Asked for by the user (a send, a leave sent again): try now, every
	// host.
	e.rec.next, e.fresh = now, true
	if s.reply != nil {
		e.waiters = append(e.waiters, s.reply)
	}
}

// wakeUp makes what waits for a host that just connected due now.
func (o *outbox) wakeUp(now time.Time) {
	o.upMu.Lock()
	up := o.up
	o.up = map[peer.ID]bool{}
	o.upMu.Unlock()
	for p := range up {
		if h, ok := o.hosts[p]; ok {
			h.fails, h.until = 0, time.Time{}
		}
	}
	for _, e := range o.entries {
		if !e.busy && e.rec.next.After(now) {
			e.rec.next = now
		}
	}
}

// nextWake is when the next entry is due. Entries due now but held back
// by the limits wait for an attempt in flight to end (its result wakes
// the loop), not for a timer.
func (o *outbox) nextWake(now time.Time) time.Duration {
	wake := time.Hour
	for _, e := range o.entries {
		switch {
		case e.busy:
		case e.rec.next.After(now):
			wake = min(wake, e.rec.next.Sub(now))
		case o.inflight == 0:
			wake = 0
		}
	}
	return max(wake, time.Millisecond)
}

// dispatch starts the attempts that are due, within the limits.
func (o *outbox) dispatch(now time.Time) {
	if o.inflight >= o.p.InFlight {
		return
	}
	var due []*obEntry
	for _, e := range o.entries {
		if !e.busy && !e.rec.next.After(now) {
			due = append(due, e)
		}
	}
	// Oldest first: messages reach the hosts roughly in sending order.
	sort.Slice(due, func(i, j int) bool { return due[i].rec.created.Before(due[j].rec.created) })
	targetsOf := map[groupstate.GroupID]outboxTargets{}
	for _, e := range due {
		if o.inflight >= o.p.InFlight {
			return
		}
		t, ok := targetsOf[e.gid]
		if !ok {
			t = o.n.outboxTargets(e.gid, e.rec.mailbox)
			targetsOf[e.gid] = t
		}
		switch {
		case t.err != nil && errors.Is(t.err, ErrUnknownGroup):
			// Left: its records went with it.
			delete(o.entries, e.id)
			o.reply(e)
			continue
		case t.err != nil:
			o.fail(e, t.err.Error(), now)
			continue
		case t.self:
			// This node is one of the group's hosts: its own store is a
			// host's copy; the other hosts get one attempt each.
			e.stored[o.n.h.ID()] = true
			if len(t.peers) == 0 || e.rec.attempts > 0 {
				o.storedBy(e, o.n.h.ID(), now)
				continue
			}
		}
		var try []peer.ID
		var wait time.Time
		for _, p := range t.peers {
			if e.stored[p] {
				continue
			}
			h := o.host(p)
			if !e.fresh && h.until.After(now) && o.n.h.Network().Connectedness(p) != network.Connected {
				if wait.IsZero() || h.until.Before(wait) {
					wait = h.until
				}
				if _, ok := e.reasons[p]; !ok {
					e.reasons[p] = h.last + " (this host is tried again later)"
				}
				continue
			}
			if h.busy >= o.p.PerHost {
				continue
			}
			try = append(try, p)
		}
		if len(try) == 0 {
			if len(t.peers) == 0 {
				reason := "the group names no host and no member is online to store it"
				o.retry(e, map[peer.ID]string{"": reason}, now, time.Time{})
				continue
			}
			if !wait.IsZero() {
				e.rec.next = wait
				o.reply(e)
			}
			continue // the hosts are busy: next round
		}
		o.start(e, try, t.hostless)
	}
}

func (o *outbox) host(p peer.ID) *obHost {
	h, ok := o.hosts[p]
	if !ok {
		h = &obHost{}
		o.hosts[p] = h
	}
	return h
}

// start runs one attempt of e to targets in its own goroutine.
func (o *outbox) start(e *obEntry, targets []peer.ID, hostless bool) {
	e.busy, e.fresh = true, false
	o.inflight++
	for _, p := range targets {
		o.host(p).busy++
	}
	n, env, gid, id := o.n, e.env, e.gid, e.id
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		r := &obResult{id: id, targets: targets, errs: map[peer.ID]error{}, hostless: hostless}
		if env == nil {
			var err error
			if env, err = n.member.loadOutboxEnvelope(gid, id); err != nil {
				r.gone, r.loadErr = errors.Is(err, errOutboxGone), err
				o.done <- r
				return
			}
		}
		// The own store first (a copy served from here; after a restart,
		// what retention or a full disk may have refused).
		if _, err := n.Deliver(n.ctx, env, n.h.ID()); err != nil && !errors.Is(err, store.ErrExpired) && n.ctx.Err() == nil {
			n.log.Info("outbox: the own store refused an own envelope", "envelope", id.Short(), "err", err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, p := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.clearDialBackoff(p)
				err := n.Remote(p).RelayMessageToGroup(n.ctx, env.Mailbox(), env)
				mu.Lock()
				r.errs[p] = err
				mu.Unlock()
			}()
		}
		wg.Wait()
		o.done <- r
	}()
}

// settle applies an attempt's outcome.
func (o *outbox) settle(r *obResult, now time.Time) {
	e, ok := o.entries[r.id]
	o.inflight--
	for _, p := range r.targets {
		if h, ok := o.hosts[p]; ok && h.busy > 0 {
			h.busy--
		}
	}
	if !ok {
		return
	}
	e.busy = false
	switch {
	case r.gone:
		if g, err := o.n.member.db.get(gkey(pfxGroup, e.gid)); err == nil && g != nil {
			// The group is there and its record pending, but the envelope
			// beside it is not: nothing can be sent; say so rather than
			// leave the record pending for good.
			o.fail(e, "the queued envelope is missing from the member database", now)
			return
		}
		// Left: its records went with it.
		delete(o.entries, r.id)
		o.reply(e)
		return
	case errors.Is(r.loadErr, ErrCorrupt):
		// No attempt can send what does not decode.
		o.fail(e, "the queued envelope is unreadable: "+r.loadErr.Error(), now)
		return
	case r.loadErr != nil:
		// The member database failed (a full disk, closing): later.
		o.retry(e, map[peer.ID]string{o.n.h.ID(): "reading the queued envelope: " + r.loadErr.Error()}, now, time.Time{})
		return
	}
	refused := 0
	reasons := map[peer.ID]string{}
	var hostWait time.Time
	for _, p := range r.targets {
		err := r.errs[p]
		h := o.host(p)
		switch {
		case err == nil, errors.Is(err, store.ErrExpired):
			// Expired: the host had it, and its retention removed it.
			e.stored[p] = true
			h.fails, h.until = 0, time.Time{}
			o.m.attempts.WithLabelValues("stored").Inc()
		case permanent(err):
			refused++
			reasons[p] = shortReason(err)
			o.m.attempts.WithLabelValues("refused").Inc()
		default:
			reasons[p] = shortReason(err)
			if o.n.ctx.Err() == nil {
				h.last = reasons[p]
				h.fails++
				h.until = now.Add(jitter(backoff(o.p, h.fails)))
				if hostWait.IsZero() || h.until.Before(hostWait) {
					hostWait = h.until
				}
			}
			o.m.attempts.WithLabelValues("retry").Inc()
		}
	}
	for p, why := range reasons {
		e.reasons[p] = why
	}
	if len(e.stored) > 0 {
		o.finish(e, now)
		return
	}
	if o.n.ctx.Err() != nil {
		return // closing: left pending for the next start
	}
	if refused == len(r.targets) && !r.hostless {
		o.fail(e, "refused by every host: "+joinReasons(reasons), now)
		return
	}
	o.retry(e, reasons, now, hostWait)
}

// storedBy records that p stored e: e is done.
func (o *outbox) storedBy(e *obEntry, p peer.ID, now time.Time) {
	e.stored[p] = true
	o.finish(e, now)
}

// finish records e as stored by the hosts of e.stored.
func (o *outbox) finish(e *obEntry, now time.Time) {
	for p := range e.stored {
		if !slices.Contains(e.rec.storedBy, p) {
			e.rec.storedBy = append(e.rec.storedBy, p)
		}
	}
	slices.SortFunc(e.rec.storedBy, func(a, b peer.ID) int { return strings.Compare(string(a), string(b)) })
	if e.rec.state == outboxStateOK {
		return
	}
	e.rec.state, e.rec.done, e.rec.next, e.rec.reason = outboxStateOK, now, time.Time{}, ""
	o.m.stored.Inc()
	o.m.delivery.Observe(now.Sub(e.rec.created).Seconds())
	o.dirty[e.id] = e
	delete(o.entries, e.id)
	o.reply(e)
}

func (o *outbox) fail(e *obEntry, reason string, now time.Time) {
	e.rec.state, e.rec.done, e.rec.next, e.rec.reason = outboxStateBad, now, time.Time{}, reason
	o.m.failed.Inc()
	o.dirty[e.id] = e
	delete(o.entries, e.id)
	o.n.log.Warn("outbox: gave up an own envelope", "group", e.gid.Short(), "envelope", e.id.Short(), "reason", reason)
	o.reply(e)
}

// retry schedules e's next attempt.
func (o *outbox) retry(e *obEntry, reasons map[peer.ID]string, now, notBefore time.Time) {
	e.rec.attempts++
	for p, why := range reasons {
		e.reasons[p] = why
	}

	reason := joinReasons(reasons)
	if now.Sub(e.rec.created) > o.p.MaxAge {
		o.fail(e, fmt.Sprintf("no host stored it within %v: %s", o.p.MaxAge, reason), now)
		return
	}
	e.rec.next = now.Add(jitter(backoff(o.p, int(e.rec.attempts))))
	if notBefore.After(e.rec.next) {
		e.rec.next = notBefore
	}
	// Written when the reason changes (the first failure, a host that
	// answers otherwise), not at every attempt: during an outage the
	// queue is retried often and its records would be rewritten as often.
	// Attempts and the next attempt come from the loop (Node.Outbox).
	if reason != e.rec.reason || e.env != nil {
		// (An envelope in hand is written once more with it, and let go.)
		e.rec.reason = reason
		o.dirty[e.id] = e
	}
	o.reply(e)
}

// reply answers the sends waiting for e's first attempt.
func (o *outbox) reply(e *obEntry) {
	if len(e.waiters) == 0 {
		return
	}
	res := &SendResult{ID: e.id.String(), StoredBy: []string{}, Failed: map[string]string{}, State: e.rec.stateName()}
	for _, p := range e.rec.storedBy {
		res.StoredBy = append(res.StoredBy, p.String())
	}
	for p, why := range e.reasons {
		if !e.stored[p] {
			key := p.String()
			if p == "" {
				key = "group"
			}
			res.Failed[key] = why
		}
	}
	if e.rec.state == outboxStateBad && len(res.Failed) == 0 {
		res.Failed["group"] = e.rec.reason
	}
	// Answered once the records are written (flush), so what a sender
	// reads next (Outbox, Messages) shows this attempt.
	for _, w := range e.waiters {
		o.replies = append(o.replies, func() { w <- res })
	}
	e.waiters = nil
}

// answer sends the replies queued since the last flush.
func (o *outbox) answer() {
	for _, r := range o.replies {
		r()
	}
	o.replies = o.replies[:0]
}

// flush writes the records settled since the last flush, in one
// transaction. A group left meanwhile gets none: the transaction reads
// each group's record, so it either sees the group gone or conflicts with
// the transaction that forgets it (and is not written).
func (o *outbox) flush() {
	if len(o.dirty) == 0 {
		return
	}
	m := o.n.member
	write := func(txn *badger.Txn) error {
		known := map[groupstate.GroupID]bool{}
		for id, e := range o.dirty {
			ok, seen := known[e.gid]
			if !seen {
				_, err := txn.Get(gkey(pfxGroup, e.gid))
				if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
				ok = err == nil
				known[e.gid] = ok
			}
			if !ok {
				continue
			}
			if err := txn.Set(outboxKey(e.gid, id), e.rec.marshal()); err != nil {
				return err
			}
			switch {
			case e.rec.state != outboxStatePnd:
				// Stored or given up: the envelope goes.
				if err := txn.Delete(outboxEnvKey(e.gid, id)); err != nil {
					return err
				}
			case e.env != nil:
				if err := txn.Set(outboxEnvKey(e.gid, id), e.env.Bytes()); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := m.db.db.Update(write)
	for try := 0; try < 3 && errors.Is(err, badger.ErrConflict); try++ {
		// A group record changed meanwhile (a rotation, new hosts).
		err = m.db.db.Update(write)
	}
	if err != nil && o.n.ctx.Err() == nil {
		// The records stay as they were (pending): the envelopes are tried
		// again, and hosts answer duplicates for what they hold.
		o.n.log.Warn("outbox: saving delivery states failed", "records", len(o.dirty), "err", err)
	}
	for _, e := range o.dirty {
		if err == nil {
			e.env = nil // in the database now
		}
	}
	clear(o.dirty)
}

// permanent reports a refusal no retry to the same host can change.
func permanent(err error) bool {
	for _, s := range []error{envelope.ErrMalformed, envelope.ErrBadSignature, envelope.ErrWrongMailbox, envelope.ErrTooLarge, envelope.ErrVersion} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// shortReason is an attempt's error as a user reads it.
func shortReason(err error) string {
	var se *status.Error
	if errors.As(err, &se) {
		if se.Message != "" {
			return se.Code.String() + ": " + se.Message
		}
		return se.Code.String()
	}
	s := err.Error()
	if i := strings.Index(s, "failed to dial"); i >= 0 {
		return "unreachable (" + strings.TrimSpace(s[i:]) + ")"
	}
	return s
}

func joinReasons(reasons map[peer.ID]string) string {
	parts := make([]string, 0, len(reasons))
	for p, why := range reasons {
		if p == "" {
			parts = append(parts, why)
		} else {
			parts = append(parts, p.ShortString()+": "+why)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// backoff is the wait after the n-th failure: MinBackoff doubling, at
// most MaxBackoff.
func backoff(p OutboxParams, n int) time.Duration {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// jitter spreads d by ±20%, so the envelopes of a burst and the members
// of a group do not come back all at once.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
