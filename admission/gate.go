package admission

import (
	"container/list"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
)

// Gate admits the inbound streams of one service. A nil *Gate admits
// everything (its tickets are nil and their methods do nothing).
//
// Lock order: Gate.mu is taken alone; streams are reset after it is
// released.
type Gate struct {
	name string
	p    GateParams
	c    *Controller

	mu            sync.Mutex
	pending       *list.List // *Ticket, oldest first
	pendingByKey  map[Key]int
	pendingByPeer map[peer.ID]int
	active        int
	general       int
	generalByKey  map[Key]int
	privByKey     map[Key]int
	activeByPeer  map[peer.ID]int
}

type ticketState uint8

const (
	statePending ticketState = iota
	stateActive
	stateEvicted
	stateClosed
)

// Ticket is one stream's place in a gate: pending from Open, active from
// Activate, gone at Close (or when evicted while pending).
type Ticket struct {
	g          *Gate
	peer       peer.ID
	key        Key
	reset      func()
	state      ticketState
	privileged bool
	elem       *list.Element
}

func newGate(name string, p GateParams, c *Controller) *Gate {
	return &Gate{
		name: name, p: p, c: c,
		pending:       list.New(),
		pendingByKey:  map[Key]int{},
		pendingByPeer: map[peer.ID]int{},
		generalByKey:  map[Key]int{},
		privByKey:     map[Key]int{},
		activeByPeer:  map[peer.ID]int{},
	}
}

// Open registers an accepted stream as pending. It never refuses: if a
// pending limit is reached, the oldest pending stream in that scope (the
// peer's, the prefix's, or any) is reset to make room. The caller must
// Close the ticket when the stream ends.
func (g *Gate) Open(s network.Stream) *Ticket {
	if g == nil {
		return nil
	}
	c := s.Conn()
	return g.open(c.RemotePeer(), g.c.keyOf(c.RemoteMultiaddr()), func() { _ = s.Reset() })
}

func (g *Gate) open(p peer.ID, key Key, reset func()) *Ticket {
	t := &Ticket{g: g, peer: p, key: key, reset: reset}
	var victims []*Ticket
	g.mu.Lock()
	if g.pendingByPeer[p] >= g.p.PendingPerPeer {
		victims = g.evictOldest(victims, func(o *Ticket) bool { return o.peer == p })
	}
	if key.IsValid() && g.pendingByKey[key] >= g.p.PendingPerPrefix {
		victims = g.evictOldest(victims, func(o *Ticket) bool { return o.key == key })
	}
	if g.pending.Len() >= g.p.MaxPending {
		victims = g.evictOldest(victims, func(*Ticket) bool { return true })
	}
	t.elem = g.pending.PushBack(t)
	g.pendingByPeer[p]++
	if key.IsValid() {
		g.pendingByKey[key]++
	}
	g.mu.Unlock()
	for _, v := range victims {
		g.c.refusals.Add(ReasonIdleEvicted)
		v.reset()
	}
	return t
}

// evictOldest removes the oldest pending ticket that match accepts and
// appends it to victims. Call with g.mu held.
func (g *Gate) evictOldest(victims []*Ticket, match func(*Ticket) bool) []*Ticket {
	for e := g.pending.Front(); e != nil; e = e.Next() {
		if o := e.Value.(*Ticket); match(o) {
			g.dropPending(o)
			o.state = stateEvicted
			return append(victims, o)
		}
	}
	return victims
}

// dropPending removes a pending ticket from the counts. Call with g.mu held.
func (g *Gate) dropPending(t *Ticket) {
	g.pending.Remove(t.elem)
	t.elem = nil
	decr(g.pendingByPeer, t.peer)
	if t.key.IsValid() {
		decr(g.pendingByKey, t.key)
	}
}

