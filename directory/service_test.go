package directory

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/keymgmt"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func leakCheck(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
			goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		)
	})
}

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hookLog records the mailbox hook's calls.
type hookLog struct {
	mu   sync.Mutex
	live map[envelope.MailboxID]bool
	bad  []string
}

func (h *hookLog) hook(added, removed []envelope.MailboxID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range added {
		if h.live[m] {
			h.bad = append(h.bad, "added twice: "+m.Short())
		}
		h.live[m] = true
	}
	for _, m := range removed {
		if !h.live[m] {
			h.bad = append(h.bad, "removed unknown: "+m.Short())
		}
		delete(h.live, m)
	}
}

func (h *hookLog) has(m envelope.MailboxID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live[m]
}

type rig struct {
	svc   *Service
	cli   *Client
	srv   peer.ID
	clock *clock
	hooks *hookLog
	dir   string
}

func newRig(t *testing.T, p Params, dir string) *rig {
	t.Helper()
	srvHost, cliHost := newHost(t), newHost(t)
	r := &rig{clock: &clock{t: time.Now()}, hooks: &hookLog{live: map[envelope.MailboxID]bool{}}, dir: dir}
	if dir == "" {
		p.InMemory = true
	}
	svc, err := NewService(srvHost, dir, WithParams(p), WithLogger(quiet), WithClock(r.clock.now), WithMailboxHook(r.hooks.hook))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	cliHost.Peerstore().AddAddrs(srvHost.ID(), srvHost.Addrs(), time.Hour)
	r.svc, r.cli, r.srv = svc, NewClient(cliHost, 5*time.Second), srvHost.ID()
	return r
}

func testParams() Params {
	p := DefaultParams()
	p.Serve = true
	p.FetchRate, p.FetchBurst = 0, 0 // unlimited unless a test sets them
	p.NameFetchRate, p.NameFetchBurst = 0, 0
	p.WriteRate, p.WriteBurst = 0, 0
	return p
}

func (r *rig) publish(t *testing.T, owner []byte, name keymgmt.NameHash, blobs [][]byte, mbs ...envelope.MailboxID) error {
	t.Helper()
	return r.cli.Publish(context.Background(), r.srv, &Publication{Name: name, Owner: owner,
		Expires: r.clock.now().Add(time.Hour), Mailboxes: mbs, Blobs: blobs})
}

func TestPublishFetchConsume(t *testing.T) {
	leakCheck(t)
	r := newRig(t, testParams(), "")
	ctx := context.Background()
	owner := ownerKey(t)
	name := nameHash("bob")
	blobs := [][]byte{blob(100), blob(101), blob(102)}
	mb := envelope.MailboxID{7}
	if err := r.publish(t, owner, name, blobs, mb); err != nil {
		t.Fatal(err)
	}
	if !r.hooks.has(mb) {
		t.Fatal("request mailbox not handed to the hook")
	}
	st, err := r.cli.Status(ctx, r.srv, owner, name)
	if err != nil || st.Remaining != 3 {
		t.Fatalf("status: %+v %v", st, err)
	}
	// Each fetch consumes one package; the last one stays.
	for i, want := range [][]byte{blobs[0], blobs[1], blobs[2], blobs[2], blobs[2]} {
		got, err := r.cli.Fetch(ctx, r.srv, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	if st, _ := r.cli.Status(ctx, r.srv, owner, name); st.Remaining != 1 {
		t.Fatalf("after draining: %+v", st)
	}
	// Top up: a publish replaces the set.
	fresh := [][]byte{blob(110), blob(111)}
	if err := r.publish(t, owner, name, fresh, mb); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.cli.Fetch(ctx, r.srv, name); !bytes.Equal(got, fresh[0]) {
		t.Fatal("top-up did not replace the packages")
	}
	if _, err := r.cli.Fetch(ctx, r.srv, nameHash("nobody")); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("unknown name: %v", err)
	}
	// Removal: gone for fetchers, mailbox released.
	if err := r.cli.Remove(ctx, r.srv, owner, name); err != nil {
		t.Fatal(err)
	}
	if _, err := r.cli.Fetch(ctx, r.srv, name); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("fetch after removal: %v", err)
	}
	if r.hooks.has(mb) {
		t.Fatal("request mailbox still hosted after removal")
	}
	if err := r.cli.Remove(ctx, r.srv, owner, name); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("second removal: %v", err)
	}
	if len(r.hooks.bad) > 0 {
		t.Fatal(r.hooks.bad)
	}
}

