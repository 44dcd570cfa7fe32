package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

func TestOutboxRecordRoundTrip(t *testing.T) {
	p1, _ := peer.Decode("12D3KooWKbqHMYhePDr82RqQiJbeRWpu5CKm6z1LTA3h9D2jQwHS")
	now := time.UnixMilli(time.Now().UnixMilli())
	for _, r := range []outboxRec{
		{state: outboxStatePnd, mailbox: envelope.MailboxID{1, 2}, created: now, next: now.Add(time.Second), attempts: 3, reason: "x: unreachable"},
		{state: outboxStateOK, created: now, done: now, storedBy: []peer.ID{p1, p1}},
		{state: outboxStateBad, created: now, done: now, reason: strings.Repeat("r", maxOutboxReason+10)},
	} {
		got, err := decodeOutboxRec(r.marshal())
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if len(r.reason) > maxOutboxReason {
			r.reason = r.reason[:maxOutboxReason]
		}
		if got.state != r.state || !got.created.Equal(r.created) || !got.next.Equal(r.next) || !got.done.Equal(r.done) ||
			got.attempts != r.attempts || got.reason != r.reason || got.mailbox != r.mailbox || len(got.storedBy) != len(r.storedBy) {
			t.Errorf("round trip: %+v, want %+v", got, r)
		}
	}
	// Every truncation and a trailing byte are refused.
	b := (&outboxRec{state: outboxStatePnd, created: now, storedBy: []peer.ID{p1}, reason: "r"}).marshal()
	for i := range len(b) {
		if _, err := decodeOutboxRec(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d of %d bytes: %v", i, len(b), err)
		}
	}
	if _, err := decodeOutboxRec(append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// marshalV1 writes r in the layout of version 1 (the envelope inside).
func marshalV1(r *outboxRec, env []byte) []byte {
	b := []byte{outboxVersion1, r.state}
	b = binary.BigEndian.AppendUint64(b, millis(r.created))
	b = binary.BigEndian.AppendUint64(b, millis(r.next))
	b = binary.BigEndian.AppendUint64(b, millis(r.done))
	b = binary.BigEndian.AppendUint32(b, r.attempts)
	b = append(b, byte(len(r.storedBy)))
	for _, p := range r.storedBy {
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.reason)))
	b = append(b, r.reason...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(env)))
	return append(b, env...)
}

// Records of version 1 (the envelope inside) are still read.
func TestOutboxRecordVersion1(t *testing.T) {
	p1, _ := peer.Decode("12D3KooWKbqHMYhePDr82RqQiJbeRWpu5CKm6z1LTA3h9D2jQwHS")
	now := time.UnixMilli(time.Now().UnixMilli())
	pnd := marshalV1(&outboxRec{state: outboxStatePnd, created: now, attempts: 2, reason: "r"}, []byte("envelope"))
	r, err := decodeOutboxRec(pnd)
	if err != nil || r.state != outboxStatePnd || !r.created.Equal(now) || r.attempts != 2 || r.reason != "r" || string(r.legacyEnv) != "envelope" {
		t.Fatalf("pending version 1: %+v %v", r, err)
	}
	ok := marshalV1(&outboxRec{state: outboxStateOK, created: now, done: now, storedBy: []peer.ID{p1}}, nil)
	if r, err := decodeOutboxRec(ok); err != nil || r.state != outboxStateOK || len(r.storedBy) != 1 || r.legacyEnv != nil {
		t.Fatalf("stored version 1: %+v %v", r, err)
	}
	for name, b := range map[string][]byte{
		"pending without envelope": marshalV1(&outboxRec{state: outboxStatePnd, created: now}, nil),
		"stored with envelope":     marshalV1(&outboxRec{state: outboxStateOK, created: now}, []byte("e")),
		"truncated":                pnd[:len(pnd)-1],
		"version 3":                append([]byte{3}, pnd[1:]...),
	} {
		if _, err := decodeOutboxRec(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzOutboxRecord(f *testing.F) {
	p1, _ := peer.Decode("12D3KooWKbqHMYhePDr82RqQiJbeRWpu5CKm6z1LTA3h9D2jQwHS")
	f.Add((&outboxRec{state: outboxStatePnd, created: time.Now(), reason: "r"}).marshal())
	f.Add((&outboxRec{state: outboxStateOK, created: time.Now(), storedBy: []peer.ID{p1}}).marshal())
	f.Add(marshalV1(&outboxRec{state: outboxStatePnd, created: time.Now(), reason: "r"}, []byte("e")))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeOutboxRec(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if b[0] == outboxVersion1 {
			// Read, and written again as version 2.
			again, err := decodeOutboxRec(r.marshal())
			if err != nil || again.state != r.state || again.reason != r.reason || len(again.storedBy) != len(r.storedBy) || again.legacyEnv != nil {
				t.Fatalf("version 1 record rewritten: %+v %v", again, err)
			}
			return
		}
		// What decodes encodes back to the same bytes.
		if again := r.marshal(); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", b, again)
		}
	})
}

// fastOutbox retries quickly, as a test needs.
func fastOutbox(p *Params) {
	p.Outbox.MinBackoff, p.Outbox.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
}

// freeListen returns a loopback listen address on a free port.
func freeListen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port)
}

