package admission

import (
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/ratelimit"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/store"
)

// Class is what a host knows of a mailbox.
type Class uint8

const (
	// ClassUnknown: the host has never stored anything for the mailbox.
	ClassUnknown Class = iota
	// ClassNew: stored, but not (yet) established.
	ClassNew
	// ClassEstablished: the mailbox has history (store.AdmissionParams).
	ClassEstablished
)

// Classifier tells the class of a mailbox. It must be cheap (it runs for
// every stream and envelope): the store answers from memory.
type Classifier func(m envelope.MailboxID) Class

// Origin is where an envelope to store came from.
type Origin struct {
	Peer peer.ID
	// Key is the remote's admission key (zero: exempt or unknown).
	Key Key
	// Local: this node itself (its member layer), admitted unconditionally.
	Local bool
	// Proof is the new-mailbox proof of work sent with a direct relay
	// request, if any.
	Proof *Proof
}

// Controller holds a host's admission state: the stream gates of relay,
// fetch and sync, the per-prefix rates, new-mailbox admission, the trusted
// peers and the refusal counts. It is safe for concurrent use.
type Controller struct {
	p        Params
	refusals *Refusals
	relay    *Gate
	fetch    *Gate
	sync     *Gate
	dir      *Gate

	envRate      *ratelimit.Limiter[Key]
	pageRate     *ratelimit.Limiter[Key]
	newMbxPrefix *ratelimit.Limiter[Key]
	newBytes     *ratelimit.Limiter[Key]
	newTraffic   *rate.Limiter
	newMbx       *rate.Limiter
	trusted      *lru.Cache[peer.ID, time.Time]
	admitted     *lru.Cache[envelope.MailboxID, struct{}]
	now          func() time.Time

	// newMu serialises admissions of new mailboxes, so the concurrent
	// first envelopes of one mailbox take its tokens once.
	newMu sync.Mutex

	mu       sync.Mutex // guards self, classify, peers and tracking
	tracking bool       // a ResourceManager reports connections: per-prefix limits apply
	self     peer.ID
	classify Classifier
	peers    map[peer.ID]peerEntry
}

// peerEntry is the admission key of a connected peer and how many of its
// connections carry it.
type peerEntry struct {
	key   Key
	conns int
}

// New returns a controller. With reg, its refusal counter is registered.
func New(p Params, reg prometheus.Registerer) (*Controller, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	refusals, err := NewRefusals(p.PressureWindow, reg)
	if err != nil {
		return nil, fmt.Errorf("admission: metrics: %w", err)
	}
	limit := func(r float64) rate.Limit {
		if r <= 0 {
			return rate.Inf
		}
		return rate.Limit(r)
	}
	trusted, _ := lru.New[peer.ID, time.Time](p.MaxTrackedPeers)
	admitted, _ := lru.New[envelope.MailboxID, struct{}](4096)
	c := &Controller{
		p: p, refusals: refusals,
		envRate:      ratelimit.New[Key](p.EnvelopeRatePerPrefix, p.EnvelopeBurstPerPrefix, p.MaxTrackedPrefixes),
		pageRate:     ratelimit.New[Key](p.PageRatePerPrefix, p.PageBurstPerPrefix, p.MaxTrackedPrefixes),
		newMbxPrefix: ratelimit.New[Key](p.NewMailboxRatePerPrefix, p.NewMailboxBurstPerPrefix, p.MaxTrackedPrefixes),
		newTraffic:   rate.NewLimiter(limit(p.NewTrafficRate), max(1, p.NewTrafficBurst)),
		newMbx:       rate.NewLimiter(limit(p.NewMailboxRate), max(1, p.NewMailboxBurst)),
		trusted:      trusted,
		admitted:     admitted,
		now:          time.Now,
		classify:     func(envelope.MailboxID) Class { return ClassUnknown },
		peers:        map[peer.ID]peerEntry{},
	}
	if p.NewBytesPerPrefix > 0 {
		perSecond := float64(p.NewBytesPerPrefix) / p.NewBytesWindow.Seconds()
		c.newBytes = ratelimit.New[Key](perSecond, int(min(p.NewBytesPerPrefix, 1<<40)), p.MaxTrackedPrefixes)
	}
	c.relay = newGate("relay", p.Relay, c)
	c.fetch = newGate("fetch", p.Fetch, c)
	c.sync = newGate("sync", p.Sync, c)
	c.dir = newGate("directory", p.Directory, c)
	return c, nil
}

