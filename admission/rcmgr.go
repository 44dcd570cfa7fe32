package admission

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ResourceManager wraps libp2p's resource manager with what it lacks
// when peer IDs cost nothing: a limit on the inbound streams of one
// network prefix (StreamsPerPrefix), counted from the moment the stream
// is accepted, before its protocol is negotiated, over all protocols. It
// also tells the controller which prefix each connected peer comes from
// (KeyOfPeer), for the limits of gossip, which has no stream of its own.
//
// A stream is refused here with network.ErrResourceLimitExceeded (the
// swarm resets it), and counted as ReasonPrefixStreams.
type ResourceManager struct {
	network.ResourceManager
	c *Controller

	mu      sync.Mutex
	streams map[Key]int
}

// WrapResourceManager returns rm with per-prefix stream limits and peer
// tracking for c.
func WrapResourceManager(rm network.ResourceManager, c *Controller) *ResourceManager {
	c.mu.Lock()
	c.tracking = true
	c.mu.Unlock()
	return &ResourceManager{ResourceManager: rm, c: c, streams: map[Key]int{}}
}

// GetConnLimit passes the wrapped manager's limit on to libp2p's
// connection manager check, when it has one.
func (r *ResourceManager) GetConnLimit() int {
	if l, ok := r.ResourceManager.(interface{ GetConnLimit() int }); ok {
		return l.GetConnLimit()
	}
	return 0
}

// OpenConnection opens the wrapped connection scope and remembers its
// remote's key until the scope is done.
func (r *ResourceManager) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	s, err := r.ResourceManager.OpenConnection(dir, usefd, endpoint)
	if err != nil {
		return nil, err
	}
	return &connScope{ConnManagementScope: s, r: r, key: r.c.p.KeyOf(endpoint)}, nil
}

// OpenStream refuses an inbound stream of a prefix that holds
// StreamsPerPrefix already.
func (r *ResourceManager) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	key := Key{}
	if dir == network.DirInbound {
		key = r.c.KeyOfPeer(p)
	}
	if key.IsValid() {
		r.mu.Lock()
		if r.streams[key] >= r.c.p.StreamsPerPrefix {
			r.mu.Unlock()
			r.c.refusals.Add(ReasonPrefixStreams)
			return nil, network.ErrResourceLimitExceeded
		}
		r.streams[key]++
		r.mu.Unlock()
	}
	s, err := r.ResourceManager.OpenStream(p, dir)
	if err != nil || !key.IsValid() {
		if err != nil && key.IsValid() {
			r.release(key)
		}
		return s, err
	}
	return &streamScope{StreamManagementScope: s, r: r, key: key}, nil
}

func (r *ResourceManager) release(key Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	decr(r.streams, key)
}

// PrefixStreams returns the inbound streams of key now.
func (r *ResourceManager) PrefixStreams(key Key) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.streams[key]
}

type connScope struct {
	network.ConnManagementScope
	r    *ResourceManager
	key  Key
	once sync.Once
	mu   sync.Mutex
	peer peer.ID
}

func (s *connScope) SetPeer(p peer.ID) error {
	if err := s.ConnManagementScope.SetPeer(p); err != nil {
		return err
	}
	s.mu.Lock()
	s.peer = p
	s.mu.Unlock()
	s.r.c.trackConn(p, s.key)
	return nil
}

func (s *connScope) Done() {
	s.once.Do(func() {
		s.mu.Lock()
		p := s.peer
		s.mu.Unlock()
		if p != "" {
			s.r.c.untrackConn(p)
		}
	})
	s.ConnManagementScope.Done()
}

type streamScope struct {
	network.StreamManagementScope
	r    *ResourceManager
	key  Key
	once sync.Once
}

func (s *streamScope) Done() {
	s.once.Do(func() { s.r.release(s.key) })
	s.StreamManagementScope.Done()
}