// The group's only host is stopped and started again, twice, while alice
// sends a burst; it also limits her rate, so some relays are refused as
// rate limited. Every message is eventually stored by the host and shown
// to bob, with no fetch asked for, and alice sees each as stored.
func TestOutboxHostRestartedDuringBurst(t *testing.T) {
	leakCheck(t)
	hostDir := t.TempDir()
	hostKey, _, _ := crypto.GenerateEd25519Key(nil)
	listen := freeListen(t)
	hostOpts := nodeOpts{role: RoleHost, policy: PolicyOpen, dir: hostDir, key: hostKey, tweak: func(p *Params) {
		p.ListenAddrs = []string{listen}
		// A host that tells a burst to slow down.
		p.Relay.PeerRate, p.Relay.PeerBurst = 40, 20
	}}
	host := startNode(t, hostOpts)
	hostAddress := hostAddr(host)
	alice, bob := newPerson(t, "alice"), newPerson(t, "bob")
	alice.tweak, bob.tweak = fastOutbox, fastOutbox
	alice.start()
	bob.start()
	ctx := context.Background()
	_, invite, err := alice.n.CreateGroup(ctx, "burst", []string{hostAddress})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.n.JoinGroup(ctx, invite, ""); err != nil {
		t.Fatal(err)
	}

	const total = 150
	var mu sync.Mutex
	var pending, errs int
	var wg sync.WaitGroup
	sent := make(chan int, total)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			res, err := alice.n.Send(ctx, "burst", fmt.Sprintf("burst %03d", i))
			mu.Lock()
			switch {
			case err != nil:
				errs++
				t.Errorf("send %d: %v", i, err)
			case res.State == DeliveryPending:
				pending++
			}
			mu.Unlock()
			sent <- i
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// Stop the host twice during the burst, for a while each time.
	for _, at := range []int{30, 90} {
		for i := range sent {
			if i >= at {
				break
			}
		}
		host.Close()
		for i := range sent {
			if i >= at+25 {
				break
			}
		}
		host = startNode(t, hostOpts)
	}
	wg.Wait()
	if errs > 0 {
		t.Fatalf("%d sends failed", errs)
	}
	if pending == 0 {
		t.Fatal("no send was left pending: the host was never down during the burst")
	}
	t.Logf("%d of %d sends answered pending", pending, total)

	// Every message reaches the host (alice's profile too), and bob, with
	// no fetch asked for (the hosts' anti-entropy runs every 5 minutes:
	// not within this test).
	m := mailboxOf(t, alice, "burst")
	tu.Eventually(t, 60*time.Second, func() bool { return count(t, host, m) >= total+1 }, "the host to hold all %d messages", total)
	// Bob's copies come through the restarted host's gossip, whose mesh
	// re-forms after its restart: as generous a deadline as the host's.
	tu.Eventually(t, 60*time.Second, func() bool { return len(texts(t, bob.n, "burst")) >= total }, "bob to show all %d messages", total)
	tu.Eventually(t, 60*time.Second, func() bool {
		msgs, err := alice.n.Messages("burst", 0)
		if err != nil {
			t.Fatal(err)
		}
		stored := 0
		for _, m := range msgs {
			if m.Own && m.Kind == "text" && m.Delivery == DeliveryStored && m.StoredByCount >= 1 {
				stored++
			}
		}
		return stored == total
	}, "alice's %d messages to show as stored", total)
	if es, err := alice.n.Outbox(); err != nil || len(es) != 0 {
		t.Fatalf("outbox after delivery: %+v %v", es, err)
	}
}

