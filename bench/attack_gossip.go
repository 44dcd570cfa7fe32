package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/hostsync"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/relay"
)

// The attacks on the sync protocol and on gossip, beyond issue 14's four.

// attackSync keeps idle and slow sync sessions open from 16 peer IDs:
// two streams each that send the protocol header and nothing, and two
// sessions each that send a hello for a mailbox of their own and then
// nothing, reopened as soon as the host resets them.
func attackSync(ctx context.Context, sw swarm, s *attackerStats, run *AttackRun) {
	run.Description = "16 peer IDs x 2 idle sync 2.0.0 streams (the protocol header, then nothing) and 2 slow sync sessions " +
		"(a hello for a mailbox of their own, then nothing), reopened as soon as the host resets them"
	hs, stop := sw.peers(ctx, 0, 16)
	defer stop()
	s.peers = len(hs)
	var wg sync.WaitGroup
	for _, h := range hs {
		for i := range 4 {
			var first []byte
			if i%2 == 1 {
				var m envelope.MailboxID
				_, _ = rand.Read(m[:])
				first = syncHello(m)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				holdStreams(ctx, h, sw.hp.id, first, s)
			}()
		}
	}
	wg.Wait()
}

// holdStreams opens a sync stream from h, writes first (nothing: only
// the protocol header), and waits for the host to end it; again and
// again until ctx ends.
func holdStreams(ctx context.Context, h host.Host, to peer.ID, first []byte, s *attackerStats) {
	for ctx.Err() == nil {
		st, err := h.NewStream(ctx, to, hostsync.ProtocolID)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		s.streams.Add(1)
		_, _ = st.Write(first)
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, st)
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
		}
		_ = st.Reset()
	}
}

// syncHello is a sync hello for m (hostsync's layout: type 1, version 2,
// the mailbox, reconcile's default limits), framed.
func syncHello(m envelope.MailboxID) []byte {
	rp := reconcile.DefaultParams()
	b := []byte{1, 2}
	b = append(b, m[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(rp.MaxMessageSize))
	b = binary.BigEndian.AppendUint32(b, uint32(rp.MaxRounds))
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// attackSubscriptions makes 24 peer IDs gossipsub peers of the host that
// announce new mailbox topics, 500 per RPC, for as long as the attack
// lasts.
func attackSubscriptions(ctx context.Context, sw swarm, s *attackerStats, run *AttackRun) {
	run.Description = "24 peer IDs, each a gossipsub peer of the host, announcing subscriptions to new mailbox topics " +
		"(500 per RPC, as fast as the host reads them)"
	hs, stop := sw.peers(ctx, 0, 24)
	defer stop()
	s.peers = len(hs)
	var wg sync.WaitGroup
	for _, h := range hs {
		// Accept the host's gossipsub stream, so it counts the attacker
		// as a peer, and ignore what it sends.
		h.SetStreamHandler(pubsub.GossipSubID_v12, func(st network.Stream) { _, _ = io.Copy(io.Discard, st); _ = st.Reset() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				st, err := h.NewStream(ctx, sw.hp.id, pubsub.GossipSubID_v12, pubsub.GossipSubID_v11)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				s.streams.Add(1)
				_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
				for ctx.Err() == nil {
					if _, err := st.Write(subscriptionRPC(randomTopics(500))); err != nil {
						break
					}
					s.announced.Add(500)
					_ = st.SetWriteDeadline(time.Now().Add(10 * time.Second))
				}
				_ = st.Reset()
			}
		}()
	}
	wg.Wait()
}

// randomTopics returns n mailbox topic names of random mailboxes' form.
func randomTopics(n int) []string {
	out := make([]string, n)
	var h [32]byte
	for i := range out {
		_, _ = rand.Read(h[:])
		out[i] = relay.TopicPrefix + hex.EncodeToString(h[:])
	}
	return out
}

// subscriptionRPC is a gossipsub RPC subscribing to topics, built by hand
// (RPC.subscriptions = 1, SubOpts.subscribe = 1, SubOpts.topicid = 2) and
// framed with a uvarint length as pubsub reads it.
func subscriptionRPC(topics []string) []byte {
	var rpc []byte
	for _, topic := range topics {
		sub := []byte{0x08, 1, 0x12}
		sub = binary.AppendUvarint(sub, uint64(len(topic)))
		sub = append(sub, topic...)
		rpc = append(rpc, 0x0a)
		rpc = binary.AppendUvarint(rpc, uint64(len(sub)))
		rpc = append(rpc, sub...)
	}
	return append(binary.AppendUvarint(nil, uint64(len(rpc))), rpc...)
}