// Params returns the controller's parameters.
func (c *Controller) Params() Params { return c.p }

// Refusals returns the refusal counts.
func (c *Controller) Refusals() *Refusals {
	if c == nil {
		return nil
	}
	return c.refusals
}

// Relay, Fetch and Sync are the stream gates of the three services (nil
// on a nil controller: everything admitted).
func (c *Controller) Relay() *Gate {
	if c == nil {
		return nil
	}
	return c.relay
}

// Fetch is the fetch service's stream gate.
func (c *Controller) Fetch() *Gate {
	if c == nil {
		return nil
	}
	return c.fetch
}

// Sync is the sync service's stream gate.
func (c *Controller) Sync() *Gate {
	if c == nil {
		return nil
	}
	return c.sync
}

// Directory is the directory service's stream gate.
func (c *Controller) Directory() *Gate {
	if c == nil {
		return nil
	}
	return c.dir
}

// SetSelf sets this host's peer ID, which new-mailbox proofs are bound to.
func (c *Controller) SetSelf(id peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.self = id
}

// SetClassifier sets how mailboxes are classified (the node's store).
func (c *Controller) SetClassifier(f Classifier) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.classify = f
}

func (c *Controller) classOf(m envelope.MailboxID) Class {
	c.mu.Lock()
	f := c.classify
	c.mu.Unlock()
	return f(m)
}

// Refuse counts a refusal for reason (for refusals decided elsewhere: a
// relay's per-peer rate, a store quota).
func (c *Controller) Refuse(reason Reason) {
	if c != nil {
		c.refusals.Add(reason)
	}
}

// Privileged reports whether a stream of peer p for mailbox m may use the
// capacity reserved for established mailboxes: m is established, or p
// recently relayed a valid envelope to an established mailbox (Trust).
func (c *Controller) Privileged(m envelope.MailboxID, p peer.ID) bool {
	if c == nil {
		return true
	}
	if c.classOf(m) == ClassEstablished {
		return true
	}
	until, ok := c.trusted.Peek(p)
	return ok && c.now().Before(until)
}

// Trust marks p as privileged for TrustFor: it has just relayed a valid
// envelope that was stored in an established mailbox.
func (c *Controller) Trust(p peer.ID) {
	if c == nil || c.p.TrustFor <= 0 || p == "" {
		return
	}
	c.trusted.Add(p, c.now().Add(c.p.TrustFor))
}

// ClassOf classifies m with the controller's classifier.
func (c *Controller) ClassOf(m envelope.MailboxID) Class {
	if c == nil {
		return ClassEstablished
	}
	return c.classOf(m)
}

