package node

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/directory"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/hostsync"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/store"
)

// syncGate are the sync limits of the sync attack test: twelve active
// sessions, six of them reserved for established mailboxes; three
// general and four privileged ones per network.
var syncGate = admission.GateParams{
	MaxPending: 16, PendingPerPrefix: 6, PendingPerPeer: 2,
	MaxStreams: 12, ReservedStreams: 6, PerPrefix: 3, PrivilegedPerPrefix: 4, PerPeer: 2,
}

// syncHello is a sync hello for m (hostsync's byte layout, version 2,
// reconcile's default limits), framed.
func syncHello(m envelope.MailboxID) []byte {
	rp := reconcile.DefaultParams()
	b := []byte{0x01, 2}
	b = append(b, m[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(rp.MaxMessageSize))
	b = binary.BigEndian.AppendUint32(b, uint32(rp.MaxRounds))
	return appendFrame(nil, b)
}

// slowSyncs keeps per streams of the sync protocol open from h to the
// host until ctx ends (holdStreams): with hello nil, streams that send
// nothing after the protocol header; otherwise sessions that send
// hello(i) and then nothing (slow sessions).
func slowSyncs(ctx context.Context, wg *sync.WaitGroup, h host.Host, to peer.ID, per int, hello func(int) []byte, opened *atomic.Int64) {
	holdStreams(ctx, wg, h, to, hostsync.ProtocolID, per, hello, opened)
}

// holdStreams keeps per streams of proto open from h to the host until
// ctx ends, reopening each as the host resets it: with first nil,
// streams that send nothing after the protocol header; otherwise
// streams that send first(i) and then nothing.
func holdStreams(ctx context.Context, wg *sync.WaitGroup, h host.Host, to peer.ID, proto protocol.ID, per int, first func(int) []byte, opened *atomic.Int64) {
	for i := range per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				s, err := h.NewStream(ctx, to, proto)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				opened.Add(1)
				if first != nil {
					_, _ = s.Write(first(i))
				} else {
					_, _ = s.Write(nil)
				}
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

// syncPeer is another host of a mailbox, outside any node: a libp2p host
// on ip, a store on disk and a sync service, syncing only when told.
type syncPeer struct {
	h  host.Host
	st *store.Store
	sv *hostsync.Service
}

func newSyncPeer(t *testing.T, ip string, hst *Node, k ed25519.PrivateKey, history int) *syncPeer {
	t.Helper()
	dir := t.TempDir()
	seedStore(t, dir, hostParams().Store, time.Now().Add(-48*time.Hour), []ed25519.PrivateKey{k}, history)
	st, err := store.Open(dir, hostParams().Store, store.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := rawHost(t, ip)
	p := hostsync.DefaultParams()
	p.Interval = time.Hour
	sv, err := hostsync.New(h, st, func(ctx context.Context, e *envelope.Envelope, _ peer.ID) (bool, error) {
		r, err := st.Put(ctx, e)
		return r.Duplicate, err
	}, nil, hostsync.WithParams(p), hostsync.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sv.Close() })
	dial(t, h, hst)
	return &syncPeer{h: h, st: st, sv: sv}
}

// Idle and slow sync sessions from many peer IDs of one network: streams
// that never send a hello, sessions for new mailboxes that send a hello
// and then nothing, and insiders' sessions for the established mailbox
// that do the same. A member on another network catches up, and another
// host of the established mailbox syncs with the host, every time; the
// attackers hold no more than their network's share of the sync gate.
func TestSyncSlowlorisFromManyPeers(t *testing.T) {
	leakCheck(t)
	hst, k := establishedHost(t, func(p *Params) {
		p.Admission.Sync = syncGate
		p.Sync.HelloTimeout = 2 * time.Second
		p.Sync.IdleTimeout = 20 * time.Second
		p.Sync.SessionRate = 0
	})
	m := tu.Mailbox(k)
	ctx, stop := context.WithCancel(context.Background())
	var opened atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		a := rawHost(t, fmt.Sprintf("%s%d", attackerNet, i+1))
		dial(t, a, hst)
		fresh := func(int) []byte { return syncHello(tu.Mailbox(tu.WriteKey(t))) }
		slowSyncs(ctx, &wg, a, hst.ID(), 2, nil, &opened)
		slowSyncs(ctx, &wg, a, hst.ID(), 2, fresh, &opened)
		slowSyncs(ctx, &wg, a, hst.ID(), 1, func(int) []byte { return syncHello(m) }, &opened)
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	tu.Eventually(t, 30*time.Second, func() bool {
		u := hst.Admission().Sync().Usage()
		return opened.Load() > 100 && u.Active >= syncGate.PerPrefix
	}, "the attack to hold sync sessions")

	mem := newMember(t, memberNet+"1", hst, k)
	other := newSyncPeer(t, memberNet+"5", hst, k, 20)
	want := 50 + 20
	for i := range 10 {
		if n, err := mem.catchUp(context.Background()); err != nil || n < 50 {
			t.Fatalf("catch-up %d during the attack: %d envelopes, %v", i, n, err)
		}
		env := tu.Envelope(t, k, 500)
		if _, err := other.st.Put(context.Background(), env); err != nil {
			t.Fatal(err)
		}
		want++
		st, err := other.sv.SyncWith(context.Background(), hst.ID(), m)
		if err != nil {
			t.Fatalf("host-to-host sync %d of the established mailbox during the attack: %v", i, err)
		}
		if ok, err := hst.Store().Has(m, env.ID()); err != nil || !ok {
			t.Fatalf("sync %d (%+v) did not bring the new envelope: %v", i, st, err)
		}
		u := hst.Admission().Sync().Usage()
		if u.Pending > syncGate.MaxPending || u.Active > syncGate.MaxStreams || u.General > syncGate.MaxStreams-syncGate.ReservedStreams {
			t.Fatalf("sync gate over its limits: %+v", u)
		}
	}
	if got := count(t, hst, m); got != want {
		t.Fatalf("host holds %d envelopes of the established mailbox, want %d", got, want)
	}
	reasons := map[admission.Reason]uint64{}
	for _, r := range hst.AdmissionState().Refusals {
		reasons[r.Reason] = r.Total
	}
	if reasons[admission.ReasonIdleEvicted]+reasons[admission.ReasonIdleTimeout] == 0 || reasons[admission.ReasonStreamsBusy] == 0 {
		t.Errorf("idle or slow sync sessions not refused: %v", reasons)
	}
	if st := hst.AdmissionState(); !st.UnderPressure {
		t.Error("host under attack does not report pressure")
	}
	stop()
	wg.Wait()
	tu.Eventually(t, 30*time.Second, func() bool { return !hst.AdmissionState().UnderPressure }, "the host to recover")
	if _, err := other.sv.SyncWith(context.Background(), hst.ID(), m); err != nil {
		t.Fatalf("sync after the attack: %v", err)
	}
}

// Idle directory streams from many peer IDs of two networks (the
// protocol header, then nothing, reopened as soon as the host resets
// them): a client on another network still gets an answer to every
// lookup, and the idle streams hold no more than the directory gate's
// pending places.
func TestDirectorySlowlorisFromManyPeers(t *testing.T) {
	leakCheck(t)
	gate := admission.GateParams{
		MaxPending: 12, PendingPerPrefix: 4, PendingPerPeer: 2,
		MaxStreams: 8, ReservedStreams: 2, PerPrefix: 2, PrivilegedPerPrefix: 4, PerPeer: 2,
	}
	hst, _ := establishedHost(t, func(p *Params) {
		p.Admission.Directory = gate
		p.Directory.RequestTimeout = time.Minute // only the gate makes room
	})
	if hst.Directory() == nil {
		t.Fatal("the host serves no directory")
	}
	ctx, stop := context.WithCancel(context.Background())
	var opened atomic.Int64
	var wg sync.WaitGroup
	for _, net := range []string{attackerNet, "127.0.3."} {
		for i := range 12 {
			a := rawHost(t, fmt.Sprintf("%s%d", net, i+1))
			dial(t, a, hst)
			holdStreams(ctx, &wg, a, hst.ID(), directory.ProtocolID, 4, nil, &opened)
		}
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	tu.Eventually(t, 30*time.Second, func() bool {
		return opened.Load() > 200 && refused(hst, admission.ReasonIdleEvicted)
	}, "the attack to churn the directory gate")

	h := rawHost(t, memberNet+"1")
	dial(t, h, hst)
	cl := directory.NewClient(h, time.Minute)
	for i := range 10 {
		var name keymgmt.NameHash
		name[0] = byte(i)
		if _, err := cl.Fetch(context.Background(), hst.ID(), name); !errors.Is(err, directory.ErrUnknownName) {
			t.Fatalf("lookup %d during the attack: %v; want an answer (unknown name)", i, err)
		}
		if u := hst.Admission().Directory().Usage(); u.Pending > gate.MaxPending || u.Active > gate.MaxStreams {
			t.Fatalf("directory gate over its limits: %+v", u)
		}
	}
}
