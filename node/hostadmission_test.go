package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// Attack tests (issue 14): real libp2p over TCP loopback, with the host's
// loopback exemption turned off so that 127.0.1.0/24 (members) and
// 127.0.2.0/24 (attackers, many throwaway peer IDs, one address each) are
// two networks. They assert behaviours, never timings.

const (
	memberNet   = "127.0.1."
	attackerNet = "127.0.2."
)

// attackParams are a host's parameters for the attack tests: open,
// loopback not exempt, small gates.
func attackParams(tweak func(*Params)) func(*Params) {
	return func(p *Params) {
		p.HostPolicy = PolicyOpen
		p.Admission.ExemptLoopback = false
		p.Admission.PressureWindow = 2 * time.Second
		p.Admission.Relay = admission.GateParams{
			MaxPending: 32, PendingPerPrefix: 12, PendingPerPeer: 4,
			MaxStreams: 32, ReservedStreams: 12, PerPrefix: 8, PrivilegedPerPrefix: 16, PerPeer: 8,
		}
		p.Admission.Fetch = admission.GateParams{
			MaxPending: 16, PendingPerPrefix: 8, PendingPerPeer: 4,
			MaxStreams: 16, ReservedStreams: 6, PerPrefix: 4, PrivilegedPerPrefix: 8, PerPeer: 4,
		}
		p.Admission.StreamsPerPrefix = 96
		p.Admission.ConnsPerPrefix = 64
		p.Relay.RequestTimeout = 2 * time.Second
		p.Fetch.RequestTimeout = 2 * time.Second
		if tweak != nil {
			tweak(p)
		}
	}
}

// rawHost is a bare libp2p host (no node) listening on ip, so its
// connections to the host come from ip: a member's client or an
// attacker's throwaway peer ID.
func rawHost(t testing.TB, ip string) host.Host {
	t.Helper()
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func dial(t testing.TB, h host.Host, n *Node) {
	t.Helper()
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// seedStore fills dir (a host's data directory) with mailboxes that
// existed since at, each holding per envelopes of 1 KiB: the host's
// established mailboxes.
func seedStore(t testing.TB, dir string, p store.Params, at time.Time, keys []ed25519.PrivateKey, per int) {
	t.Helper()
	st, err := store.Open(dir, p, store.WithLogger(quiet), store.WithClock(func() time.Time { return at }))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for range per {
			if _, err := st.Put(context.Background(), tu.Envelope(t, k, 1024-envelope.Overhead)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// establishedHost starts an open host whose store holds an established
// mailbox (two days old, 50 envelopes), and returns its write key.
func establishedHost(t *testing.T, tweak func(*Params)) (*Node, ed25519.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	p := hostParams()
	attackParams(tweak)(&p)
	k := tu.WriteKey(t)
	// The history was written before this test's budgets.
	sp := p.Store
	sp.Admission, sp.GlobalQuotaBytes = store.AdmissionParams{}, 0
	seedStore(t, dir, sp, time.Now().Add(-48*time.Hour), []ed25519.PrivateKey{k}, 50)
	n := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: dir, tweak: attackParams(tweak)})
	if n.classify(tu.Mailbox(k)) != admission.ClassEstablished {
		t.Fatal("seeded mailbox is not established")
	}
	return n, k
}

// memberClient is a member's client from 127.0.1.x: catch-ups and sends.
type memberClient struct {
	h   host.Host
	cl  *fetch.Client
	k   ed25519.PrivateKey
	hst *Node
}

func newMember(t *testing.T, ip string, hst *Node, k ed25519.PrivateKey) *memberClient {
	t.Helper()
	h := rawHost(t, ip)
	dial(t, h, hst)
	cl, err := fetch.NewClient(h, fetch.DefaultParams(), false)
	if err != nil {
		t.Fatal(err)
	}
	return &memberClient{h: h, cl: cl, k: k, hst: hst}
}

func (m *memberClient) catchUp(ctx context.Context) (int, error) {
	_, n, err := m.cl.CatchUp(ctx, m.hst.ID(), tu.Mailbox(m.k), nil, func(store.Page) error { return nil })
	return n, err
}

func (m *memberClient) send(ctx context.Context, t *testing.T) (*envelope.Envelope, error) {
	env := tu.Envelope(t, m.k, 1024-envelope.Overhead)
	return env, relay.Send(ctx, m.h, m.hst.ID(), tu.Mailbox(m.k), env, 10*time.Second)
}

// idleStreams keeps up to per streams of each protocol open from h to the
// host, sending the protocol header and then nothing (or one byte of a
// length prefix that never ends), reopening each as the host resets it,
// until ctx ends. It returns how many it opened.
func idleStreams(ctx context.Context, h host.Host, to peer.ID, per int, opened *atomic.Int64) {
	var wg sync.WaitGroup
	for _, proto := range []protocol.ID{fetch.StreamProtocolID, fetch.ProtocolID, relay.SessionProtocolID, relay.ProtocolID, ""} {
		for i := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					var s network.Stream
					var err error
					if proto == "" {
						// No protocol at all: a stream left in negotiation.
						s, err = h.Network().NewStream(ctx, to)
					} else {
						s, err = h.NewStream(ctx, to, proto)
					}
					if err != nil {
						select {
						case <-ctx.Done():
						case <-time.After(20 * time.Millisecond):
						}
						continue
					}
					opened.Add(1)
					if i%2 == 1 && proto != "" {
						_, _ = s.Write([]byte{0x80}) // a length prefix that never ends
					} else if proto != "" {
						_, _ = s.Write(nil) // the protocol header only
					}
					// Held until the host resets it or the attack ends.
					done := make(chan struct{})
					go func() {
						_, _ = s.Read(make([]byte, 1))
						close(done)
					}()
					select {
					case <-done:
					case <-ctx.Done():
					}
					_ = s.Reset()
				}
			}()
		}
	}
	wg.Wait()
}