func TestOwnership(t *testing.T) {
	r := newRig(t, testParams(), "")
	ctx := context.Background()
	bob, mallory := ownerKey(t), ownerKey(t)
	name := nameHash("bob")
	if err := r.publish(t, bob, name, [][]byte{blob(100)}); err != nil {
		t.Fatal(err)
	}
	if err := r.publish(t, mallory, name, [][]byte{blob(100)}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("mallory replaces bob's packages: %v", err)
	}
	if err := r.cli.Remove(ctx, r.srv, mallory, name); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("mallory removes bob's name: %v", err)
	}
	if _, err := r.cli.Status(ctx, r.srv, mallory, name); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("mallory reads bob's status: %v", err)
	}
	// Once bob's registration expires, the name is free.
	r.clock.add(2 * time.Hour)
	if _, err := r.cli.Fetch(ctx, r.srv, name); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("expired name fetched: %v", err)
	}
	q := &request{op: opPublish, name: name, ts: r.clock.now().UnixMilli(), expires: r.clock.now().Add(time.Hour).Unix(), blobs: [][]byte{blob(100)}}
	q.sign(mallory)
	if resp := r.svc.do(q, ""); resp.code != 0 {
		t.Fatalf("registering an expired name: %s", resp.msg)
	}
}

func TestReplayAndClock(t *testing.T) {
	r := newRig(t, testParams(), "")
	owner := ownerKey(t)
	name := nameHash("bob")
	q := publishRequest(t, owner, name, 1)
	if resp := r.svc.do(q, ""); resp.code != 0 {
		t.Fatalf("publish: %v %s", resp.code, resp.msg)
	}
	// The same signed publish again: refused as a replay.
	if resp := r.svc.do(q, ""); !errors.Is(errOf(resp.code, resp.msg), ErrStale) {
		t.Fatalf("replayed publish: %v %s", resp.code, resp.msg)
	}
	// A removal, then the old publish replayed: the tombstone refuses it.
	rem := &request{op: opRemove, name: name, ts: q.ts + 1}
	rem.sign(owner)
	if resp := r.svc.do(rem, ""); resp.code != 0 {
		t.Fatalf("remove: %s", resp.msg)
	}
	if resp := r.svc.do(q, ""); !errors.Is(errOf(resp.code, resp.msg), ErrStale) {
		t.Fatalf("publish replayed after removal: %v %s", resp.code, resp.msg)
	}
	// Timestamps far from the host's clock.
	for _, d := range []time.Duration{-time.Hour, time.Hour} {
		q := publishRequest(t, owner, nameHash("carol"), 1)
		q.ts = r.clock.now().Add(d).UnixMilli()
		q.sign(owner)
		if resp := r.svc.do(q, ""); !errors.Is(errOf(resp.code, resp.msg), ErrStale) {
			t.Fatalf("timestamp %v away: %v %s", d, resp.code, resp.msg)
		}
	}
	// Expiry already past, and beyond MaxTTL.
	for _, exp := range []time.Time{r.clock.now().Add(-time.Second), r.clock.now().Add(365 * 24 * time.Hour)} {
		err := r.cli.Publish(context.Background(), r.srv, &Publication{Name: nameHash("dave"), Owner: owner, Expires: exp, Blobs: [][]byte{blob(100)}})
		if err == nil {
			t.Fatalf("publish expiring at %v accepted", exp)
		}
	}
}

