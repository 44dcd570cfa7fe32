package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

const crashDirEnv = "MESHNODE_STORE_CRASH_DIR"

// TestCrashChild is the helper process of TestCrashKeepsAcknowledged: it
// Puts envelopes from several goroutines and prints each acknowledgement
// until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashKeepsAcknowledged")
	}
	s, err := Open(dir, diskParams(), WithLogger(quietLogger()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	keys := []ed25519.PrivateKey{newKey(t), newKey(t)}
	var mu sync.Mutex
	for w := range 8 {
		go func() {
			k := keys[w%len(keys)]
			for {
				e := seal(t, k, 1024)
				if _, err := s.Put(context.Background(), e); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(3)
				}
				mu.Lock()
				// One write(2) per line: once it returns, the parent can read
				// the line even if we are killed right after.
				fmt.Fprintf(os.Stdout, "ack %s %s\n", e.Mailbox(), e.ID())
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestCrashKeepsAcknowledged kills a writing process with SIGKILL (twice,
// the second time after crash recovery) and checks that every acknowledged
// envelope survived and that nothing half-written is visible: every stored
// envelope decodes, hashes to its ID, and its indexes and counters agree.
//
// SIGKILL loses the process, not the OS page cache, so this exercises
// Badger's recovery and our transaction boundaries; surviving power loss
// additionally rests on the fsync that SyncWrites performs per commit.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[[2]string]bool{}
	for round := range 2 {
		var stderr bytes.Buffer
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		record := func(line string) {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "ack" {
				acked[[2]string{f[1], f[2]}] = true
				n++
			}
		}
		for n < 400 && sc.Scan() {
			record(sc.Text())
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		for sc.Scan() { // acknowledgements already written before the kill
			record(sc.Text())
		}
		_ = cmd.Wait()
		if n < 400 {
			t.Fatalf("round %d: child acknowledged only %d envelopes; stderr:\n%s", round, n, stderr.String())
		}
	}

	s := openStore(t, dir, diskParams())
	for k := range acked {
		m, err := envelope.ParseMailboxID(k[0])
		if err != nil {
			t.Fatal(err)
		}
		id, err := envelope.ParseID(k[1])
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.Get(m, id)
		if err != nil {
			t.Fatalf("acknowledged envelope %s lost after SIGKILL: %v", id.Short(), err)
		}
		if e.Verify() != nil {
			t.Fatalf("acknowledged envelope %s does not verify", id.Short())
		}
	}
	mbs, err := s.Mailboxes()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, m := range mbs {
		st, err := s.Stats(m)
		if err != nil {
			t.Fatal(err)
		}
		envs := readAll(t, s, m, 97) // decodes and hash-checks every record
		if int64(len(envs)) != st.Count {
			t.Fatalf("mailbox %s: %d envelopes paged, state says %d", m.Short(), len(envs), st.Count)
		}
		for i, e := range envs {
			rec, ok, err := s.lookupIndex(m, e.ID())
			if err != nil || !ok || rec.seq != uint64(i+1) || int(rec.size) != e.Size() {
				t.Fatalf("mailbox %s: index of envelope #%d disagrees: %+v %v %v", m.Short(), i+1, rec, ok, err)
			}
		}
		ranged := 0
		if err := s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(envelope.ID, bool) bool { ranged++; return true }); err != nil || ranged != len(envs) {
			t.Fatalf("mailbox %s: RangeIDs saw %d IDs (%v), paging %d", m.Short(), ranged, err, len(envs))
		}
		total += st.Count
	}
	if u := s.Usage(); u.Count != total {
		t.Fatalf("usage %d, mailboxes hold %d", u.Count, total)
	}
	t.Logf("%d acknowledged envelopes, %d stored (the rest were in flight when killed)", len(acked), total)
}
