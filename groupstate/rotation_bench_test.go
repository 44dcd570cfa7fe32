package groupstate

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// benchGroup is a managed group of n members (the manager included), a
// third of them read-only, with X25519 identities, on the real clock.
func benchGroup(b *testing.B, n int) (*managed, []*person) {
	b.Helper()
	boss := &person{}
	var err error
	if boss.id, err = keymgmt.NewIdentity(keymgmt.SuiteX25519); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	g, c, err := NewManagedGroup("bench", nil, boss.id, "bot", true, DefaultPolicy(), now)
	if err != nil {
		b.Fatal(err)
	}
	m := &managed{g: g, c: c, boss: boss, clock: now}
	people := make([]*person, 0, n-1)
	for i := range n - 1 {
		id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
		if err != nil {
			b.Fatal(err)
		}
		kp, err := id.NewKeyPackage("member", 24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		p := &person{id: id, kp: kp}
		people = append(people, p)
		role := RoleWrite
		if i%3 == 0 {
			role = RoleRead
		}
		if _, err := m.c.Append(&Event{Kind: EventAdd, KeyPackage: kp.Marshal(), Role: role}, boss.id, now); err != nil {
			b.Fatal(err)
		}
	}
	return m, people
}

// BenchmarkRotation measures a rotation of groups of 10 to 10,000 members
// (ARCHITECTURE §7, issue 4 item 9). ns/op is the manager's time to draw
// the secrets, sign the rotate event and build every key update part
// (HPKE seals on GOMAXPROCS cores). Reported with it:
//
//	parts          key update parts (= envelopes in the old mailbox)
//	kB             encoded key update, all parts
//	envelope-kB    the envelopes carrying it, padded and signed
//	member-µs      a member's time to parse every part, find its slot and
//	               open its copy (mean over 32 members)
func BenchmarkRotation(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			m, people := benchGroup(b, n)
			var rot *Rotation
			for b.Loop() {
				var err error
				if rot, err = m.c.Rotate(m.boss.id, m.tick(), 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			keys, err := m.g.CurrentKeys()
			if err != nil {
				b.Fatal(err)
			}
			var wires [][]byte
			total, envBytes := 0, 0
			for i, part := range rot.Parts {
				w, err := MarshalKeyUpdate(part)
				if err != nil {
					b.Fatal(err)
				}
				wires = append(wires, w)
				total += len(w)
				p := &Payload{GroupID: m.c.GroupID(), Epoch: rot.Event.Epoch - 1, StateHead: [32]byte(rot.Event.Parent),
					Seq: uint64(i + 1), Kind: KindKeyUpdate, Nick: "bot", Body: w}
				if err := SignPayloadAs(p, m.boss.id); err != nil {
					b.Fatal(err)
				}
				env, err := SealMessage(keys, p)
				if err != nil {
					b.Fatal(err)
				}
				envBytes += env.Size()
			}
			st, err := m.c.StateAt(rot.Event.ID())
			if err != nil {
				b.Fatal(err)
			}
			const samples = 32
			var start time.Time
			for s := -1; s < samples; s++ { // s = -1 warms up, untimed
				if s == 0 {
					start = time.Now()
				}
				me := people[max(s, 0)*len(people)/samples]
				opened := false
				for _, w := range wires {
					ku, err := ParseKeyUpdate(w)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := OpenKeyUpdate(me.id, st, ku); err == nil {
						opened = true
						break
					} else if !errors.Is(err, keymgmt.ErrNotRecipient) {
						b.Fatal(err)
					}
				}
				if !opened {
					b.Fatal("member found no copy")
				}
			}
			perMember := time.Since(start) / samples
			b.ReportMetric(float64(len(rot.Parts)), "parts")
			b.ReportMetric(float64(total)/1e3, "kB")
			b.ReportMetric(float64(envBytes)/1e3, "envelope-kB")
			b.ReportMetric(float64(perMember.Microseconds()), "member-µs")
		})
	}
}