func TestLimits(t *testing.T) {
	p := testParams()
	p.MaxNames = 2
	p.FetchRate, p.FetchBurst = 0.001, 3
	p.WriteRate, p.WriteBurst = 0.001, 4
	r := newRig(t, p, "")
	ctx := context.Background()
	owner := ownerKey(t)
	for _, n := range []string{"one", "two"} {
		if err := r.publish(t, owner, nameHash(n), [][]byte{blob(100)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.publish(t, owner, nameHash("three"), [][]byte{blob(100)}); !errors.Is(err, ErrFull) {
		t.Fatalf("third name on a two-name host: %v", err)
	}
	for i := range 3 {
		if _, err := r.cli.Fetch(ctx, r.srv, nameHash("one")); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	if _, err := r.cli.Fetch(ctx, r.srv, nameHash("one")); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("fetch past the burst: %v", err)
	}
	// The write budget (4) is used up by three publishes and one more.
	if err := r.publish(t, owner, nameHash("one"), [][]byte{blob(100)}); err != nil {
		t.Fatal(err)
	}
	if err := r.publish(t, owner, nameHash("one"), [][]byte{blob(100)}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("publish past the burst: %v", err)
	}
	// Oversize: the host refuses a request beyond its limits.
	big := &Publication{Name: nameHash("two"), Owner: owner, Expires: time.Now().Add(time.Hour), Blobs: [][]byte{blob(p.MaxBlobSize + 1)}}
	r2 := newRig(t, testParams(), "")
	if err := r2.cli.Publish(ctx, r2.srv, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize blob: %v", err)
	}
}

func TestNameFetchLimit(t *testing.T) {
	p := testParams()
	p.NameFetchRate, p.NameFetchBurst = 0.001, 2
	r := newRig(t, p, "")
	owner := ownerKey(t)
	if err := r.publish(t, owner, nameHash("bob"), [][]byte{blob(100), blob(100), blob(100)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if _, err := r.cli.Fetch(ctx, r.srv, nameHash("bob")); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh peer is refused too: the limit is per name.
	fresh := NewClient(newHost(t), 5*time.Second)
	fresh.h.Peerstore().AddAddrs(r.srv, r.svc.h.Addrs(), time.Hour)
	if _, err := fresh.Fetch(ctx, r.srv, nameHash("bob")); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("name drained by a second peer: %v", err)
	}
}

func TestSweepAndRestart(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, testParams(), dir)
	owner := ownerKey(t)
	live, dying := envelope.MailboxID{1}, envelope.MailboxID{2}
	if err := r.publish(t, owner, nameHash("live"), [][]byte{blob(100)}, live); err != nil {
		t.Fatal(err)
	}
	short := &Publication{Name: nameHash("dying"), Owner: owner, Expires: r.clock.now().Add(time.Minute),
		Mailboxes: []envelope.MailboxID{dying}, Blobs: [][]byte{blob(100)}}
	if err := r.cli.Publish(context.Background(), r.srv, short); err != nil {
		t.Fatal(err)
	}
	if r.svc.Names() != 2 || !r.hooks.has(dying) {
		t.Fatalf("%d names", r.svc.Names())
	}
	r.clock.add(2 * time.Minute)
	if n, err := r.svc.Sweep(); err != nil || n != 1 {
		t.Fatalf("sweep removed %d: %v", n, err)
	}
	if r.hooks.has(dying) || !r.hooks.has(live) {
		t.Fatal("sweep did not release exactly the expired name's mailbox")
	}
	if err := r.svc.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened: the live name and its mailbox come back.
	hooks := &hookLog{live: map[envelope.MailboxID]bool{}}
	svc, err := NewService(newHost(t), dir, WithParams(testParams()), WithLogger(quiet), WithMailboxHook(hooks.hook))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if svc.Names() != 1 || !hooks.has(live) || hooks.has(dying) {
		t.Fatalf("after restart: %d names, hooks %v", svc.Names(), hooks.live)
	}
	// The host's files hold the hash, never the name.
	if err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("live")) {
			t.Errorf("%s contains the name in clear", path)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestMailboxRefcount(t *testing.T) {
	r := newRig(t, testParams(), "")
	a, b := ownerKey(t), ownerKey(t)
	shared := envelope.MailboxID{9}
	if err := r.publish(t, a, nameHash("aaa"), [][]byte{blob(100)}, shared); err != nil {
		t.Fatal(err)
	}
	if err := r.publish(t, b, nameHash("bbb"), [][]byte{blob(100)}, shared); err != nil {
		t.Fatal(err)
	}
	if err := r.cli.Remove(context.Background(), r.srv, a, nameHash("aaa")); err != nil {
		t.Fatal(err)
	}
	if !r.hooks.has(shared) {
		t.Fatal("a mailbox still listed by another name was released")
	}
	if err := r.publish(t, b, nameHash("bbb"), [][]byte{blob(100)}); err != nil {
		t.Fatal(err)
	}
	if r.hooks.has(shared) || len(r.hooks.bad) > 0 {
		t.Fatalf("mailbox not released when no name lists it: %v", r.hooks.bad)
	}
}

func TestGarbageStream(t *testing.T) {
	leakCheck(t)
	r := newRig(t, testParams(), "")
	cliHost := r.cli.h
	for name, frame := range map[string][]byte{
		"garbage":   {1, 2, 3},
		"oversized": nil,
	} {
		st, err := cliHost.NewStream(context.Background(), r.srv, ProtocolID)
		if err != nil {
			t.Fatal(err)
		}
		if frame == nil {
			// Announce a frame far over the host's bound.
			_, err = st.Write([]byte{0xff, 0xff, 0xff, 0x7f})
		} else {
			err = wire.WriteOne(st, frame)
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = st.CloseWrite()
		b, err := wire.NewReader(st).ReadFrame(maxResponse)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp, err := parseResponse(b, opFetch)
		if err != nil || resp.code == 0 {
			t.Fatalf("%s: %+v %v", name, resp, err)
		}
		st.Close()
	}
}
