package testnet

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// segmentSize is the payload of one simulated TCP segment: the unit that
// loss draws are made for.
const segmentSize = 1400

// minRTO is the smallest retransmission timeout (Linux's TCP_RTO_MIN).
const minRTO = 200 * time.Millisecond

// maxQueued bounds the bytes a delayed stream holds before Write blocks,
// like a socket send buffer.
const maxQueued = 1 << 20

// linkModel is what the wrapper adds to mocknet's links: jitter and loss.
// Mocknet itself applies the base latency and the bandwidth of each link.
type linkModel struct {
	latency time.Duration
	jitter  time.Duration
	loss    float64
}

func (m linkModel) active() bool { return m.jitter > 0 || m.loss > 0 }

// extra draws the delay one write of n bytes suffers on top of mocknet's
// latency: a uniform jitter in [0, jitter], plus one retransmission
// timeout per lost segment (doubling on consecutive losses of the same
// segment), as a reliable transport would see it. Nothing is dropped.
func (m linkModel) extra(n int) time.Duration {
	var d time.Duration
	if m.jitter > 0 {
		d = rand.N(m.jitter + 1)
	}
	if m.loss > 0 {
		rto := max(minRTO, 3*m.latency)
		for range (n + segmentSize - 1) / segmentSize {
			for r := rto; rand.Float64() < m.loss; r *= 2 {
				d += r
			}
		}
	}
	return d
}

// counters are one node's application bytes, by traffic class.
type counters struct {
	sent, recv         atomic.Int64 // meshnode protocols
	baseSent, baseRecv atomic.Int64 // the gossipsub baseline
}

// simHost wraps a mocknet host: every stream opened or accepted through it
// counts its bytes and, with jitter or loss configured, delays its writes.
// The node and the baseline pubsub use it; libp2p's own services (identify)
// talk on the inner host and are neither counted nor delayed.
type simHost struct {
	host.Host
	model linkModel
	c     *counters
}

var _ host.Host = (*simHost)(nil)

func (h *simHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return h.wrap(s), nil
}

func (h *simHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(h.wrap(s)) })
}

func (h *simHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(h.wrap(s)) })
}

func (h *simHost) wrap(s network.Stream) network.Stream {
	sent, recv := &h.c.sent, &h.c.recv
	if s.Protocol() == baselineProtocol {
		sent, recv = &h.c.baseSent, &h.c.baseRecv
	}
	ws := &simStream{Stream: s, model: h.model, sent: sent, recv: recv}
	ws.cond = sync.NewCond(&ws.mu)
	return ws
}

// simStream counts bytes and delays writes. Writes keep their order: each
// chunk is handed to the mocknet stream at max(now+extra, previous due
// time) by a pump goroutine that runs only while chunks are queued.
type simStream struct {
	network.Stream
	model      linkModel
	sent, recv *atomic.Int64

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []chunk
	queued  int
	lastDue time.Time
	pumping bool
	err     error
}

type chunk struct {
	b   []byte
	due time.Time
}

func (s *simStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	s.recv.Add(int64(n))
	return n, err
}

func (s *simStream) Write(b []byte) (int, error) {
	if !s.model.active() {
		n, err := s.Stream.Write(b)
		s.sent.Add(int64(n))
		return n, err
	}
	due := time.Now().Add(s.model.extra(len(b)))
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.err == nil && s.queued > 0 && s.queued+len(b) > maxQueued {
		s.cond.Wait()
	}
	if s.err != nil {
		return 0, s.err
	}
	due = maxTime(due, s.lastDue)
	s.lastDue = due
	s.queue = append(s.queue, chunk{b: append([]byte(nil), b...), due: due})
	s.queued += len(b)
	s.sent.Add(int64(len(b)))
	if !s.pumping {
		s.pumping = true
		go s.pump()
	}
	return len(b), nil
}