// Slowloris from many peer IDs of one network: idle fetch and relay
// streams, and streams that never negotiate a protocol, opened as fast as
// the host resets them. A member on another network catches up and sends
// every time, and the attacker holds no more than its share.
func TestSlowlorisFromManyPeers(t *testing.T) {
	leakCheck(t)
	hst, k := establishedHost(t, nil)
	ctx, stop := context.WithCancel(context.Background())
	var opened atomic.Int64
	var wg sync.WaitGroup
	for i := range 24 {
		a := rawHost(t, fmt.Sprintf("%s%d", attackerNet, i+1))
		dial(t, a, hst)
		wg.Add(1)
		go func() {
			defer wg.Done()
			idleStreams(ctx, a, hst.ID(), 8, &opened)
		}()
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	tu.Eventually(t, 20*time.Second, func() bool {
		u := hst.Admission().Fetch().Usage()
		return opened.Load() > 500 && u.Pending >= 8
	}, "the attack to fill the host's pending streams")

	m := newMember(t, memberNet+"1", hst, k)
	for i := range 10 {
		n, err := m.catchUp(context.Background())
		if err != nil || n < 50 {
			t.Fatalf("catch-up %d during the attack: %d envelopes, %v", i, n, err)
		}
		if _, err := m.send(context.Background(), t); err != nil {
			t.Fatalf("send %d during the attack: %v", i, err)
		}
		if u := hst.Admission().Fetch().Usage(); u.Pending > 16 || u.General > 16-6 {
			t.Fatalf("fetch gate over its limits: %+v", u)
		}
	}
	st := hst.AdmissionState()
	if !st.UnderPressure {
		t.Error("host under attack does not report pressure")
	}
	reasons := map[admission.Reason]uint64{}
	for _, r := range st.Refusals {
		reasons[r.Reason] = r.Total
	}
	if reasons[admission.ReasonIdleEvicted]+reasons[admission.ReasonIdleTimeout]+reasons[admission.ReasonPrefixStreams] == 0 {
		t.Errorf("no idle streams refused: %v", reasons)
	}
	// The attack stops; the host is back to normal within its pressure
	// window and serves as before.
	stop()
	wg.Wait()
	tu.Eventually(t, 30*time.Second, func() bool { return !hst.AdmissionState().UnderPressure }, "the host to recover")
	if n, err := m.catchUp(context.Background()); err != nil || n != 60 {
		t.Fatalf("catch-up after the attack: %d envelopes, %v", n, err)
	}
}

// A flood of new mailboxes from many peer IDs of one network: the
// network's rate admits its burst and refuses the rest as rate limited;
// once the host's total is spent, a new mailbox from another network
// needs a proof of work, which the relay client computes. Topics joined
// stay within MaxJoinedTopics however many mailboxes are hosted.
func TestNewMailboxFlood(t *testing.T) {
	leakCheck(t)
	hst, _ := establishedHost(t, func(p *Params) {
		p.Admission.NewMailboxRatePerPrefix, p.Admission.NewMailboxBurstPerPrefix = 0.01, 30
		p.Admission.NewMailboxRate, p.Admission.NewMailboxBurst = 0.01, 40
		p.Admission.NewMailboxProofBits = 10
		p.MaxJoinedTopics = 16
	})
	before := runtime.NumGoroutine()
	var admitted, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 10 {
		a := rawHost(t, fmt.Sprintf("%s%d", attackerNet, i+1))
		dial(t, a, hst)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				k := tu.WriteKey(t)
				// The attacker does not solve proofs: its client is not ours.
				err := rawSend(a, hst.ID(), tu.Mailbox(k), tu.Envelope(t, k, 200))
				switch {
				case err == nil:
					admitted.Add(1)
				case errors.Is(err, status.ErrRateLimited):
					limited.Add(1)
				case errors.Is(err, status.ErrBusy):
					// Its network's share of relay streams is taken.
				default:
					t.Errorf("attacker's new mailbox: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if admitted.Load() > 30 || limited.Load() == 0 {
		t.Fatalf("from one network: %d new mailboxes admitted (burst 30), %d rate limited", admitted.Load(), limited.Load())
	}
	// Another network: the host's total (40) is spent after 10 more, then
	// a proof of work is asked for, and the relay client computes it.
	other := rawHost(t, memberNet+"2")
	dial(t, other, hst)
	for i := range 15 {
		k := tu.WriteKey(t)
		err := rawSend(other, hst.ID(), tu.Mailbox(k), tu.Envelope(t, k, 200))
		if i >= 12 && !errors.Is(err, status.ErrProofRequired) {
			t.Fatalf("new mailbox %d past the host's total without a proof: %v", i, err)
		}
		if err := relay.Send(context.Background(), other, hst.ID(), tu.Mailbox(k), tu.Envelope(t, k, 200), 10*time.Second); err != nil {
			t.Fatalf("new mailbox %d with the client's proof: %v", i, err)
		}
	}
	if j := hst.Relay().JoinedCount(); j > 16 {
		t.Fatalf("%d topics joined, MaxJoinedTopics 16", j)
	}
	if g := runtime.NumGoroutine() - before; g > 400 {
		t.Fatalf("%d more goroutines for %d new mailboxes", g, hst.HostedCount())
	}
}

// rawSend relays env with the one-request protocol and no proof solving
// (an attacker's client).
func rawSend(h host.Host, to peer.ID, m envelope.MailboxID, env *envelope.Envelope) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, to, relay.ProtocolID)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	req := append([]byte{1}, m[:]...)
	req = append(req, env.Bytes()...)
	if _, err := s.Write(appendFrame(nil, req)); err != nil {
		return err
	}
	_ = s.CloseWrite()
	b := make([]byte, 1024)
	n, err := readAll(s, b)
	if n < 4 {
		return fmt.Errorf("short answer: %v", err)
	}
	// uvarint length (one byte here) ‖ code ‖ uint16 len ‖ message ‖ [bits]
	code := status.Code(b[1])
	msgLen := int(b[2])<<8 | int(b[3])
	if code == status.ProofRequired && n >= 4+msgLen+1 {
		return status.ProofError(b[4+msgLen], string(b[4:4+msgLen]))
	}
	return code.Err(string(b[4:min(n, 4+msgLen)]))
}

func appendFrame(b, body []byte) []byte {
	for v := uint64(len(body)); ; v >>= 7 {
		if v < 0x80 {
			b = append(b, byte(v))
			break
		}
		b = append(b, byte(v)|0x80)
	}
	return append(b, body...)
}

func readAll(s network.Stream, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := s.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Store-full from many peer IDs: attackers fill what new mailboxes may
// hold; members of the established mailbox still send every envelope,
// and no acknowledged envelope is lost.
func TestStoreFullProtectsEstablished(t *testing.T) {
	leakCheck(t)
	hst, k := establishedHost(t, func(p *Params) {
		p.Store.GlobalQuotaBytes = 256 << 10
		p.Store.Admission.NewMailboxQuotaBytes = 32 << 10
		p.Store.Admission.ReserveFraction = 0.25
		p.Admission.NewMailboxBurstPerPrefix, p.Admission.NewMailboxBurst = 1000, 1000
	})
	var acked sync.Map
	var full atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		a := rawHost(t, fmt.Sprintf("%s%d", attackerNet, i+1))
		dial(t, a, hst)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				ak := tu.WriteKey(t)
				for range 40 {
					env := tu.Envelope(t, ak, 1024-envelope.Overhead)
					err := relay.Send(context.Background(), a, hst.ID(), tu.Mailbox(ak), env, 10*time.Second)
					switch {
					case err == nil:
						acked.Store(env.ID(), env.Mailbox())
					case errors.Is(err, store.ErrQuotaExceeded):
						full.Add(1)
					case errors.Is(err, status.ErrRateLimited), errors.Is(err, status.ErrBusy):
					default:
						t.Errorf("attacker: %v", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if full.Load() == 0 {
		t.Fatal("the attackers filled nothing")
	}
	if u := hst.Store().AdmissionUsage(); !u.NewRefused {
		t.Fatalf("store not at the share open to new mailboxes: %+v", u)
	}
	// The member sends well past the reserve: the newest new mailboxes give way.
	m := newMember(t, memberNet+"1", hst, k)
	var mine []*envelope.Envelope
	for i := range 120 {
		env, err := m.send(context.Background(), t)
		if err != nil {
			t.Fatalf("member's send %d with the store full of new mailboxes: %v", i, err)
		}
		mine = append(mine, env)
	}
	for _, env := range mine {
		if ok, err := hst.Store().Has(env.Mailbox(), env.ID()); err != nil || !ok {
			t.Fatalf("member's acknowledged envelope %s not stored: %v", env.ID().Short(), err)
		}
	}
	// Attackers' envelopes were acknowledged, then some were evicted for
	// the member's: each is either held or tombstoned, never silently lost.
	evicted := 0
	acked.Range(func(id, mb any) bool {
		ok, err := hst.Store().Has(mb.(envelope.MailboxID), id.(envelope.ID))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			var tomb bool
			_ = hst.Store().RangeIDs(mb.(envelope.MailboxID), id.(envelope.ID), envelope.ID{}, func(got envelope.ID, live bool) bool {
				tomb = got == id.(envelope.ID) && !live
				return false
			})
			if !tomb {
				t.Fatalf("acknowledged envelope %s neither held nor tombstoned", id.(envelope.ID).Short())
			}
			evicted++
		}
		return true
	})
	if evicted == 0 {
		t.Error("the member's sends past the quota evicted nothing of the new mailboxes")
	}
	reasons := map[admission.Reason]uint64{}
	for _, r := range hst.AdmissionState().Refusals {
		reasons[r.Reason] = r.Total
	}
	if reasons[admission.ReasonQuotaReserve]+reasons[admission.ReasonQuotaNew]+reasons[admission.ReasonPrefixBytes] == 0 {
		t.Errorf("no storage refusal counted: %v", reasons)
	}
}

// Many peer IDs of one network flooding valid envelopes: the network's
// rate limits the whole, not each peer ID; a member elsewhere keeps
// sending.
func TestPerPrefixRateLimitsTheWhole(t *testing.T) {
	leakCheck(t)
	hst, k := establishedHost(t, func(p *Params) {
		p.Admission.EnvelopeRatePerPrefix, p.Admission.EnvelopeBurstPerPrefix = 50, 100
		p.Relay.PeerRate, p.Relay.PeerBurst = 200, 400
	})
	// The attackers write into the established mailbox: insiders.
	var stored, limited atomic.Int64
	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for i := range 10 {
		a := rawHost(t, fmt.Sprintf("%s%d", attackerNet, i+1))
		dial(t, a, hst)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := relay.NewSession(a, hst.ID(), 10*time.Second)
			defer s.Close()
			var inner sync.WaitGroup
			for range 4 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					for j := 0; j < 50 && ctx.Err() == nil; j++ {
						err := s.Send(ctx, tu.Mailbox(k), tu.Envelope(t, k, 200))
						switch {
						case err == nil:
							stored.Add(1)
						case errors.Is(err, status.ErrRateLimited):
							limited.Add(1)
						}
					}
				}()
			}
			inner.Wait()
		}()
	}
	m := newMember(t, memberNet+"1", hst, k)
	for i := range 20 {
		if _, err := m.send(context.Background(), t); err != nil {
			t.Fatalf("member's send %d during the flood: %v", i, err)
		}
	}
	wg.Wait()
	if limited.Load() == 0 || stored.Load() >= 2000 {
		t.Fatalf("10 peer IDs of one network: %d stored, %d rate limited; want the network's rate to refuse some", stored.Load(), limited.Load())
	}
}

// A host restarted with many stored mailboxes joins none of their topics
// until they are active, and then at most MaxJoinedTopics.
func TestRestartWithManyMailboxes(t *testing.T) {
	leakCheck(t)
	const mailboxes = 2000
	dir := t.TempDir()
	p := hostParams()
	keys := make([]ed25519.PrivateKey, mailboxes)
	for i := range keys {
		keys[i] = tu.WriteKey(t)
	}
	seedStore(t, dir, p.Store, time.Now().Add(-48*time.Hour), keys, 1)
	before := runtime.NumGoroutine()
	hst := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: dir, tweak: func(p *Params) { p.MaxJoinedTopics = 32 }})
	if hst.HostedCount() != mailboxes {
		t.Fatalf("hosts %d mailboxes, want %d", hst.HostedCount(), mailboxes)
	}
	if j := hst.Relay().JoinedCount(); j != 0 {
		t.Fatalf("%d topics joined at start", j)
	}
	if g := runtime.NumGoroutine() - before; g > 300 {
		t.Fatalf("%d goroutines for a host of %d mailboxes", g, mailboxes)
	}
	m := newMember(t, memberNet+"1", hst, keys[0])
	for i := range 100 {
		m.k = keys[i]
		if n, err := m.catchUp(context.Background()); err != nil || n != 1 {
			t.Fatalf("catch-up of mailbox %d: %d, %v", i, n, err)
		}
		if _, err := m.send(context.Background(), t); err != nil {
			t.Fatal(err)
		}
	}
	tu.Eventually(t, 10*time.Second, func() bool { return hst.Relay().JoinedCount() > 0 }, "active mailboxes' topics to be joined")
	if j := hst.Relay().JoinedCount(); j > 32 {
		t.Fatalf("%d topics joined, MaxJoinedTopics 32", j)
	}
}

