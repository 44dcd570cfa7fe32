package main

import (
	"testing"

	"github.com/meshnode/meshnode/bench"

	tu "github.com/meshnode/meshnode/internal/testutil"
)

// bench soak at a small scale: three daemons of this binary, every
// message shown to the receiver, a sample of each process's memory every
// interval, and nothing left running.
func TestBenchSoak(t *testing.T) {
	dir := t.TempDir()
	r := meshnode(t, env(t), "bench", "soak", "--duration", "3s", "--interval", "1s", "--rate", "10", "--size", "512",
		"--dir", dir, "--json")
	res := jsonOf[bench.SoakResult](t, r)
	if res.Sent < 10 || res.Received != res.Sent || len(res.Samples) < 3 {
		t.Fatalf("sent %d, received %d, %d samples", res.Sent, res.Received, len(res.Samples))
	}
	for _, s := range res.Samples {
		for name, m := range map[string]bench.ProcMemory{"host": s.Host, "sender": s.Sender, "receiver": s.Receiver} {
			if m.RSS <= 0 || m.Anon <= 0 || m.Anon+m.File > m.RSS+(1<<20) {
				t.Errorf("%.0f s: %s memory %+v", s.Seconds, name, m)
			}
		}
	}
	if res.Sender.Max.RSS < res.Sender.Start.RSS {
		t.Errorf("sender summary %+v", res.Sender)
	}
	if left := tu.ProcessesUnder(t, dir); len(left) > 0 {
		t.Errorf("bench soak left daemons running: %v", left)
	}
	for _, bad := range [][]string{{"--rate", "0"}, {"--size", "70000"}, {"--duration", "0s"}} {
		if r := meshnode(t, env(t), append([]string{"bench", "soak"}, bad...)...); r.code == 0 {
			t.Errorf("bench soak %v: exit 0", bad)
		}
	}
}
