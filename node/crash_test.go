package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/store"
)

// crashChildEnv makes the test binary run a host node instead of tests.
const crashChildEnv = "MESHNODE_CRASH_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// runCrashChild runs an open host on dir with the peer key kept there and
// prints its address; it runs until killed.
func runCrashChild(dir string) {
	p := DefaultParams(RoleHost)
	p.HostPolicy = PolicyOpen
	p.PeerKeyFile = dir + "/peer.key"
	n, err := New(context.Background(), p, WithLogger(quiet), WithDataDir(dir+"/data"))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", n.Addrs()[0])
	select {}
}

func startCrashChild(t *testing.T, dir string) (*exec.Cmd, peer.AddrInfo) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// A child that hangs at start must fail the test, not block it.
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		got <- result{line, err}
	}()
	var line string
	select {
	case r := <-got:
		if r.err != nil || !strings.HasPrefix(r.line, "ADDR ") {
			t.Fatalf("child host did not start: %q %v", r.line, r.err)
		}
		line = r.line
	case <-time.After(60 * time.Second):
		t.Fatal("child host printed no address within 60 s")
	}
	ai, err := peer.AddrInfoFromString(strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")))
	if err != nil {
		t.Fatal(err)
	}
	return cmd, *ai
}

// A host killed with SIGKILL in the middle of a burst from four writers
// loses no envelope it acknowledged.
func TestSIGKILLLosesNoAcknowledgedEnvelope(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	cmd, ai := startCrashChild(t, dir)
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)

	var mu sync.Mutex
	var acked []envelope.ID
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		writer := startNode(t, nodeOpts{})
		writer.Host().Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				e := tu.Envelope(t, k, 1000)
				if err := writer.Remote(ai.ID).RelayMessageToGroup(ctx, m, e); err != nil {
					return // the host died: unacknowledged, may be lost
				}
				mu.Lock()
				acked = append(acked, e.ID())
				mu.Unlock()
			}
		}()
	}
	tu.Eventually(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 }, "200 acknowledged envelopes")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	wg.Wait()
	mu.Lock()
	want := append([]envelope.ID(nil), acked...)
	mu.Unlock()

	// Restart the host from the same directory and fetch everything.
	_, ai = startCrashChild(t, dir)
	reader := startNode(t, nodeOpts{})
	if err := reader.Host().Connect(context.Background(), ai); err != nil {
		t.Fatal(err)
	}
	have := map[envelope.ID]bool{}
	var cur store.Cursor
	for {
		pg, err := reader.Remote(ai.ID).FetchNewMessagesForGroup(context.Background(), m, cur, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range pg.Envelopes {
			if have[e.ID()] {
				t.Fatalf("envelope %s served twice", e.ID().Short())
			}
			have[e.ID()] = true
		}
		cur = pg.Next
		if !pg.More {
			break
		}
	}
	for _, id := range want {
		if !have[id] {
			t.Fatalf("acknowledged envelope %s lost in the crash (%d acknowledged, %d present)", id.Short(), len(want), len(have))
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d present after restart", len(want), len(have))
}
