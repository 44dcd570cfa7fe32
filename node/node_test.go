package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type nodeOpts struct {
	role   Role
	policy HostPolicy
	dir    string
	key    crypto.PrivKey
	tweak  func(*Params)
}

// startNode runs a node on TCP loopback and closes it at cleanup.
func startNode(t *testing.T, o nodeOpts) *Node {
	t.Helper()
	if o.role == "" {
		o.role = RoleMember
	}
	p := DefaultParams(o.role)
	p.StablePeerID = false
	if o.policy != "" {
		p.HostPolicy = o.policy
	}
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	if o.tweak != nil {
		o.tweak(&p)
	}
	opts := []Option{WithLogger(quiet), WithDataDir(o.dir)}
	if o.key != nil {
		opts = append(opts, WithPeerKey(o.key))
	}
	n, err := New(context.Background(), p, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func connect(t *testing.T, a, b *Node) {
	t.Helper()
	if err := a.Host().Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, n *Node, m envelope.MailboxID) int {
	t.Helper()
	s, err := n.Store().Stats(m)
	if err != nil {
		t.Fatal(err)
	}
	return int(s.Count)
}

func leakCheck(t *testing.T) {
	t.Helper()
	// The snapshot is taken now, before the test starts anything; the check
	// is registered first so it runs after every node's cleanup.
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			// libp2p and badger keep process-wide workers.
			goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
			goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		)
	})
}

func TestGossipReachesHost(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOwn})
	alice := startNode(t, nodeOpts{})
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	for _, n := range []*Node{host, alice} {
		if err := n.HostMailbox(m); err != nil {
			t.Fatal(err)
		}
	}
	connect(t, alice, host)
	tu.Eventually(t, 10*time.Second, func() bool { return len(alice.Relay().TopicPeers(m)) > 0 }, "mesh formed")

	const n = 20
	for i := 0; i < n; i++ {
		if err := alice.RelayMessageToGroup(context.Background(), m, tu.Envelope(t, k, 900)); err != nil {
			t.Fatal(err)
		}
	}
	tu.Eventually(t, 10*time.Second, func() bool { return count(t, host, m) == n }, "host stores %d gossiped envelopes", n)
}

func TestOfflineMemberFetchesPageByPage(t *testing.T) {
	leakCheck(t)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	alice := startNode(t, nodeOpts{})
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	ctx := context.Background()
	remote := alice.Remote(host.ID())
	connect(t, alice, host)
	var want []envelope.ID
	for i := 0; i < 250; i++ {
		e := tu.Envelope(t, k, 1000)
		want = append(want, e.ID())
		if err := remote.RelayMessageToGroup(ctx, m, e); err != nil {
			t.Fatalf("relay %d: %v", i, err)
		}
	}
	// Bob was offline; he starts now and catches up in pages of 40.
	bob := startNode(t, nodeOpts{})
	connect(t, bob, host)
	var got []envelope.ID
	var cur store.Cursor
	pages := 0
	for {
		pg, err := bob.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, cur, 40)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range pg.Envelopes {
			got = append(got, e.ID())
		}
		cur = pg.Next
		if !pg.More {
			break
		}
	}
	if pages != 7 {
		t.Errorf("fetched in %d pages, want 7", pages)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetched %d envelopes, not the %d sent in order", len(got), len(want))
	}
	// Resuming from the saved cursor returns nothing new, then the next one.
	pg, err := bob.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, cur, 40)
	if err != nil || len(pg.Envelopes) != 0 || pg.More {
		t.Fatalf("resume at end: %d envelopes, more=%v, err=%v", len(pg.Envelopes), pg.More, err)
	}
	e := tu.Envelope(t, k, 10)
	if err := remote.RelayMessageToGroup(ctx, m, e); err != nil {
		t.Fatal(err)
	}
	pg, err = bob.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, cur, 40)
	if err != nil || len(pg.Envelopes) != 1 || pg.Envelopes[0].ID() != e.ID() {
		t.Fatalf("resume after one more: %v", err)
	}
}

func TestRelayRejections(t *testing.T) {
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, tweak: func(p *Params) { p.Relay.RejectsBeforeBlacklist = 0 }})
	ownHost := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOwn})
	alice := startNode(t, nodeOpts{})
	connect(t, alice, host)
	connect(t, alice, ownHost)
	ctx := context.Background()
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	other := tu.Mailbox(tu.WriteKey(t))
	good := tu.Envelope(t, k, 100)

	// A forgery: a valid envelope of another key, claimed for mailbox m.
	forged := tu.Envelope(t, tu.WriteKey(t), 100)

	tests := []struct {
		name string
		to   *Node
		m    envelope.MailboxID
		env  *envelope.Envelope
		want error
		code status.Code
	}{
		{"forged for mailbox", host, m, forged, envelope.ErrWrongMailbox, status.WrongMailbox},
		{"not served", ownHost, other, tu.Envelope(t, k, 10), status.ErrNotServed, status.NotServed},
		{"oversize", host, m, tu.Envelope(t, k, envelope.DefaultMaxSize-envelope.Overhead), nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := alice.Remote(tc.to.ID()).RelayMessageToGroup(ctx, tc.m, tc.env)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("max-size envelope refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var se *status.Error
			if !errors.As(err, &se) || se.Code != tc.code {
				t.Fatalf("got code %v, want %v", err, tc.code)
			}
		})
	}
	if count(t, host, m) != 1 {
		t.Fatalf("host stored %d envelopes, want only the max-size one", count(t, host, m))
	}

	// A duplicate is acknowledged and not stored twice.
	for i := 0; i < 2; i++ {
		if err := alice.Remote(host.ID()).RelayMessageToGroup(ctx, m, good); err != nil {
			t.Fatal(err)
		}
	}
	if count(t, host, m) != 2 {
		t.Fatalf("duplicate stored twice: %d", count(t, host, m))
	}

	// An unknown cursor is an error, never "everything".
	_, err := alice.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, store.Cursor("garbage-cursor"), 10)
	if !errors.Is(err, store.ErrUnknownCursor) {
		t.Fatalf("garbage cursor: %v", err)
	}
	// The host keeps serving after all that.
	pg, err := alice.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, nil, 10)
	if err != nil || len(pg.Envelopes) != 2 {
		t.Fatalf("host no longer serves: %d, %v", len(pg.Envelopes), err)
	}
}