// mailboxOf is the current mailbox of a group of p.
func mailboxOf(t *testing.T, p *person, group string) envelope.MailboxID {
	t.Helper()
	m := p.n.member
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.resolve(group)
	if err != nil {
		t.Fatal(err)
	}
	k, err := e.keysFor(e.g.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	return k.Mailbox
}

// Pending envelopes survive a restart of the sender: a message sent while
// the only host was down reaches it after alice's node restarted, and
// while it waits, it is listed as pending with the host's answer.
func TestOutboxSurvivesRestart(t *testing.T) {
	leakCheck(t)
	hostDir := t.TempDir()
	hostKey, _, _ := crypto.GenerateEd25519Key(nil)
	listen := freeListen(t)
	hostOpts := nodeOpts{role: RoleHost, policy: PolicyOpen, dir: hostDir, key: hostKey, tweak: func(p *Params) { p.ListenAddrs = []string{listen} }}
	host := startNode(t, hostOpts)
	alice := newPerson(t, "alice")
	alice.tweak = fastOutbox
	alice.start()
	ctx := context.Background()
	if _, _, err := alice.n.CreateGroup(ctx, "later", []string{hostAddr(host)}); err != nil {
		t.Fatal(err)
	}
	host.Close()
	res, err := alice.n.Send(ctx, "later", "while the host is down")
	if err != nil || res.State != DeliveryPending || len(res.Failed) != 1 || len(res.StoredBy) != 0 {
		t.Fatalf("send with the host down: %+v %v", res, err)
	}
	es, err := alice.n.Outbox()
	if err != nil || len(es) != 1 || es[0].ID != res.ID || es[0].State != DeliveryPending || es[0].Reason == "" || es[0].GroupName != "later" {
		t.Fatalf("outbox: %+v %v", es, err)
	}
	msgs, _ := alice.n.Messages("later", 1)
	if len(msgs) != 1 || msgs[0].Delivery != DeliveryPending || msgs[0].DeliveryError == "" {
		t.Fatalf("pending message listed as %+v", msgs)
	}
	alice.stop()
	host = startNode(t, hostOpts)
	alice.start()
	tu.Eventually(t, 30*time.Second, func() bool {
		msgs, _ := alice.n.Messages("later", 0)
		for _, m := range msgs {
			if m.ID == res.ID {
				return m.Delivery == DeliveryStored && m.StoredByCount == 1
			}
		}
		return false
	}, "the message to be stored after the restart")
	id, _ := envelope.ParseID(res.ID)
	if ok, err := host.Store().Has(mailboxOf(t, alice, "later"), id); err != nil || !ok {
		t.Fatalf("the host does not hold the message: %v", err)
	}
}

// A pending envelope recorded by an older version (its record carrying
// the envelope, version 1) is still delivered after an upgrade, and its
// record is rewritten as version 2 with the envelope beside it.
func TestOutboxVersion1RecordDelivered(t *testing.T) {
	leakCheck(t)
	hostDir := t.TempDir()
	hostKey, _, _ := crypto.GenerateEd25519Key(nil)
	listen := freeListen(t)
	hostOpts := nodeOpts{role: RoleHost, policy: PolicyOpen, dir: hostDir, key: hostKey, tweak: func(p *Params) { p.ListenAddrs = []string{listen} }}
	host := startNode(t, hostOpts)
	alice := newPerson(t, "alice")
	alice.tweak = fastOutbox
	alice.start()
	ctx := context.Background()
	g, _, err := alice.n.CreateGroup(ctx, "old", []string{hostAddr(host)})
	if err != nil {
		t.Fatal(err)
	}
	host.Close()
	res, err := alice.n.Send(ctx, "old", "queued by an older version")
	if err != nil || res.State != DeliveryPending {
		t.Fatalf("send with the host down: %+v %v", res, err)
	}
	mailbox := mailboxOf(t, alice, "old")
	alice.stop()

	// Rewrite the record as version 1 wrote it, the envelope inside.
	db, err := openMemberDB(filepath.Join(alice.dir, "member"), bytes.Repeat([]byte{7}, 32), false, DefaultParams(RoleMember).MemberMemTableSize)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := groupstate.ParseGroupID(g.ID)
	id, _ := envelope.ParseID(res.ID)
	envBytes, err := db.get(outboxEnvKey(gid, id))
	if err != nil || envBytes == nil {
		t.Fatalf("the pending envelope is not kept beside its record: %v", err)
	}
	err = db.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(outboxEnvKey(gid, id)); err != nil {
			return err
		}
		return txn.Set(outboxKey(gid, id), marshalV1(&outboxRec{state: outboxStatePnd, created: time.Now(), attempts: 1, reason: "down"}, envBytes))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	host = startNode(t, hostOpts)
	alice.start()
	tu.Eventually(t, 30*time.Second, func() bool {
		ok, err := host.Store().Has(mailbox, id)
		return err == nil && ok
	}, "the host to store the envelope queued in a version 1 record")
	tu.Eventually(t, 10*time.Second, func() bool {
		b, err := alice.n.member.db.get(outboxKey(gid, id))
		if err != nil || len(b) == 0 || b[0] != outboxVersion {
			return false
		}
		r, err := decodeOutboxRec(b)
		return err == nil && r.state == outboxStateOK && len(r.storedBy) == 1
	}, "the record to be rewritten as version 2, stored by the host")
	if b, err := alice.n.member.db.get(outboxEnvKey(gid, id)); err != nil || b != nil {
		t.Fatalf("the stored envelope is still kept in the outbox: %d bytes, %v", len(b), err)
	}
}

// A send right after the group's host came back is stored at once: the
// failed dials while it was down left libp2p's dial backoff on the host,
// which the outbox clears before it tries (issue 15: after a restart,
// relays failed for a median 1.2 s).
func TestOutboxClearsDialBackoff(t *testing.T) {
	leakCheck(t)
	hostDir := t.TempDir()
	hostKey, _, _ := crypto.GenerateEd25519Key(nil)
	listen := freeListen(t)
	hostOpts := nodeOpts{role: RoleHost, policy: PolicyOpen, dir: hostDir, key: hostKey, tweak: func(p *Params) { p.ListenAddrs = []string{listen} }}
	host := startNode(t, hostOpts)
	alice := newPerson(t, "alice")
	alice.start()
	ctx := context.Background()
	if _, _, err := alice.n.CreateGroup(ctx, "back", []string{hostAddr(host)}); err != nil {
		t.Fatal(err)
	}
	hostID := host.ID()
	host.Close()
	res, err := alice.n.Send(ctx, "back", "while the host is down")
	if err != nil || res.State != DeliveryPending {
		t.Fatalf("send with the host down: %+v %v", res, err)
	}
	sw, ok := alice.n.Host().Network().(*swarm.Swarm)
	if !ok {
		t.Skip("not a swarm")
	}
	if !sw.Backoff().Backoff(hostID, ma.StringCast(listen)) {
		t.Fatal("the failed dial left no dial backoff: this test would not test its clearing")
	}
	host = startNode(t, hostOpts)
	res, err = alice.n.Send(ctx, "back", "right after the host came back")
	if err != nil || res.State != DeliveryStored || len(res.StoredBy) != 1 {
		t.Fatalf("send right after the host came back: %+v %v", res, err)
	}
}

// A long queue costs memory for its records, not its envelopes: while
// the only host is down, the outbox loop lets go of each envelope once
// it is written beside its record (and reads it back for each attempt).
func TestOutboxHoldsNoEnvelopes(t *testing.T) {
	leakCheck(t)
	hostDir := t.TempDir()
	hostKey, _, _ := crypto.GenerateEd25519Key(nil)
	listen := freeListen(t)
	hostOpts := nodeOpts{role: RoleHost, policy: PolicyOpen, dir: hostDir, key: hostKey, tweak: func(p *Params) { p.ListenAddrs = []string{listen} }}
	host := startNode(t, hostOpts)
	alice := newPerson(t, "alice")
	alice.tweak = fastOutbox
	alice.start()
	ctx := context.Background()
	if _, _, err := alice.n.CreateGroup(ctx, "queue", []string{hostAddr(host)}); err != nil {
		t.Fatal(err)
	}
	host.Close()
	const n = 30
	for i := range n {
		if res, err := alice.n.Send(ctx, "queue", fmt.Sprintf("queued %d", i)); err != nil || res.State != DeliveryPending {
			t.Fatalf("send %d: %+v %v", i, res, err)
		}
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		snap := alice.n.member.outbox.snapshot(ctx)
		held, retried := 0, 0
		for _, s := range snap {
			if s.held {
				held++
			}
			if s.attempts >= 2 {
				retried++
			}
		}
		return len(snap) >= n && held == 0 && retried >= n
	}, "every queued envelope retried and none held in memory")
	host = startNode(t, hostOpts)
	m := mailboxOf(t, alice, "queue")
	tu.Eventually(t, 30*time.Second, func() bool { return count(t, host, m) >= n }, "the host to store the queue")
}

