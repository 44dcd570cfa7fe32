package groupstate

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// BenchmarkKeyPackageSuites compares the classic (X25519) and the
// post-quantum (X-Wing) suite for a key package: ns/op is making one (a
// new HPKE key pair, signing); reported with it the binary and text sizes,
// the time to parse and verify one, and the envelope carrying the add
// event that holds it (padded to its size bucket).
//
// Run: go test -run '^$' -bench 'BenchmarkKeyPackageSuites' ./groupstate
func BenchmarkKeyPackageSuites(b *testing.B) {
	for _, suite := range []keymgmt.Suite{keymgmt.SuiteX25519, keymgmt.SuitePQ} {
		b.Run("suite="+suite.String(), func(b *testing.B) {
			bt := newBenchTreeSuite(b, 2, RotationParams{}, suite)
			id, err := keymgmt.NewIdentity(suite)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var kp *keymgmt.KeyPackage
			for range b.N {
				if kp, err = id.NewKeyPackage("newcomer", 24*time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			bin, text := kp.Marshal(), kp.String()
			const reps = 200
			start := time.Now()
			for range reps {
				if _, err := keymgmt.ParseKeyPackage(text, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			parse := time.Since(start) / reps
			ev, err := bt.m.c.Append(&Event{Kind: EventAdd, KeyPackage: bin, Role: RoleWrite}, bt.m.boss.id, bt.tick())
			if err != nil {
				b.Fatal(err)
			}
			env := benchEventEnvelope(b, bt, ev)
			b.ReportMetric(float64(len(bin)), "bytes")
			b.ReportMetric(float64(len(text)), "text-bytes")
			b.ReportMetric(float64(parse.Nanoseconds())/1e3, "parse-µs")
			b.ReportMetric(float64(env.Size()), "add-envelope-bytes")
		})
	}
}

// BenchmarkWelcomeSuites compares the suites for a welcome into a group
// of n members, all of that suite (the welcome carries the chain's main
// line, so the members' key packages): ns/op is the manager's time to
// make, sign and seal it; reported with it the sealed size, the envelopes
// and their bytes, and the newcomer's time to open and verify it.
//
// Run: go test -run '^$' -bench 'BenchmarkWelcomeSuites' ./groupstate
func BenchmarkWelcomeSuites(b *testing.B) {
	for _, suite := range []keymgmt.Suite{keymgmt.SuiteX25519, keymgmt.SuitePQ} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("suite=%s/members=%d", suite, n), func(b *testing.B) {
				bt := newBenchTreeSuite(b, n, RotationParams{}, suite)
				p := benchPersonSuite(b, suite)
				bt.addMember(b, p, RoleWrite)
				b.ResetTimer()
				var sealedLen, envBytes, envs int
				for range b.N {
					w, err := NewWelcome(bt.m.c, bt.m.g, p.kp, bt.m.boss.id)
					if err != nil {
						b.Fatal(err)
					}
					es, err := SealWelcome(w, p.kp)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					envs, envBytes = len(es), 0
					for _, e := range es {
						envBytes += e.Size()
					}
					pt, _ := MarshalWelcome(w)
					sealedLen = len(pt) + suite.SealOverhead()
					b.StartTimer()
				}
				b.StopTimer()
				w, err := NewWelcome(bt.m.c, bt.m.g, p.kp, bt.m.boss.id)
				if err != nil {
					b.Fatal(err)
				}
				es, err := SealWelcome(w, p.kp)
				if err != nil {
					b.Fatal(err)
				}
				const reps = 5
				start := time.Now()
				for range reps {
					if _, err := OpenWelcome(p.id, p.kp, es); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(sealedLen)/1e3, "kB")
				b.ReportMetric(float64(envs), "envelopes")
				b.ReportMetric(float64(envBytes)/1e3, "envelope-kB")
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/reps/1e3, "newcomer-µs")
			})
		}
	}
}

// benchEventEnvelope seals a state event as the manager posts it.
func benchEventEnvelope(b *testing.B, bt *benchTree, ev *Event) interface{ Size() int } {
	b.Helper()
	body, err := MarshalEvent(ev)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := bt.m.g.Keys(bt.m.g.Epoch)
	if err != nil {
		b.Fatal(err)
	}
	pl := &Payload{GroupID: bt.m.c.GroupID(), Epoch: bt.m.g.Epoch, StateHead: [32]byte(ev.Parent),
		Seq: 1, Kind: KindStateEvent, Nick: "bot", Body: body}
	if err := SignPayloadAs(pl, bt.m.boss.id); err != nil {
		b.Fatal(err)
	}
	env, err := SealMessage(keys, pl)
	if err != nil {
		b.Fatal(err)
	}
	return env
}