func TestHostRestartKeepsHistory(t *testing.T) {
	dir := t.TempDir()
	key, _, _ := crypto.GenerateEd25519Key(nil)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	ctx := context.Background()
	var want []envelope.ID
	func() {
		host, err := New(ctx, hostParams(), WithLogger(quiet), WithDataDir(dir), WithPeerKey(key))
		if err != nil {
			t.Fatal(err)
		}
		defer host.Close()
		alice := startNode(t, nodeOpts{})
		connect(t, alice, host)
		for i := 0; i < 30; i++ {
			e := tu.Envelope(t, k, 500)
			want = append(want, e.ID())
			if err := alice.Remote(host.ID()).RelayMessageToGroup(ctx, m, e); err != nil {
				t.Fatal(err)
			}
		}
	}()
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: dir, key: key})
	if !host.Hosts(m) {
		t.Fatal("restarted open host does not host its stored mailbox")
	}
	bob := startNode(t, nodeOpts{})
	connect(t, bob, host)
	pg, err := bob.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, nil, 100)
	if err != nil || len(pg.Envelopes) != len(want) {
		t.Fatalf("after restart: %d envelopes, %v", len(pg.Envelopes), err)
	}
	for i, e := range pg.Envelopes {
		if e.ID() != want[i] {
			t.Fatalf("envelope %d changed order", i)
		}
	}
}

func hostParams() Params {
	p := DefaultParams(RoleHost)
	p.StablePeerID = false
	p.HostPolicy = PolicyOpen
	return p
}

func TestLocalInterface(t *testing.T) {
	n := startNode(t, nodeOpts{})
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	ctx := context.Background()
	var gh GroupHost = n
	if err := gh.RelayMessageToGroup(ctx, m, tu.Envelope(t, k, 10)); !errors.Is(err, ErrNotHosted) {
		t.Fatalf("relay to unhosted mailbox: %v", err)
	}
	if err := n.HostMailbox(m); err != nil {
		t.Fatal(err)
	}
	e := tu.Envelope(t, k, 10)
	if err := gh.RelayMessageToGroup(ctx, m, e); err != nil {
		t.Fatal(err)
	}
	pg, err := gh.FetchNewMessagesForGroup(ctx, m, nil, 10)
	if err != nil || len(pg.Envelopes) != 1 || pg.Envelopes[0].ID() != e.ID() {
		t.Fatalf("local fetch: %v", err)
	}
	if err := gh.RelayMessageToGroup(ctx, tu.Mailbox(tu.WriteKey(t)), e); !errors.Is(err, envelope.ErrWrongMailbox) {
		t.Fatalf("wrong mailbox: %v", err)
	}
}

// A catch-up keeps two pages in flight (it fetches one ahead): two
// concurrent full-size page requests from one peer must both be served,
// not refused by this node's own resource limits.
func TestTwoPagesInFlightFromOnePeer(t *testing.T) {
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen})
	bob := startNode(t, nodeOpts{})
	connect(t, bob, host)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	ctx := context.Background()
	// Enough envelopes for several pages at the byte bound.
	for i := 0; i < 2*host.Params().Fetch.MaxPageBytes/(32<<10)+8; i++ {
		if err := host.RelayMessageToGroup(ctx, m, tu.Envelope(t, k, 32<<10)); err != nil {
			if errors.Is(err, ErrNotHosted) {
				if err := host.HostMailbox(m); err != nil {
					t.Fatal(err)
				}
				i--
				continue
			}
			t.Fatal(err)
		}
	}
	for round := 0; round < 10; round++ {
		errs := make(chan error, 2)
		for j := 0; j < 2; j++ {
			go func() {
				_, err := bob.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, nil, 1000)
				errs <- err
			}()
		}
		for j := 0; j < 2; j++ {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// Close returns while arrivals are streaming into the member loop (it once
// spun forever draining the closed arrivals channel).
func TestCloseDuringArrivalBurst(t *testing.T) {
	for i := 0; i < 20; i++ {
		p := newPerson(t, "a")
		n := p.start()
		ctx := context.Background()
		if _, _, err := n.CreateGroup(ctx, "g", nil); err != nil {
			t.Fatal(err)
		}
		k := tu.WriteKey(t)
		m := tu.Mailbox(k)
		if err := n.HostMailbox(m); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := n.Deliver(ctx, tu.Envelope(t, k, 100), n.ID()); err != nil {
					return // closed
				}
			}
		}()
		time.Sleep(time.Duration(i%5) * 10 * time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- n.Close() }()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatalf("iteration %d: Close did not return", i)
		}
		close(stop)
		<-done
	}
}
