package bench

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary be the attack benchmark's host process.
func TestMain(m *testing.M) {
	if ChildRole() != "" {
		os.Exit(RunChild(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// The attack benchmark at a small scale: every attack runs against a
// host process, members are served throughout, nothing acknowledged is
// lost, and the host process's figures are reported. It asserts what the
// admission guarantees (members served, limits held), not speed.
func TestAttackSmall(t *testing.T) {
	p := AttackParams{
		Mailboxes: 500, Members: 2, History: 10, Duration: 2 * time.Second,
		Attacks: AllAttacks, GlobalQuota: 16 << 20, Dir: t.TempDir(),
	}
	r, err := Attack(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Attacks) != len(AllAttacks) || r.Lost != 0 {
		t.Fatalf("%d attacks, %d lost", len(r.Attacks), r.Lost)
	}
	if r.Restart.Hosted != 502 || r.Restart.Joined != 0 || r.Restart.Goroutines == 0 || r.Restart.RSSMiB == 0 {
		t.Fatalf("restart %+v", r.Restart)
	}
	for _, a := range r.Attacks {
		t.Logf("%s: catch-up %+v send %+v attacker %+v refusals %v recovery %.1fs, no refusals after %.1fs",
			a.Name, a.CatchUp, a.Send, a.Attacker, a.Refusals, a.RecoverySeconds, a.PressureClearedSeconds)
		if a.CatchUp.Attempts == 0 || a.Send.Attempts == 0 {
			t.Errorf("%s: members did nothing", a.Name)
		}
		if a.RecoverySeconds < 0 {
			t.Errorf("%s: members not served after the attack", a.Name)
		}
		if a.Attacker.Peers == 0 {
			t.Errorf("%s: no attacker connected", a.Name)
		}
		if len(a.Refusals) == 0 {
			t.Errorf("%s: the host refused nothing", a.Name)
		}
	}
	if r.RestartAfter == nil || r.RestartAfter.Hosted < 502 {
		t.Fatalf("restart after the attacks %+v", r.RestartAfter)
	}
}