// KeyOfPeer returns the admission key of a connected peer, as recorded by
// the resource manager (ResourceManager): zero if unknown or exempt.
func (c *Controller) KeyOfPeer(p peer.ID) Key {
	if c == nil {
		return Key{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[p].key
}

// AllowEnvelope takes one envelope from key's rate (false: refused, and
// counted).
func (c *Controller) AllowEnvelope(key Key) bool {
	if c == nil || !key.IsValid() || c.envRate.Allow(key, 1) {
		return true
	}
	c.refusals.Add(ReasonRatePrefix)
	return false
}

// AllowPage takes one fetched page from key's rate.
func (c *Controller) AllowPage(key Key) bool {
	if c == nil || !key.IsValid() || c.pageRate.Allow(key, 1) {
		return true
	}
	c.refusals.Add(ReasonRatePrefix)
	return false
}

// AdmitStore decides whether a verified envelope of size bytes for
// mailbox m, from o, may go to the store. Established mailboxes and the
// node's own envelopes always may (the store's quotas still apply). The
// others are subject to the total rate of new traffic; a mailbox never
// stored before also to the new-mailbox rates of its prefix and of the
// host (or, once that is spent, a proof of work); and its bytes to its
// prefix's budget for new mailboxes. Refusals match status.ErrRateLimited,
// status.ErrProofRequired (a *status.Error carrying the bits asked for)
// or store.ErrQuotaExceeded.
func (c *Controller) AdmitStore(m envelope.MailboxID, o Origin, size int) error {
	if c == nil || o.Local {
		return nil
	}
	class := c.classOf(m)
	if class == ClassEstablished {
		return nil
	}
	if !c.newTraffic.Allow() {
		c.refusals.Add(ReasonRateNew)
		return fmt.Errorf("%w: the host takes no more envelopes for new mailboxes now; retry later", status.ErrRateLimited)
	}
	if class == ClassUnknown {
		c.newMu.Lock()
		_, ok := c.admitted.Get(m)
		if !ok {
			if err := c.admitMailbox(m, o); err != nil {
				c.newMu.Unlock()
				return err
			}
			c.admitted.Add(m, struct{}{})
		}
		c.newMu.Unlock()
	}
	if c.newBytes != nil && o.Key.IsValid() && !c.newBytes.Allow(o.Key, size) {
		c.refusals.Add(ReasonPrefixBytes)
		return fmt.Errorf("%w: your network's budget for new mailboxes on this host is spent (%d bytes per %v)",
			store.ErrQuotaExceeded, c.p.NewBytesPerPrefix, c.p.NewBytesWindow)
	}
	return nil
}

// admitMailbox admits a mailbox the host has never stored anything for.
func (c *Controller) admitMailbox(m envelope.MailboxID, o Origin) error {
	// The prefix's token is given back if the mailbox is not admitted
	// after all (a proof asked for and not yet sent).
	refund := func() {}
	if o.Key.IsValid() {
		ok, undo := c.newMbxPrefix.Take(o.Key, 1)
		if !ok {
			c.refusals.Add(ReasonNewMailboxPrefix)
			return fmt.Errorf("%w: too many new mailboxes from your network; retry later", status.ErrRateLimited)
		}
		refund = undo
	}
	if err := c.admitBeyondPrefix(m, o); err != nil {
		refund()
		return err
	}
	return nil
}

// admitBeyondPrefix applies the host's total rate of new mailboxes, or
// the proof of work that replaces it under load.
func (c *Controller) admitBeyondPrefix(m envelope.MailboxID, o Origin) error {
	if c.newMbx.Allow() {
		return nil
	}
	bits := c.p.NewMailboxProofBits
	if bits == 0 {
		c.refusals.Add(ReasonNewMailboxRate)
		return fmt.Errorf("%w: the host takes no more new mailboxes now; retry later", status.ErrRateLimited)
	}
	if o.Proof == nil {
		c.refusals.Add(ReasonProofRequired)
		return status.ProofError(bits, fmt.Sprintf("the host is under load: a new mailbox needs a proof of work of %d bits", bits))
	}
	c.mu.Lock()
	self := c.self
	c.mu.Unlock()
	if !CheckMailboxProof(self, m, *o.Proof, bits) {
		c.refusals.Add(ReasonProofInvalid)
		return status.ProofError(bits, fmt.Sprintf("%v: a new mailbox needs a proof of work of %d bits for this host and mailbox", ErrBadProof, bits))
	}
	return nil
}

// keyOf is the admission key of a remote address, or zero when no
// ResourceManager of this controller runs under the host (a host that is
// not the node's own, as the simulator's: its addresses mean nothing).
func (c *Controller) keyOf(addr ma.Multiaddr) Key {
	c.mu.Lock()
	tracking := c.tracking
	c.mu.Unlock()
	if !tracking {
		return Key{}
	}
	return c.p.KeyOf(addr)
}

// trackConn records that a connection of peer p comes from key (the
// resource manager wrapper calls it).
func (c *Controller) trackConn(p peer.ID, key Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.peers[p]
	e.key = key
	e.conns++
	c.peers[p] = e
}

// untrackConn undoes trackConn when the connection ends.
func (c *Controller) untrackConn(p peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.peers[p]
	if !ok {
		return
	}
	if e.conns <= 1 {
		delete(c.peers, p)
		return
	}
	e.conns--
	c.peers[p] = e
}