// A pending record whose envelope is missing (a damaged database) fails
// with the reason instead of staying pending for good.
func TestOutboxMissingEnvelopeFails(t *testing.T) {
	leakCheck(t)
	alice := newPerson(t, "alice")
	alice.tweak = fastOutbox
	alice.start()
	ctx := context.Background()
	// A host nobody runs.
	hostKey, _, _ := crypto.GenerateEd25519Key(nil)
	hid, _ := peer.IDFromPrivateKey(hostKey)
	g, _, err := alice.n.CreateGroup(ctx, "damaged", []string{freeListen(t) + "/p2p/" + hid.String()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := alice.n.Send(ctx, "damaged", "its envelope will be lost")
	if err != nil || res.State != DeliveryPending {
		t.Fatalf("send: %+v %v", res, err)
	}
	gid, _ := groupstate.ParseGroupID(g.ID)
	id, _ := envelope.ParseID(res.ID)
	if err := alice.n.member.db.db.Update(func(txn *badger.Txn) error { return txn.Delete(outboxEnvKey(gid, id)) }); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		es, err := alice.n.Outbox()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.ID == res.ID {
				return e.State == DeliveryFailed && strings.Contains(e.Reason, "missing")
			}
		}
		return false
	}, "the message whose envelope is missing to be listed as failed")
}