// Mailboxes the node hosts on purpose stay joined however many others
// become active; a peer announcing the topic of a hosted mailbox makes it
// active.
func TestTopicsJoinedWhileActive(t *testing.T) {
	leakCheck(t)
	dir := t.TempDir()
	keys := make([]ed25519.PrivateKey, 40)
	for i := range keys {
		keys[i] = tu.WriteKey(t)
	}
	seedStore(t, dir, hostParams().Store, time.Now().Add(-48*time.Hour), keys, 1)
	hst := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: dir, tweak: func(p *Params) { p.MaxJoinedTopics = 8 }})
	pinned := tu.Mailbox(tu.WriteKey(t))
	if err := hst.HostMailbox(pinned); err != nil {
		t.Fatal(err)
	}
	m := newMember(t, memberNet+"1", hst, keys[0])
	for _, k := range keys[1:] {
		m.k = k
		if _, err := m.send(context.Background(), t); err != nil {
			t.Fatal(err)
		}
	}
	tu.Eventually(t, 10*time.Second, func() bool { return hst.Relay().JoinedCount() == 9 }, "8 active topics and the pinned one joined")
	if !hst.Relay().Joined(pinned) {
		t.Fatal("the pinned mailbox's topic was left")
	}
	// A member subscribing to an idle hosted mailbox's topic.
	idle := tu.Mailbox(keys[0])
	if hst.Relay().Joined(idle) {
		t.Fatal("the first mailbox is still joined after 38 others were active")
	}
	sub := startNode(t, nodeOpts{})
	connect(t, sub, hst)
	if err := sub.HostMailbox(idle); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return hst.Relay().Joined(idle) }, "the host to join the topic a peer announced")
	if j := hst.Relay().JoinedCount(); j > 9 {
		t.Fatalf("%d topics joined, 8 active and 1 pinned at most", j)
	}
}
