package groupstate

import (
	"bytes"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/keymgmt"
)

// rotate rotates m's group and records the secrets in the manager's record.
func (m *managed) rotate(t testing.TB) *Rotation {
	t.Helper()
	rot, err := m.c.Rotate(m.boss.id, m.tick(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.g.AddEpoch(rot.Event.Epoch, rot.Secrets); err != nil {
		t.Fatal(err)
	}
	return rot
}

// welcome builds, seals and opens a welcome for p.
func (m *managed) welcome(t testing.TB, p *person) (*Joined, []*envelope.Envelope) {
	t.Helper()
	w, err := NewWelcome(m.c, m.g, p.kp, m.boss.id)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := SealWelcome(w, p.kp)
	if err != nil {
		t.Fatal(err)
	}
	j, err := OpenWelcome(p.id, p.kp, envs)
	if err != nil {
		t.Fatal(err)
	}
	return j, envs
}

func TestWelcomeShared(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	m.add(t, newPerson(t, "old"), RoleWrite)
	m.rotate(t)
	m.rotate(t)
	newbie, reader := newPerson(t, "newbie"), newPerson(t, "reader")
	m.add(t, newbie, RoleWrite)
	m.add(t, reader, RoleRead)
	j, envs := m.welcome(t, newbie)
	if len(envs) != 1 {
		t.Fatalf("a small welcome took %d envelopes", len(envs))
	}
	wantMailbox, _ := WelcomeMailbox(newbie.kp)
	if envs[0].Mailbox() != wantMailbox.Mailbox {
		t.Fatal("welcome not posted to the welcome mailbox")
	}
	g := j.Group
	if g.ID != m.g.ID || g.Name != "managed" || g.Epoch != 2 || g.History != HistoryShared || !slices.Equal(g.Hosts, m.g.Hosts) || !g.Created.Equal(t0) {
		t.Fatalf("joined group %+v", g)
	}
	if j.Role != RoleWrite || j.Chain.Head() != m.c.Head() || j.WelcomedBy.Fingerprint() != m.boss.id.Fingerprint() {
		t.Fatalf("joined: role %v, welcomed by %s", j.Role, j.WelcomedBy.Fingerprint())
	}
	for e := range uint64(3) {
		s := g.Secrets[e]
		if s == nil || s.Read != m.g.Secrets[e].Read {
			t.Fatalf("epoch %d: missing or wrong read secret", e)
		}
		if (s.Write != nil) != (e == 2) {
			t.Fatalf("epoch %d: write secret present %v", e, s.Write != nil)
		}
	}
	if !g.CanWrite() {
		t.Fatal("a writer joined without write access")
	}
	// The newcomer reads history: a message of epoch 0 opens.
	k0, _ := m.g.Keys(0)
	p := &Payload{GroupID: m.g.ID, Epoch: 0, Seq: 1, Kind: KindText, Body: []byte("old news")}
	_ = SignPayloadAs(p, m.boss.id)
	env, _ := SealMessage(k0, p)
	jk0, err := g.Keys(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMessage(jk0, g.ID, 0, env); err != nil {
		t.Fatalf("shared-history newcomer cannot read epoch 0: %v", err)
	}
	// A reader gets R only, now and before.
	jr, _ := m.welcome(t, reader)
	for e, s := range jr.Group.Secrets {
		if s.Write != nil {
			t.Fatalf("reader got the write secret of epoch %d", e)
		}
	}
	if jr.Role != RoleRead || jr.Group.CanWrite() || len(jr.Group.Secrets) != 3 {
		t.Fatalf("reader: role %v, %d epochs", jr.Role, len(jr.Group.Secrets))
	}
	// The joined group stores and loads.
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Group
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
}

func TestWelcomeFromJoin(t *testing.T) {
	m := newManaged(t, Policy{History: HistoryFromJoin})
	m.add(t, newPerson(t, "old"), RoleWrite)
	m.rotate(t)
	newbie := newPerson(t, "newbie")
	m.add(t, newbie, RoleWrite)
	if due, why := NeedsRotation(m.c.State(), m.c.State().RotatedAt, 0, m.clock); !due || why != RotateAdded {
		t.Fatalf("add under from-join: due %v %v", due, why)
	}
	if _, err := NewWelcome(m.c, m.g, newbie.kp, m.boss.id); !errors.Is(err, ErrRotationDue) {
		t.Fatalf("welcome before the rotation: %v", err)
	}
	k1, _ := m.g.Keys(1)
	m.rotate(t)
	j, _ := m.welcome(t, newbie)
	if len(j.Group.Secrets) != 1 || j.Group.Secrets[2] == nil || j.Group.Epoch != 2 {
		t.Fatalf("from-join newcomer holds epochs %v", slices.Sorted(maps.Keys(j.Group.Secrets)))
	}
	if _, err := j.Group.Keys(1); !errors.Is(err, ErrNoEpoch) {
		t.Fatalf("from-join newcomer has keys for the epoch it was added in: %v", err)
	}
	// A message of the epoch it was added in does not open with what it has.
	p := &Payload{GroupID: m.g.ID, Epoch: 1, Seq: 1, Kind: KindText, Body: []byte("before you came")}
	_ = SignPayloadAs(p, m.boss.id)
	env, _ := SealMessage(k1, p)
	jk, _ := j.Group.CurrentKeys()
	if _, err := OpenMessage(jk, m.g.ID, 1, env); err == nil {
		t.Fatal("from-join newcomer read an earlier message")
	}
}

func TestWelcomeManyEnvelopes(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	for range 300 {
		m.add(t, newPerson(t, "member with a long enough nickname"), RoleRead)
	}
	newbie := newPerson(t, "newbie")
	m.add(t, newbie, RoleWrite)
	w, err := NewWelcome(m.c, m.g, newbie.kp, m.boss.id)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := SealWelcome(w, newbie.kp)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) < 2 {
		t.Fatalf("a welcome of 300 members fit %d envelope", len(envs))
	}
	for _, e := range envs {
		if e.Size() > envelope.DefaultMaxSize {
			t.Fatalf("welcome envelope of %d bytes", e.Size())
		}
	}
	// Shuffled, with a duplicate, an older incomplete welcome and junk.
	older, _ := SealWelcome(w, newbie.kp)
	junkKeys, _ := m.g.CurrentKeys()
	junk, _ := sealPadded(junkKeys, []byte("junk"))
	mix := append(slices.Clone(envs), envs[0], older[1], junk)
	rand.Shuffle(len(mix), func(i, j int) { mix[i], mix[j] = mix[j], mix[i] })
	j, err := OpenWelcome(newbie.id, newbie.kp, mix)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Chain.State().Members) != 302 {
		t.Fatalf("%d members", len(j.Chain.State().Members))
	}
	if _, err := OpenWelcome(newbie.id, newbie.kp, envs[1:]); !errors.Is(err, ErrWelcomeIncomplete) {
		t.Fatalf("a missing envelope: %v", err)
	}
}

// sealCrafted signs w as signer and seals it to kp, bypassing NewWelcome.
func sealCrafted(t testing.TB, w *Welcome, signer *person, kp *keymgmt.KeyPackage) []*envelope.Envelope {
	t.Helper()
	w.Author = signer.key()
	signed, err := w.appendSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	copy(w.Signature[:], signer.id.Sign(WelcomeSigContext, signed))
	envs, err := SealWelcome(w, kp)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func TestWelcomeRejects(t *testing.T) {
	m := newManaged(t, Policy{History: HistoryFromJoin})
	writer, newbie, stranger := newPerson(t, "writer"), newPerson(t, "newbie"), newPerson(t, "stranger")
	m.add(t, writer, RoleWrite)
	m.rotate(t)
	m.add(t, newbie, RoleRead)
	m.rotate(t)
	good, err := NewWelcome(m.c, m.g, newbie.kp, m.boss.id)
	if err != nil {
		t.Fatal(err)
	}
	clone := func(f func(w *Welcome)) *Welcome {
		c := *good
		c.Secrets = map[uint64]*keymgmt.EpochSecrets{}
		for e, s := range good.Secrets {
			c.Secrets[e] = s
		}
		c.Events = slices.Clone(good.Events)
		f(&c)
		return &c
	}
	goodEnvs, _ := SealWelcome(good, newbie.kp)

	tests := []struct {
		name string
		envs []*envelope.Envelope
		want error
	}{
		{"signed by a writer", sealCrafted(t, clone(func(*Welcome) {}), writer, newbie.kp), ErrUnauthorized},
		{"signed by a stranger", sealCrafted(t, clone(func(*Welcome) {}), stranger, newbie.kp), ErrUnauthorized},
		{"past secrets under from-join", sealCrafted(t, clone(func(w *Welcome) { w.Secrets[0] = m.g.Secrets[0].ReadOnly() }), m.boss, newbie.kp), ErrWelcomeInvalid},
		{"secrets that do not match the chain", sealCrafted(t, clone(func(w *Welcome) { s, _ := keymgmt.NewEpochSecrets(); w.Secrets[2] = s.ReadOnly() }), m.boss, newbie.kp), ErrWelcomeInvalid},
		{"no current secrets", sealCrafted(t, clone(func(w *Welcome) { delete(w.Secrets, 2); w.Secrets[1] = m.g.Secrets[1].ReadOnly() }), m.boss, newbie.kp), ErrWelcomeInvalid},
		{"head not the chain's", sealCrafted(t, clone(func(w *Welcome) { w.Head[0] ^= 1 }), m.boss, newbie.kp), ErrWelcomeInvalid},
		{"epoch not the chain's", sealCrafted(t, clone(func(w *Welcome) { w.Epoch = 1 }), m.boss, newbie.kp), ErrWelcomeInvalid},
		{"chain with a gap", sealCrafted(t, clone(func(w *Welcome) { w.Events = slices.Delete(w.Events, 2, 3) }), m.boss, newbie.kp), ErrWelcomeInvalid},
		{"chain cut before the newcomer", sealCrafted(t, clone(func(w *Welcome) {
			w.Events = w.Events[:3]
			w.Head, w.Epoch = w.Events[2].ID(), 1
			w.Secrets = map[uint64]*keymgmt.EpochSecrets{1: m.g.Secrets[1].ReadOnly()}
		}), m.boss, newbie.kp), ErrWelcomeInvalid},
		{"envelopes of another newcomer", sealCrafted(t, clone(func(w *Welcome) { w.KeyPackage = keyPackageHash(writer.kp) }), m.boss, writer.kp), ErrWelcomeIncomplete},
		{"no envelopes", nil, ErrWelcomeIncomplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, err := OpenWelcome(newbie.id, newbie.kp, tc.envs)
			if !errors.Is(err, tc.want) || j != nil {
				t.Fatalf("got %v; want %v", err, tc.want)
			}
		})
	}
	// A valid signature over other bytes: flip the signature before
	// sealing.
	forged := clone(func(*Welcome) {})
	sealCrafted(t, forged, m.boss, newbie.kp)
	forged.Signature[0] ^= 1
	envs, _ := SealWelcome(forged, newbie.kp)
	if _, err := OpenWelcome(newbie.id, newbie.kp, envs); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged signature: %v", err)
	}
	// Another identity cannot open the newcomer's welcome, even with the key
	// package (which is public).
	if _, err := OpenWelcome(stranger.id, newbie.kp, goodEnvs); !errors.Is(err, ErrWelcomeInvalid) {
		t.Fatalf("stranger with the key package: %v", err)
	}
	// NewWelcome refuses what it cannot vouch for.
	for name, tc := range map[string]struct {
		kp     *keymgmt.KeyPackage
		signer *person
		want   error
	}{
		"not a member":       {stranger.kp, m.boss, ErrWelcomeInvalid},
		"signer not manager": {newbie.kp, writer, ErrUnauthorized},
		"other keys":         {keyPackageAt(t, newPerson(t, "x").id, "newbie", t0, t0.Add(1e12)), m.boss, ErrWelcomeInvalid},
	} {
		if _, err := NewWelcome(m.c, m.g, tc.kp, tc.signer.id); !errors.Is(err, tc.want) {
			t.Errorf("NewWelcome %s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := SealWelcome(good, writer.kp); !errors.Is(err, ErrWelcomeInvalid) {
		t.Errorf("SealWelcome to another key package: %v", err)
	}
}

func TestWelcomeMailbox(t *testing.T) {
	a, b := newPerson(t, "a"), newPerson(t, "b")
	ka, _ := WelcomeMailbox(a.kp)
	ka2, _ := WelcomeMailbox(a.kp)
	kb, _ := WelcomeMailbox(b.kp)
	if ka.Mailbox != ka2.Mailbox || ka.ReadKey != ka2.ReadKey {
		t.Fatal("welcome mailbox is not deterministic")
	}
	if ka.Mailbox == kb.Mailbox || ka.ReadKey == kb.ReadKey {
		t.Fatal("two key packages share a welcome mailbox")
	}
	if !ka.CanWrite() || ka.Mailbox != envelope.MailboxFor(ka.WritePub) {
		t.Fatal("welcome mailbox is not a self-certifying mailbox with its write key")
	}
	// A second key package of the same identity has another mailbox.
	a2 := keyPackageAt(t, a.id, "a", t0, t0.Add(1e12))
	if k, _ := WelcomeMailbox(a2); k.Mailbox == ka.Mailbox {
		t.Fatal("two key packages of one identity share a welcome mailbox")
	}
}

func TestParseWelcomeRejects(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	newbie := newPerson(t, "newbie")
	m.add(t, newbie, RoleWrite)
	m.rotate(t)
	w, _ := NewWelcome(m.c, m.g, newbie.kp, m.boss.id)
	good, err := MarshalWelcome(w)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseWelcome(good); err != nil || len(back.Secrets) != 2 || len(back.Events) != len(w.Events) {
		t.Fatalf("round trip: %v", err)
	}
	const secretsOff = 1 + 16 + 8 + 32 + 32 + 32
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version":        mut(func(b []byte) []byte { b[0] = 9; return b }),
		"no secrets":     mut(func(b []byte) []byte { clear(b[secretsOff : secretsOff+4]); return b }),
		"secrets order":  mut(func(b []byte) []byte { b[secretsOff+4+7] = 5; return b }),
		"bad secrets":    mut(func(b []byte) []byte { b[secretsOff+4+8+1] = 7; return b }),
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), 0),
		"too many count": mut(func(b []byte) []byte { b[secretsOff] = 0xff; return b }),
	} {
		if _, err := ParseWelcome(b); !errors.Is(err, ErrWelcomeMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, f := range map[string][]byte{
		"empty":       nil,
		"version":     {2, 0},
		"zero count":  append(append([]byte{1}, make([]byte, 16)...), 0, 0, 0, 0, 1),
		"index beyon": append(append([]byte{1}, make([]byte, 16)...), 0, 1, 0, 1, 1),
		"no chunk":    append(append([]byte{1}, make([]byte, 16)...), 0, 0, 0, 1),
		"short inner": append(append([]byte{1}, make([]byte, 16)...), 0, 0, 0, 2, 1),
	} {
		if _, err := parseWelcomeFrame(f); !errors.Is(err, ErrWelcomeMalformed) {
			t.Errorf("frame %s: %v", name, err)
		}
	}
}

func FuzzParseWelcome(f *testing.F) {
	m := newManaged(f, DefaultPolicy())
	newbie := newPerson(f, "newbie")
	m.add(f, newbie, RoleRead)
	w, _ := NewWelcome(m.c, m.g, newbie.kp, m.boss.id)
	b, err := MarshalWelcome(w)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := ParseWelcome(data)
		if err != nil {
			if !errors.Is(err, ErrWelcomeMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		out, err := MarshalWelcome(w)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted welcome does not re-encode canonically: %v", err)
		}
	})
}

func FuzzParseWelcomeFrame(f *testing.F) {
	f.Add(append(append([]byte{1}, make([]byte, 16)...), 0, 0, 0, 1, 1, 2, 3))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := parseWelcomeFrame(data)
		if err != nil {
			if !errors.Is(err, ErrWelcomeMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if fr.index >= fr.count || len(fr.chunk) == 0 || len(fr.chunk)+welcomeFrameHeader != len(data) {
			t.Fatalf("accepted frame %d of %d with %d bytes", fr.index, fr.count, len(fr.chunk))
		}
	})
}
