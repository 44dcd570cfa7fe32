package groupstate

import (
	"testing"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// t0 is the fixed clock of the managed-group tests.
var t0 = time.Unix(1_800_000_000, 0)

// person is a test member: identity and a key package valid for a day
// around t0 (NewKeyPackage uses the real clock, so the package is built
// by hand and signed like NewKeyPackage does).
type person struct {
	id *keymgmt.Identity
	kp *keymgmt.KeyPackage
}

func (p *person) key() [32]byte { return [32]byte(p.id.SigningKey()) }

func newPerson(t testing.TB, nick string) *person {
	t.Helper()
	return newPersonSuite(t, nick, keymgmt.SuiteX25519)
}

func newPersonSuite(t testing.TB, nick string, suite keymgmt.Suite) *person {
	t.Helper()
	id, err := keymgmt.NewIdentity(suite)
	if err != nil {
		t.Fatal(err)
	}
	return &person{id: id, kp: keyPackageAt(t, id, nick, t0.Add(-time.Hour), t0.Add(24*time.Hour))}
}

// keyPackageAt builds a key package with chosen times: encode it with
// NewKeyPackage's layout by parsing a fresh package and re-signing.
func keyPackageAt(t testing.TB, id *keymgmt.Identity, nick string, created, expires time.Time) *keymgmt.KeyPackage {
	t.Helper()
	kp, err := id.NewKeyPackage(nick, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp.Created, kp.Expires = created.UTC(), expires.UTC()
	b := kp.Marshal()
	signed := b[:len(b)-64]
	kp.Signature = id.Sign(keymgmt.SigContextKeyPackage, signed)
	got, err := keymgmt.ParseKeyPackageBinary(kp.Marshal(), created)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// managed is a managed group seen by its manager.
type managed struct {
	g     *Group
	c     *Chain
	boss  *person
	clock time.Time
}

func newManaged(t testing.TB, policy Policy) *managed {
	t.Helper()
	boss := newPerson(t, "boss")
	g, c, err := NewManagedGroup("managed", []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWtest"}, boss.id, "boss", true, policy, t0)
	if err != nil {
		t.Fatal(err)
	}
	return &managed{g: g, c: c, boss: boss, clock: t0}
}

// tick advances the manager's clock by a second.
func (m *managed) tick() time.Time {
	m.clock = m.clock.Add(time.Second)
	return m.clock
}

// append authors an event as signer and fails the test on error.
func (m *managed) append(t testing.TB, signer *person, ev *Event) *Event {
	t.Helper()
	out, err := m.c.Append(ev, signer.id, m.tick())
	if err != nil {
		t.Fatalf("append %s: %v", ev.Kind, err)
	}
	return out
}

func (m *managed) add(t testing.TB, p *person, role Role) *Event {
	t.Helper()
	return m.append(t, m.boss, &Event{Kind: EventAdd, KeyPackage: p.kp.Marshal(), Role: role})
}

// next builds an unsigned event on the chain's head, as signer, at the
// next tick, without adding it.
func (m *managed) next(t testing.TB, signer *person, ev *Event) *Event {
	t.Helper()
	ev = ev.Clone()
	ev.GroupID = m.c.GroupID()
	ev.Parent = m.c.Head()
	ev.Seq = m.c.state.Height + 1
	ev.Time = m.tick().UnixMilli()
	if err := SignEvent(ev, signer.id); err != nil {
		t.Fatal(err)
	}
	return ev
}
