package hostsync

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/reconcile"
)

// evilPeer is a raw libp2p host that speaks the sync protocol by hand.
type evilPeer struct {
	h host.Host
}

func newEvil(t *testing.T, honest *testNode) *evilPeer {
	t.Helper()
	e := &evilPeer{h: newHost(t)}
	if err := e.h.Connect(context.Background(), peer.AddrInfo{ID: honest.h.ID(), Addrs: honest.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return e
}

// open starts a session to the honest node and writes the given hello.
func (e *evilPeer) open(t *testing.T, to peer.ID, hb []byte, more ...[]byte) (*conn, network.Stream) {
	t.Helper()
	str, err := e.h.NewStream(context.Background(), to, ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { str.Reset() })
	c := newConn(str, time.Now().Add(10*time.Second), 10*time.Second)
	for _, b := range append([][]byte{hb}, more...) {
		if err := c.write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	return c, str
}

// reconcileAs opens a session as an initiator holding ids and runs the
// reconciliation to its end, honestly.
func (e *evilPeer) reconcileAs(t *testing.T, to peer.ID, m envelope.MailboxID, ids ...envelope.ID) *conn {
	t.Helper()
	ini, err := reconcile.NewInitiator(reconcile.NewMemSet(ids...), reconcile.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	first, err := ini.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	c, _ := e.open(t, to, defaultHello(m).marshal(), marshalReconcile(first))
	if code := readStatusCode(t, c); code != status.OK {
		t.Fatalf("session refused: %v", code)
	}
	for {
		_, b, err := c.read(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		reply, done, err := ini.Reconcile(b[1:])
		if err != nil {
			t.Fatal(err)
		}
		if reply != nil {
			if err := c.write(marshalReconcile(reply)); err != nil {
				t.Fatal(err)
			}
			if err := c.flush(); err != nil {
				t.Fatal(err)
			}
		}
		if done {
			return c
		}
	}
}

func readStatusCode(t *testing.T, c *conn) status.Code {
	t.Helper()
	_, b, err := c.read(maxStatusSize)
	if err != nil {
		t.Fatalf("reading status: %v", err)
	}
	sf, err := parseStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	return sf.code
}

// serveAs makes the evil host answer sessions as a responder holding ids,
// reconciling honestly, then pushing push(id) for every ID it holds that
// the initiator lacks.
func (e *evilPeer) serveAs(ids []envelope.ID, push func(envelope.ID) []byte) {
	e.h.SetStreamHandler(ProtocolID, func(str network.Stream) {
		defer str.Reset()
		c := newConn(str, time.Now().Add(10*time.Second), 10*time.Second)
		if _, _, err := c.read(helloSize); err != nil {
			return
		}
		res, _ := reconcile.NewResponder(reconcile.NewMemSet(ids...), reconcile.DefaultParams())
		_ = c.write((&statusFrame{code: status.OK}).marshal())
		for {
			_, b, err := c.read(1 << 21)
			if err != nil {
				return
			}
			if b[0] == byte(frameDone) {
				for _, id := range res.Have() {
					_ = c.write(push(id))
				}
				_ = c.write((&statusFrame{code: status.OK}).marshal())
				_ = c.flush()
				_, _, _ = c.read(1) // until the initiator hangs up
				return
			}
			if b[0] != byte(frameReconcile) {
				continue
			}
			reply, _, err := res.Reconcile(b[1:])
			if err != nil {
				return
			}
			if reply != nil {
				_ = c.write(marshalReconcile(reply))
			}
			_ = c.flush()
		}
	})
}

// waitServed polls until the honest node has finished n incoming sessions.
func waitServed(t *testing.T, n *testNode, count int) []servedRun {
	t.Helper()
	tu.Eventually(t, 10*time.Second, func() bool { return len(n.served.all()) >= count }, "%d sessions served", count)
	return n.served.all()
}

// An initiator that pushes forged or unannounced envelopes is reset,
// stores nothing, gets strikes and is then refused.
func TestEvilInitiatorRejectedAndBanned(t *testing.T) {
	leakCheck(t)
	honest := newNode(t, nodeOpts{})
	evil := newEvil(t, honest)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	held := seal(t, k, 5, 300)
	put(t, honest.st, held...)
	forged, forgedID := tamper(tu.Envelope(t, k, 300))
	unannounced := tu.Envelope(t, k, 300)

	attacks := []struct {
		name string
		ids  []envelope.ID
		push []byte
		want error
	}{
		{"bad signature", append(idsOf(held), forgedID), forged, envelope.ErrBadSignature},
		{"unannounced", idsOf(held), marshalEnvelope(unannounced), ErrProtocol},
		{"another mailbox", append(idsOf(held), unannounced.ID()), marshalEnvelope(tu.Envelope(t, tu.WriteKey(t), 300)), envelope.ErrWrongMailbox},
	}
	for i, a := range attacks {
		c := evil.reconcileAs(t, honest.h.ID(), m, a.ids...)
		if err := c.write(a.push); err != nil {
			t.Fatal(err)
		}
		if err := c.flush(); err != nil {
			t.Fatal(err)
		}
		runs := waitServed(t, honest, i+1)
		if err := runs[i].err; !errors.Is(err, a.want) || !isViolation(err) {
			t.Fatalf("%s: honest side ended with %v, want %v", a.name, err, a.want)
		}
		if _, _, err := c.read(maxStatusSize); err == nil {
			t.Fatalf("%s: stream not reset", a.name)
		}
	}
	if got := liveIDs(t, honest.st, m); len(got) != len(held) {
		t.Fatalf("honest store holds %d envelopes, want the %d it had", len(got), len(held))
	}
	if !honest.sv.Banned(evil.h.ID()) {
		t.Fatalf("evil peer not banned after %d violations", len(attacks))
	}
	c, _ := evil.open(t, honest.h.ID(), defaultHello(m).marshal())
	if code := readStatusCode(t, c); code != status.RateLimited {
		t.Fatalf("banned peer's session answered %v, want %v", code, status.RateLimited)
	}
	if _, err := honest.sv.SyncWith(context.Background(), evil.h.ID(), m); !errors.Is(err, ErrBanned) {
		t.Fatalf("SyncWith to a banned peer: %v, want ErrBanned", err)
	}
}

// A responder that serves forged envelopes or ones nobody asked for makes
// the session fail; nothing is stored and it is struck.
func TestEvilResponderRejected(t *testing.T) {
	leakCheck(t)
	p := testParams()
	p.StrikesBeforeBan = 2
	honest := newNode(t, nodeOpts{params: &p})
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	forged, forgedID := tamper(tu.Envelope(t, k, 300))
	other := tu.Envelope(t, k, 300)
	wanted := tu.Envelope(t, k, 300)

	evil := newEvil(t, honest)
	evil.serveAs([]envelope.ID{forgedID}, func(envelope.ID) []byte { return forged })
	if _, err := honest.sv.SyncWith(context.Background(), evil.h.ID(), m); !errors.Is(err, envelope.ErrBadSignature) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("forged answer: %v, want a bad-signature protocol violation", err)
	}
	if honest.sv.Banned(evil.h.ID()) {
		t.Fatal("banned after one strike")
	}
	evil.serveAs([]envelope.ID{wanted.ID()}, func(envelope.ID) []byte { return marshalEnvelope(other) })
	if _, err := honest.sv.SyncWith(context.Background(), evil.h.ID(), m); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unrequested answer: %v, want a protocol violation", err)
	}
	if got, _ := ids(t, honest.st, m); len(got) != 0 {
		t.Fatalf("honest store holds %d IDs after two bad sessions", len(got))
	}
	if !honest.sv.Banned(evil.h.ID()) {
		t.Fatal("not banned after two strikes")
	}
}

// Malformed or unacceptable hellos get a clear refusal or a reset.
func TestHelloRefusals(t *testing.T) {
	leakCheck(t)
	honest := newNode(t, nodeOpts{})
	strict := newNode(t, nodeOpts{policy: denyAll{}})
	evil := newEvil(t, honest)
	connect(t, strict, honest)
	if err := evil.h.Connect(context.Background(), peer.AddrInfo{ID: strict.h.ID(), Addrs: strict.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	m := tu.Mailbox(tu.WriteKey(t))
	good := defaultHello(m).marshal()
	v1 := append([]byte(nil), good...)
	v1[1] = 1
	big := defaultHello(m)
	big.maxRounds++
	for _, tc := range []struct {
		name string
		to   *testNode
		b    []byte
		want status.Code
	}{
		{"version", honest, v1, status.Version},
		{"limits over ours", honest, big.marshal(), status.TooLarge},
		{"policy", strict, good, status.NotServed},
	} {
		c, _ := evil.open(t, tc.to.h.ID(), tc.b)
		if got := readStatusCode(t, c); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, err := honest.sv.SyncWith(context.Background(), strict.h.ID(), m); !errors.Is(err, status.ErrNotServed) || isViolation(err) {
		t.Fatalf("SyncWith to a host that does not serve the mailbox: %v", err)
	}
	for _, b := range [][]byte{{byte(frameHello), 2, 2, 3}, {byte(frameDone)}} {
		c, _ := evil.open(t, honest.h.ID(), b)
		if _, _, err := c.read(maxStatusSize); err == nil {
			t.Fatalf("hello %x: stream not reset", b)
		}
	}
	// Two strikes for the garbage (recorded before the reset we saw); the
	// refusals above were none, or this third one would ban.
	if honest.sv.Banned(evil.h.ID()) {
		t.Fatal("refusals counted as strikes")
	}
}

// A peer that stops talking is dropped after IdleTimeout on either side,
// with ErrTimeout and no strike.
func TestPeerThatNeverFinishes(t *testing.T) {
	leakCheck(t)
	p := testParams()
	p.IdleTimeout = 300 * time.Millisecond
	honest := newNode(t, nodeOpts{params: &p})
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	put(t, honest.st, seal(t, k, 50, 300)...)
	evil := newEvil(t, honest)

	// As initiator: hello and the first message, then silence.
	first, _ := exchange(t, []envelope.ID{testID(1)}, nil)
	c, _ := evil.open(t, honest.h.ID(), defaultHello(m).marshal(), first[0])
	runs := waitServed(t, honest, 1)
	if !errors.Is(runs[0].err, ErrTimeout) || isViolation(runs[0].err) {
		t.Fatalf("silent initiator: %v, want ErrTimeout", runs[0].err)
	}
	for {
		if _, _, err := c.read(1 << 20); err != nil {
			break // reset after the status and reply
		}
	}

	// As responder: accepts, then never answers.
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) })
	evil.h.SetStreamHandler(ProtocolID, func(str network.Stream) {
		c := newConn(str, time.Now().Add(time.Minute), time.Minute)
		_ = c.write((&statusFrame{code: status.OK}).marshal())
		_ = c.flush()
		<-quit
		str.Reset()
	})
	start := time.Now()
	_, err := honest.sv.SyncWith(context.Background(), evil.h.ID(), m)
	if !errors.Is(err, ErrTimeout) || isViolation(err) {
		t.Fatalf("silent responder: %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("SyncWith took %v despite a %v idle timeout", took, p.IdleTimeout)
	}
	if honest.sv.Banned(evil.h.ID()) {
		t.Fatal("timeouts must not ban")
	}
}

// craftedSession opens a session to honest as an initiator with a
// hand-built first message (level 0: one root fingerprint fp under salt),
// reads honest's reply and returns the stream.
func (e *evilPeer) craftedSession(t *testing.T, to peer.ID, m envelope.MailboxID, salt [reconcile.SaltSize]byte, fp reconcile.Fingerprint) *conn {
	t.Helper()
	first := append([]byte{reconcile.ProtocolVersion}, salt[:]...)
	first = append(first, 0)
	first = append(first, fp[:]...)
	c, _ := e.open(t, to, defaultHello(m).marshal(), marshalReconcile(first))
	if code := readStatusCode(t, c); code != status.OK {
		t.Fatalf("session refused: %v", code)
	}
	return c
}

// TestMaliciousReconcilePeers: a peer that keeps the exchange going
// forever, announces huge counts, or answers in contradiction with our
// fingerprints is cut off with a clear error and a strike, over real
// libp2p streams. The honest node holds five envelopes, so it answers a
// differing root fingerprint with an ID list of them.
func TestMaliciousReconcilePeers(t *testing.T) {
	leakCheck(t)
	p := testParams()
	p.StrikesBeforeBan = 100
	honest := newNode(t, nodeOpts{params: &p})
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	held := seal(t, k, 5, 300)
	put(t, honest.st, held...)
	evil := newEvil(t, honest)
	var salt [reconcile.SaltSize]byte
	salt[0] = 7
	theirSet := reconcile.NewMemSet(idsOf(held)...)
	root, _ := theirSet.Acc(reconcile.Node{})
	rootFP := reconcile.FingerprintOf(salt, root)
	wrong := rootFP
	wrong[0] ^= 0xff
	children := make([]reconcile.Accumulator, 16)
	_ = theirSet.Children(reconcile.Node{}, 1, children)
	var split []byte
	for _, a := range children {
		fp := reconcile.FingerprintOf(salt, a)
		split = append(split, fp[:]...)
	}
	msg := func(parts ...[]byte) []byte {
		out := []byte{reconcile.ProtocolVersion}
		for _, p := range parts {
			out = append(out, p...)
		}
		return marshalReconcile(out)
	}
	// Every reply of the honest node here is a bitmap (one byte at first)
	// and an ID list of its five keys; answers to a list carry no bitmap.
	tests := []struct {
		name    string
		answers func(round int) []byte // what the evil peer says after the honest node's round-th reply
		want    error
	}{
		{"endless deferrals", func(int) []byte { return msg([]byte{7}, wrong[:]) }, reconcile.ErrTooManyRounds},
		{"huge count in a list answer", func(int) []byte {
			return msg([]byte{6, 0}, binary.AppendUvarint(nil, 1<<40))
		}, reconcile.ErrTooLarge},
		{"unknown mode", func(int) []byte { return msg([]byte{9}) }, reconcile.ErrProtocol},
		{"cells answering a list", func(int) []byte { return msg([]byte{3, 1, 2}, bytes.Repeat([]byte{1}, 12)) }, reconcile.ErrProtocol},
		{"no difference in a list answer", func(int) []byte { return msg([]byte{6, 0, 0}) }, reconcile.ErrProtocol},
		{"deferral equal to our fingerprint", func(int) []byte { return msg([]byte{7}, rootFP[:]) }, reconcile.ErrProtocol},
		{"split whose children all match ours", func(int) []byte { return msg([]byte{1}, split) }, reconcile.ErrProtocol},
		{"trailing bytes", func(int) []byte { return msg([]byte{6, 1, 0, 9}) }, reconcile.ErrMalformed},
		{"oversized message", func(int) []byte { return msg(make([]byte, reconcile.DefaultParams().MaxMessageSize+1)) }, ErrProtocol},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := evil.craftedSession(t, honest.h.ID(), m, salt, wrong)
			for round := 0; ; round++ {
				if _, _, err := c.read(1 << 21); err != nil {
					break // the honest node reset the stream
				}
				if round > 1000 {
					t.Fatal("the honest node never cut the session off")
				}
				if c.write(tc.answers(round)) != nil || c.flush() != nil {
					break
				}
			}
			runs := waitServed(t, honest, i+1)
			err := runs[i].err
			if !errors.Is(err, tc.want) || !isViolation(err) {
				t.Fatalf("honest side ended with %v, want a violation %v", err, tc.want)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
	if got := liveIDs(t, honest.st, m); len(got) != len(held) {
		t.Fatalf("honest store holds %d envelopes, want %d", len(got), len(held))
	}
}
