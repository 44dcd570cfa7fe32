package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

// smallStore sizes a node's on-disk store for a filesystem of a few dozen
// MiB (see store's smallDiskParams).
func smallStore(p *Params) {
	s := &p.Store
	s.MaxBatchBytes = 128 << 10
	s.Badger.MemTableSize = 1 << 20
	s.Badger.NumMemtables = 2
	s.Badger.ValueLogFileSize = 2 << 20
	s.Badger.BaseTableSize = 64 << 10
	s.Badger.IndexCacheSize = 1 << 20
	s.Disk = store.DiskParams{MinFreeBytes: 6 << 20, BallastBytes: 3 << 20, CheckInterval: 20 * time.Millisecond}
	// One new mailbox fills the disk: no budgets of new mailboxes (store's
	// admission.go) in the way.
	s.Admission = store.AdmissionParams{}
	p.MemberMemTableSize = 1 << 20
}

// takeSpace writes a file of n bytes of zeros (allocated blocks).
func takeSpace(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A host whose disk is full refuses relays with the disk-full code, which
// the relaying node sees as store.ErrDiskFull; a member whose own disk is
// full refuses to send (nothing recorded) and sends again once space is
// freed.
func TestDiskFullOverTheNetwork(t *testing.T) {
	mnt := tu.SmallFS(t, 40<<20)
	host := startNode(t, nodeOpts{role: RoleHost, policy: PolicyOpen, dir: filepath.Join(mnt, "host"), tweak: func(p *Params) {
		smallStore(p)
		p.Relay.PeerRate, p.Relay.PeerBurst = 1e6, 1e6
	}})
	relayer := startNode(t, nodeOpts{})
	connect(t, relayer, host)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	ctx := context.Background()
	var err error
	for i := 0; i < 20_000 && err == nil; i++ {
		err = relayer.Remote(host.ID()).RelayMessageToGroup(ctx, m, tu.Envelope(t, k, 16<<10))
	}
	if !errors.Is(err, store.ErrDiskFull) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("relay to a host with a full disk: %v, want store.ErrDiskFull", err)
	}
	if !host.Store().Disk().Full {
		t.Fatalf("host disk status %+v", host.Store().Disk())
	}
	// Reads go on.
	if pg, err := relayer.Remote(host.ID()).FetchNewMessagesForGroup(ctx, m, nil, 10); err != nil || len(pg.Envelopes) != 10 {
		t.Fatalf("fetch from a host with a full disk: %d envelopes, %v", len(pg.Envelopes), err)
	}
}

func TestSendOnAFullDisk(t *testing.T) {
	mnt := tu.SmallFS(t, 40<<20)
	alice := newPerson(t, "alice")
	alice.dir = filepath.Join(mnt, "alice")
	alice.tweak = smallStore
	alice.start()
	ctx := context.Background()
	if _, _, err := alice.n.CreateGroup(ctx, "notes", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.Send(ctx, "notes", "before"); err != nil {
		t.Fatal(err)
	}
	// Take the space down to half the watermark (not to zero: the
	// member database shares the disk).
	tu.Eventually(t, 10*time.Second, func() bool { return alice.n.Store().Disk().Ballast > 0 }, "the ballast")
	st := alice.n.Store().Disk()
	filler := filepath.Join(mnt, "filler")
	takeSpace(t, filler, st.Free-st.Watermark/2)
	tu.Eventually(t, 10*time.Second, func() bool { return alice.n.Store().Disk().Full }, "the store to see the full disk")
	if _, err := alice.n.Send(ctx, "notes", "on a full disk"); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("send on a full disk: %v, want store.ErrDiskFull", err)
	}
	if got := texts(t, alice.n, "notes"); len(got) != 1 {
		t.Fatalf("a refused send left a message behind: %q", got)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return !alice.n.Store().Disk().Full }, "space to come back")
	if _, err := alice.n.Send(ctx, "notes", "after"); err != nil {
		t.Fatalf("send once space came back: %v", err)
	}
}
