package groupstate

import "testing"

// BenchmarkAdmitPayload judges a payload in a managed group of 1,000
// members (about 1,000 events): naming the head, naming a head 500 events
// back, and of a member removed since (its seen set decides).
func BenchmarkAdmitPayload(b *testing.B) {
	m := newManaged(b, DefaultPolicy())
	var people []*person
	for range 1000 {
		p := newPerson(b, "p")
		m.add(b, p, RoleWrite)
		people = append(people, p)
	}
	old := m.c.Events()[500].ID()
	gone := people[10]
	m.append(b, m.boss, &Event{Kind: EventRemove, Target: gone.key(), Seen: &SeenSet{Upto: 40, Extra: []SeqRange{{50, 60}}}})
	head := m.c.Head()
	for _, tc := range []struct {
		name string
		p    *Payload
	}{
		{"head", m.payloadBy(b, people[999], 0, head, 7, KindText, "hello")},
		{"old-head", m.payloadBy(b, people[20], 0, old, 7, KindText, "hello")},
		{"removed-seen", m.payloadBy(b, gone, 0, old, 55, KindText, "hello")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := m.c.AdmitPayload(tc.p, EventID{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("load-chain", func(b *testing.B) {
		enc, _ := m.c.MarshalBinary()
		for b.Loop() {
			if _, err := UnmarshalChain(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
