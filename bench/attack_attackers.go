package bench

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// attackerStats counts what the attackers did.
type attackerStats struct {
	peers                   int
	streams, sent, accepted atomic.Int64
	announced               atomic.Int64
	mu                      sync.Mutex
	refused                 map[string]int
	example                 map[string]string
}

func (s *attackerStats) outcome(err error) {
	s.sent.Add(1)
	if err == nil {
		s.accepted.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused, s.example = map[string]int{}, map[string]string{}
	}
	class := errClass(err)
	s.refused[class]++
	if _, ok := s.example[class]; !ok {
		s.example[class] = status.Truncate(err.Error())
	}
}

func (s *attackerStats) result() AttackerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return AttackerStats{Streams: s.streams.Load(), Sent: s.sent.Load(), Accepted: s.accepted.Load(), Announced: s.announced.Load(),
		Refused: s.refused, Example: s.example}
}

// swarm is where an attack's throwaway peer IDs come from (net, one
// address each) and what they attack.
type swarm struct {
	net string
	hp  *hostProcess
}

// peers starts n throwaway peer IDs on the addresses first+1 … first+n of
// the swarm's network, connected to the host; stop closes them. Peers the
// host refuses at the connection (its per-network limit) are left out.
func (sw swarm) peers(ctx context.Context, first, n int) ([]host.Host, func()) {
	var hs []host.Host
	for i := range n {
		h, err := rawHost(fmt.Sprintf("%s%d", sw.net, first+i+1))
		if err != nil {
			continue
		}
		if err := connectTo(ctx, h, sw.hp); err != nil {
			h.Close()
			continue
		}
		hs = append(hs, h)
	}
	return hs, func() {
		for _, h := range hs {
			h.Close()
		}
	}
}

// attack runs the attack name until ctx ends.
func attack(ctx context.Context, name string, sw swarm, s *attackerStats, run *AttackRun) {
	hp := sw.hp
	switch name {
	case AttackSlowloris:
		run.Description = "17 peer IDs x 4 idle fetch 1.1.0 streams and 9 x 32 idle relay 1.2.0 streams " +
			"(the protocol header, then nothing or one byte of a length prefix), reopened as soon as the host resets them"
		fetchers, stopF := sw.peers(ctx, 0, 17)
		defer stopF()
		relayers, stopR := sw.peers(ctx, 17, 9)
		defer stopR()
		s.peers = len(fetchers) + len(relayers)
		var wg sync.WaitGroup
		for _, h := range fetchers {
			idle(ctx, &wg, h, hp.id, fetch.StreamProtocolID, 4, s)
		}
		for _, h := range relayers {
			idle(ctx, &wg, h, hp.id, relay.SessionProtocolID, 32, s)
		}
		wg.Wait()
	case AttackSync:
		attackSync(ctx, sw, s, run)
	case AttackSubscriptions:
		attackSubscriptions(ctx, sw, s, run)
	case AttackMailboxes:
		run.Description = "10 peer IDs creating new write keys as fast as they can, one envelope each " +
			"(their client computes no proof of work)"
		hs, stop := sw.peers(ctx, 0, 10)
		defer stop()
		s.peers = len(hs)
		var wg sync.WaitGroup
		for _, h := range hs {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						k, err := writeKey()
						if err != nil {
							return
						}
						env, err := makeEnvelope(k, 512)
						if err != nil {
							return
						}
						err = sendNoProof(ctx, h, hp.id, env)
						if ctx.Err() == nil {
							s.outcome(err)
						}
					}
				}()
			}
		}
		wg.Wait()
	case AttackStoreFull:
		run.Description = "10 peer IDs filling new mailboxes with 32 KiB envelopes, a new mailbox whenever one is refused, " +
			"to fill the store's quota"
		hs, stop := sw.peers(ctx, 0, 10)
		defer stop()
		s.peers = len(hs)
		var wg sync.WaitGroup
		for _, h := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sess := relay.NewSession(h, hp.id, 10*time.Second)
				defer sess.Close()
				for ctx.Err() == nil {
					k, err := writeKey()
					if err != nil {
						return
					}
					m := envelope.MailboxFor(k.Public().(ed25519.PublicKey))
					for ctx.Err() == nil {
						env, err := makeEnvelope(k, 32<<10)
						if err != nil {
							return
						}
						err = sess.Send(ctx, m, env)
						if ctx.Err() != nil {
							return
						}
						s.outcome(err)
						if errors.Is(err, store.ErrQuotaExceeded) {
							break // full: a new mailbox
						}
						if err != nil {
							// Slowed down: the same mailbox again shortly.
							select {
							case <-ctx.Done():
							case <-time.After(50 * time.Millisecond):
							}
						}
					}
				}
			}()
		}
		wg.Wait()
	case AttackFlood:
		run.Description = "10 peer IDs, each sending valid 1 KiB envelopes into a mailbox of its own as fast as it can " +
			"(32 in flight on a relay session)"
		hs, stop := sw.peers(ctx, 0, 10)
		defer stop()
		s.peers = len(hs)
		var wg sync.WaitGroup
		for _, h := range hs {
			k, err := writeKey()
			if err != nil {
				return
			}
			m := envelope.MailboxFor(k.Public().(ed25519.PublicKey))
			sess := relay.NewSession(h, hp.id, 10*time.Second)
			defer sess.Close()
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						env, err := makeEnvelope(k, 1024)
						if err != nil {
							return
						}
						err = sess.Send(ctx, m, env)
						if ctx.Err() == nil {
							s.outcome(err)
						}
					}
				}()
			}
		}
		wg.Wait()
	}
}

// idle keeps per streams of proto open from h, each sending the protocol
// header and then nothing (or one byte of a length prefix that never
// ends), reopened as soon as the host resets one.
func idle(ctx context.Context, wg *sync.WaitGroup, h host.Host, to peer.ID, proto protocol.ID, per int, s *attackerStats) {
	for i := range per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				st, err := h.NewStream(ctx, to, proto)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				s.streams.Add(1)
				if i%2 == 1 {
					_, _ = st.Write([]byte{0x80})
				} else {
					_, _ = st.Write(nil)
				}
				done := make(chan struct{})
				go func() {
					_, _ = st.Read(make([]byte, 1))
					close(done)
				}()
				select {
				case <-done:
				case <-ctx.Done():
				}
				_ = st.Reset()
			}
		}()
	}
}

// sendNoProof relays env with the one-request protocol and does not
// answer a request for proof of work (an attacker's client).
func sendNoProof(ctx context.Context, h host.Host, to peer.ID, env *envelope.Envelope) error {
	return relay.SendWith(ctx, h, to, env.Mailbox(), env, 10*time.Second, 0)
}