func decr[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// Activate is called once the stream's request for mailbox m has
// arrived: the stream becomes active, privileged if m is established or
// the peer is trusted (Controller.Privileged). It fails with an error
// matching status.ErrBusy if the active limits leave no room (the caller
// answers Busy and ends the stream), or ErrEvicted if the stream was
// reset while pending. On an active ticket (a relay session's later
// requests) it only upgrades a general stream to privileged when m
// allows, and never fails.
func (t *Ticket) Activate(m envelope.MailboxID) error {
	if t == nil {
		return nil
	}
	return t.activate(t.g.c.Privileged(m, t.peer))
}

func (t *Ticket) activate(privileged bool) error {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	switch t.state {
	case stateActive:
		if privileged && !t.privileged && (!t.key.IsValid() || g.privByKey[t.key] < g.p.PrivilegedPerPrefix) {
			g.general--
			if t.key.IsValid() {
				decr(g.generalByKey, t.key)
				g.privByKey[t.key]++
			}
			t.privileged = true
		}
		return nil
	case stateEvicted:
		return ErrEvicted
	case stateClosed:
		return fmt.Errorf("%w: stream already ended", ErrEvicted)
	}
	g.dropPending(t)
	why := ""
	switch {
	case g.activeByPeer[t.peer] >= g.p.PerPeer:
		why = "this peer has too many %s streams open"
	case g.active >= g.p.MaxStreams:
		why = "all %s streams are in use"
	case !privileged && g.general >= g.p.MaxStreams-g.p.ReservedStreams:
		why = "the %s streams left are reserved for established mailboxes"
	case !privileged && t.key.IsValid() && g.generalByKey[t.key] >= g.p.PerPrefix:
		why = "your network has too many %s streams open"
	case privileged && t.key.IsValid() && g.privByKey[t.key] >= g.p.PrivilegedPerPrefix:
		why = "your network has too many %s streams open"
	}
	if why != "" {
		t.state = stateClosed
		g.c.refusals.Add(ReasonStreamsBusy)
		return fmt.Errorf("%w: "+why+"; retry shortly", status.ErrBusy, g.name)
	}
	t.state, t.privileged = stateActive, privileged
	g.active++
	g.activeByPeer[t.peer]++
	if privileged {
		if t.key.IsValid() {
			g.privByKey[t.key]++
		}
	} else {
		g.general++
		if t.key.IsValid() {
			g.generalByKey[t.key]++
		}
	}
	return nil
}

// Privileged reports whether the ticket's stream counts as privileged.
func (t *Ticket) Privileged() bool {
	if t == nil {
		return true
	}
	t.g.mu.Lock()
	defer t.g.mu.Unlock()
	return t.privileged
}

// Evicted reports whether the gate reset the ticket's stream while it
// was pending (to make room for a newer one).
func (t *Ticket) Evicted() bool {
	if t == nil {
		return false
	}
	t.g.mu.Lock()
	defer t.g.mu.Unlock()
	return t.state == stateEvicted
}

// Key is the admission key of the ticket's remote.
func (t *Ticket) Key() Key {
	if t == nil {
		return Key{}
	}
	return t.key
}

// Close releases the ticket's place. It is idempotent.
func (t *Ticket) Close() {
	if t == nil {
		return
	}
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	switch t.state {
	case statePending:
		g.dropPending(t)
	case stateActive:
		g.active--
		decr(g.activeByPeer, t.peer)
		if t.privileged {
			if t.key.IsValid() {
				decr(g.privByKey, t.key)
			}
		} else {
			g.general--
			if t.key.IsValid() {
				decr(g.generalByKey, t.key)
			}
		}
	}
	t.state = stateClosed
}

// GateUsage is a gate's occupancy.
type GateUsage struct {
	Pending, Active, General int
}

// Usage returns the gate's occupancy now.
func (g *Gate) Usage() GateUsage {
	if g == nil {
		return GateUsage{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return GateUsage{Pending: g.pending.Len(), Active: g.active, General: g.general}
}