func (s *simStream) pump() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) == 0 || s.err != nil {
			s.pumping = false
			s.queue, s.queued = nil, 0
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
		c := s.queue[0]
		s.mu.Unlock()
		if d := time.Until(c.due); d > 0 {
			timer.Reset(d)
			<-timer.C
		}
		_, err := s.Stream.Write(c.b)
		s.mu.Lock()
		if err != nil && s.err == nil {
			s.err = err
		}
		if len(s.queue) > 0 {
			s.queue = s.queue[1:]
			s.queued -= len(c.b)
		}
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// drain waits until every queued chunk was handed to the mocknet stream.
func (s *simStream) drain() {
	s.mu.Lock()
	for s.pumping {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

func (s *simStream) CloseWrite() error {
	s.drain()
	return s.Stream.CloseWrite()
}

func (s *simStream) Close() error {
	s.drain()
	return s.Stream.Close()
}

func (s *simStream) Reset() error {
	s.abort()
	return s.Stream.Reset()
}

func (s *simStream) ResetWithError(code network.StreamErrorCode) error {
	s.abort()
	return s.Stream.ResetWithError(code)
}

func (s *simStream) abort() {
	s.mu.Lock()
	if s.err == nil {
		s.err = network.ErrReset
	}
	s.queue, s.queued = nil, 0
	s.cond.Broadcast()
	s.mu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fabric owns the mocknet and the state of every link: which pairs may
// ever talk (the base links: nodes that share a group), which nodes are
// offline, and the current partition. Links are added and removed to match.
//
// Lock order: fabric.mu alone; mocknet calls are made with it held, and
// mocknet never calls back into the fabric.
type fabric struct {
	mn  mocknet.Mocknet
	ids []peer.ID

	mu      sync.Mutex
	base    map[[2]int]bool
	up      map[[2]int]bool
	offline []bool
	side    []int // partition side per node; nil when healed
}

func newFabric(mn mocknet.Mocknet, ids []peer.ID) *fabric {
	return &fabric{mn: mn, ids: ids, base: map[[2]int]bool{}, up: map[[2]int]bool{}, offline: make([]bool, len(ids))}
}

func pair(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

// allow makes a and b a base pair (they may connect) and links them now if
// the current state allows.
func (f *fabric) allow(a, b int) error {
	if a == b {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.base[pair(a, b)] = true
	return f.syncPair(pair(a, b))
}

func (f *fabric) wanted(p [2]int) bool {
	if !f.base[p] || f.offline[p[0]] || f.offline[p[1]] {
		return false
	}
	return f.side == nil || f.side[p[0]] == f.side[p[1]]
}

// syncPair links or unlinks one pair to match wanted. Call with f.mu held.
func (f *fabric) syncPair(p [2]int) error {
	want := f.wanted(p)
	if want == f.up[p] {
		return nil
	}
	a, b := f.ids[p[0]], f.ids[p[1]]
	if want {
		if _, err := f.mn.LinkPeers(a, b); err != nil {
			return err
		}
		f.up[p] = true
		return nil
	}
	delete(f.up, p)
	if err := f.mn.UnlinkPeers(a, b); err != nil {
		return err
	}
	// Closing one side closes its counterpart too (mocknet).
	return f.mn.DisconnectPeers(a, b)
}

func (f *fabric) syncAll() error {
	for p := range f.base {
		if err := f.syncPair(p); err != nil {
			return err
		}
	}
	return nil
}

// setOnline takes node i offline (every link down, connections closed) or
// back online.
func (f *fabric) setOnline(i int, online bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offline[i] = !online
	for p := range f.base {
		if p[0] == i || p[1] == i {
			if err := f.syncPair(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// partition splits the network by side (nil heals it).
func (f *fabric) partition(side []int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.side = side
	return f.syncAll()
}

// isOnline reports whether node i is online.
func (f *fabric) isOnline(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.offline[i]
}

// reachable reports whether a and b can currently talk.
func (f *fabric) reachable(a, b int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wanted(pair(a, b))
}
