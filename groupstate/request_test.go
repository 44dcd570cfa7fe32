package groupstate

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/meshnode/meshnode/keymgmt"
)

// request signs r as p at the manager's clock.
func (m *managed) request(t testing.TB, p *person, r Request) *Request {
	t.Helper()
	r.GroupID = m.c.GroupID()
	if r.Time == 0 {
		r.Time = m.clock.UnixMilli()
	}
	if err := SignRequest(&r, p.id); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestRequestRoundTrip(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	for _, r := range []Request{
		{Op: RequestAdd, KeyPackage: bob.kp.Marshal(), Role: RoleRead, Bot: true},
		{Op: RequestRemove, Target: bob.key()},
		{Op: RequestSetRole, Target: bob.key(), Role: RoleManage},
		{Op: RequestRotate},
		{Op: RequestSetPolicy, Policy: Policy{History: HistoryFromJoin, RotateEvery: time.Hour, RotateAfter: 3}},
		{Op: RequestSetHosts, Hosts: []string{"/dns4/h.example/tcp/1/p2p/x"}},
		{Op: RequestSetHosts},
		{Op: RequestTransferManager, Target: bob.key()},
	} {
		t.Run(r.Op.String(), func(t *testing.T) {
			signed := m.request(t, m.boss, r)
			b, err := MarshalRequest(signed)
			if err != nil {
				t.Fatal(err)
			}
			if want := byte(RequestVersion1); r.Op == RequestTransferManager {
				if b[0] != RequestVersion2 {
					t.Fatalf("a transfer encoded as version %d", b[0])
				}
			} else if b[0] != want {
				t.Fatalf("a %s request encoded as version %d, want %d (readable by bots that predate version 2)", r.Op, b[0], want)
			}
			got, err := ParseRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, signed) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, signed)
			}
		})
	}
}

func TestAuthorizeRequest(t *testing.T) {
	m := newManaged(t, DefaultPolicy()) // the boss is the bot
	admin, writer, gone, newbie, bob := newPerson(t, "admin"), newPerson(t, "writer"), newPerson(t, "gone"), newPerson(t, "newbie"), newPerson(t, "bob")
	m.add(t, admin, RoleManage)
	m.add(t, writer, RoleWrite)
	m.add(t, gone, RoleManage)
	m.add(t, bob, RoleWrite)
	reader := newPerson(t, "reader")
	m.add(t, reader, RoleRead)
	m.append(t, m.boss, &Event{Kind: EventRemove, Target: gone.key()})
	now := m.clock
	expiredKP := keyPackageAt(t, newbie.id, "newbie", t0.Add(-3*time.Hour), t0.Add(-time.Hour))
	other := newManaged(t, DefaultPolicy())

	badSig := m.request(t, admin, Request{Op: RequestRotate})
	badSig.Signature[5] ^= 1
	wrongGroup := m.request(t, admin, Request{Op: RequestRotate})
	wrongGroup.GroupID = other.c.GroupID()
	_ = SignRequest(wrongGroup, admin.id)

	tests := []struct {
		name string
		r    *Request
		want error
	}{
		{"manager adds", m.request(t, admin, Request{Op: RequestAdd, KeyPackage: newbie.kp.Marshal(), Role: RoleWrite}), nil},
		{"manager removes", m.request(t, admin, Request{Op: RequestRemove, Target: writer.key()}), nil},
		{"manager demotes", m.request(t, admin, Request{Op: RequestSetRole, Target: writer.key(), Role: RoleRead}), nil},
		{"manager rotates", m.request(t, admin, Request{Op: RequestRotate}), nil},
		{"manager sets policy", m.request(t, admin, Request{Op: RequestSetPolicy, Policy: Policy{History: HistoryFromJoin}}), nil},
		{"manager sets hosts", m.request(t, admin, Request{Op: RequestSetHosts}), nil},
		{"manager leaves", m.request(t, admin, Request{Op: RequestRemove, Target: admin.key()}), nil},
		{"writer asks to add", m.request(t, writer, Request{Op: RequestAdd, KeyPackage: newbie.kp.Marshal(), Role: RoleWrite}), ErrUnauthorized},
		{"writer asks to rotate", m.request(t, writer, Request{Op: RequestRotate}), ErrUnauthorized},
		{"writer asks to promote itself", m.request(t, writer, Request{Op: RequestSetRole, Target: writer.key(), Role: RoleManage}), ErrUnauthorized},
		{"writer leaves", m.request(t, writer, Request{Op: RequestRemove, Target: writer.key()}), nil},
		{"reader leaves", m.request(t, reader, Request{Op: RequestRemove, Target: reader.key()}), nil},
		{"reader asks to rotate", m.request(t, reader, Request{Op: RequestRotate}), ErrUnauthorized},
		{"writer asks to remove another", m.request(t, writer, Request{Op: RequestRemove, Target: bob.key()}), ErrUnauthorized},
		{"removed member leaves", m.request(t, gone, Request{Op: RequestRemove, Target: gone.key()}), ErrUnauthorized},
		{"stranger leaves", m.request(t, newbie, Request{Op: RequestRemove, Target: newbie.key()}), ErrUnauthorized},
		{"removed manager", m.request(t, gone, Request{Op: RequestRemove, Target: bob.key()}), ErrUnauthorized},
		{"stranger", m.request(t, newbie, Request{Op: RequestRotate}), ErrUnauthorized},
		{"bad signature", badSig, ErrBadSignature},
		{"other group", wrongGroup, ErrWrongGroup},
		{"too old", m.request(t, admin, Request{Op: RequestRotate, Time: now.Add(-MaxRequestAge - time.Second).UnixMilli()}), ErrRequestExpired},
		{"from the future", m.request(t, admin, Request{Op: RequestRotate, Time: now.Add(MaxRequestSkew + time.Second).UnixMilli()}), ErrRequestExpired},
		{"expired key package", m.request(t, admin, Request{Op: RequestAdd, KeyPackage: expiredKP.Marshal(), Role: RoleRead}), keymgmt.ErrExpired},
		{"unparseable key package", m.request(t, admin, Request{Op: RequestAdd, KeyPackage: []byte{1, 2, 3}, Role: RoleRead}), keymgmt.ErrMalformed},
		{"add a member", m.request(t, admin, Request{Op: RequestAdd, KeyPackage: bob.kp.Marshal(), Role: RoleRead}), ErrInvalidEvent},
		{"remove a non-member", m.request(t, admin, Request{Op: RequestRemove, Target: newbie.key()}), ErrInvalidEvent},
		{"manager transfers to a writer", m.request(t, admin, Request{Op: RequestTransferManager, Target: writer.key()}), nil},
		{"manager transfers to a reader", m.request(t, admin, Request{Op: RequestTransferManager, Target: reader.key()}), nil},
		{"transfer to a manager", m.request(t, admin, Request{Op: RequestTransferManager, Target: m.boss.key()}), ErrInvalidEvent},
		{"transfer to itself", m.request(t, admin, Request{Op: RequestTransferManager, Target: admin.key()}), ErrInvalidEvent},
		{"transfer to a non-member", m.request(t, admin, Request{Op: RequestTransferManager, Target: newbie.key()}), ErrInvalidEvent},
		{"transfer to a removed member", m.request(t, admin, Request{Op: RequestTransferManager, Target: gone.key()}), ErrInvalidEvent},
		{"writer asks to transfer", m.request(t, writer, Request{Op: RequestTransferManager, Target: bob.key()}), ErrUnauthorized},
		{"writer asks to take over", m.request(t, writer, Request{Op: RequestTransferManager, Target: writer.key()}), ErrUnauthorized},
		{"removed manager transfers", m.request(t, gone, Request{Op: RequestTransferManager, Target: bob.key()}), ErrUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := m.c.State()
			err := AuthorizeRequest(m.c.State(), tc.r, now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v; want %v", err, tc.want)
			}
			if !reflect.DeepEqual(before, m.c.State()) {
				t.Fatal("AuthorizeRequest changed the state")
			}
		})
	}
	// The bot applies an authorized request as its own event.
	r := m.request(t, admin, Request{Op: RequestAdd, KeyPackage: newbie.kp.Marshal(), Role: RoleWrite})
	if err := AuthorizeRequest(m.c.State(), r, now); err != nil {
		t.Fatal(err)
	}
	ev, err := m.c.Append(r.Event(), m.boss.id, now)
	if err != nil {
		t.Fatal(err)
	}
	if mb, ok := m.c.Member(newbie.id.SigningKey()); !ok || mb.Role != RoleWrite || ev.AuthorKey().Equal(admin.id.SigningKey()) {
		t.Fatal("request not applied as the bot's event")
	}
	// A member's request to leave becomes the bot's removal of it.
	leave := m.request(t, reader, Request{Op: RequestRemove, Target: reader.key()})
	if err := AuthorizeRequest(m.c.State(), leave, now); err != nil {
		t.Fatal(err)
	}
	if _, err := m.c.Append(leave.Event(), m.boss.id, now); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.c.Member(reader.id.SigningKey()); ok || m.c.State().RotationDue != RotateRemoved {
		t.Fatal("a leave request not applied as the bot's removal")
	}
	if (&Request{Op: RequestRotate}).Event() != nil {
		t.Fatal("a rotation request has an event template")
	}
	// A transfer becomes the bot's promotion of the target, then the
	// requester's step down: the requester is left a writer.
	transfer := m.request(t, admin, Request{Op: RequestTransferManager, Target: bob.key()})
	if err := AuthorizeRequest(m.c.State(), transfer, now); err != nil {
		t.Fatal(err)
	}
	if transfer.Event() != nil {
		t.Fatal("a transfer request has a single event template")
	}
	promote, stepDown := transfer.TransferEvents()
	m.append(t, m.boss, promote)
	m.append(t, m.boss, stepDown)
	if b, _ := m.c.Member(bob.id.SigningKey()); b.Role != RoleManage {
		t.Fatalf("transfer target's role: %s", b.Role)
	}
	if a, _ := m.c.Member(admin.id.SigningKey()); a.Role != RoleWrite {
		t.Fatalf("transfer requester's role: %s", a.Role)
	}
	if p, s := (&Request{Op: RequestRemove}).TransferEvents(); p != nil || s != nil {
		t.Fatal("a removal has transfer events")
	}
	// The requester is no manager any more: the same transfer again is
	// refused, as is one to another member.
	if err := AuthorizeRequest(m.c.State(), transfer, now); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("a transfer by the former manager: %v", err)
	}
	// A rejected request is a request the requester could not make either:
	// a last manager stepping down.
	solo := newManaged(t, DefaultPolicy())
	if err := AuthorizeRequest(solo.c.State(), solo.request(t, solo.boss, Request{Op: RequestRemove, Target: solo.boss.key()}), solo.clock); !errors.Is(err, ErrLastManager) {
		t.Fatalf("last manager: %v", err)
	}
}

func TestParseRequestRejects(t *testing.T) {
	m := newManaged(t, DefaultPolicy())
	bob := newPerson(t, "bob")
	good, _ := MarshalRequest(m.request(t, m.boss, Request{Op: RequestSetRole, Target: bob.key(), Role: RoleRead}))
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	transfer, _ := MarshalRequest(m.request(t, m.boss, Request{Op: RequestTransferManager, Target: bob.key()}))
	mutT := func(f func([]byte) []byte) []byte { return f(bytes.Clone(transfer)) }
	const opOff = 1 + 16 + 32 + 8
	if _, err := ParseRequest(transfer); err != nil {
		t.Fatalf("the valid transfer the rejections start from: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version":        mut(func(b []byte) []byte { b[0] = 3; return b }),
		"version 0":      mut(func(b []byte) []byte { b[0] = 0; return b }),
		"v1 op as v2":    mut(func(b []byte) []byte { b[0] = RequestVersion2; return b }),
		"transfer as v1": mutT(func(b []byte) []byte { b[0] = RequestVersion1; return b }),
		"transfer role": mutT(func(b []byte) []byte {
			return append(b[:len(b)-64], append([]byte{byte(RoleWrite)}, b[len(b)-64:]...)...)
		}),
		"transfer len":   mutT(func(b []byte) []byte { b[opOff+4]--; return b }),
		"transfer short": mutT(func(b []byte) []byte { b[opOff+4] = 31; return append(b[:len(b)-65], b[len(b)-64:]...) }),
		"zero transfer":  mutT(func(b []byte) []byte { clear(b[opOff+5 : opOff+5+32]); return b }),
		"op 8 as v2":     mutT(func(b []byte) []byte { b[opOff] = 8; return b }),
		"unknown op":     mut(func(b []byte) []byte { b[opOff] = 9; return b }),
		"op read as rot": mut(func(b []byte) []byte { b[opOff] = byte(RequestRotate); return b }),
		"bad role":       mut(func(b []byte) []byte { b[len(b)-65] = 7; return b }),
		"zero target":    mut(func(b []byte) []byte { clear(b[opOff+5 : opOff+5+32]); return b }),
		"length":         mut(func(b []byte) []byte { b[opOff+4]++; return b }),
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), 0),
		"negative time":  mut(func(b []byte) []byte { b[1+16+32] = 0x80; return b }),
	} {
		if _, err := ParseRequest(b); !errors.Is(err, ErrRequestMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Unused fields are refused when signing.
	for name, r := range map[string]Request{
		"rotate with target":  {Op: RequestRotate, Target: bob.key()},
		"remove with role":    {Op: RequestRemove, Target: bob.key(), Role: RoleRead},
		"add without role":    {Op: RequestAdd, KeyPackage: bob.kp.Marshal()},
		"transfer w/o target": {Op: RequestTransferManager},
		"transfer with role":  {Op: RequestTransferManager, Target: bob.key(), Role: RoleManage},
	} {
		r.GroupID = m.c.GroupID()
		if err := SignRequest(&r, m.boss.id); !errors.Is(err, ErrRequestMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNeedsRotation(t *testing.T) {
	m := newManaged(t, Policy{History: HistoryShared, RotateEvery: time.Hour, RotateAfter: 100})
	st := m.c.State()
	last := st.RotatedAt
	tests := []struct {
		name string
		st   *State
		msgs uint64
		now  time.Time
		due  bool
		why  RotationReason
	}{
		{"fresh", st, 0, last.Add(time.Minute), false, RotateNotDue},
		{"period reached", st, 0, last.Add(time.Hour), true, RotatePeriodic},
		{"messages reached", st, 100, last.Add(time.Minute), true, RotateMessages},
		{"messages below", st, 99, last.Add(time.Minute), false, RotateNotDue},
		{"nil state", nil, 1000, last.Add(1000 * time.Hour), false, RotateNotDue},
		{"no policy", func() *State { s := st.Clone(); s.Policy = DefaultPolicy(); return s }(), 1 << 40, last.Add(1e6 * time.Hour), false, RotateNotDue},
		{"membership first", func() *State { s := st.Clone(); s.RotationDue = RotateRemoved; return s }(), 1000, last.Add(10 * time.Hour), true, RotateRemoved},
	}
	for _, tc := range tests {
		due, why := NeedsRotation(tc.st, last, tc.msgs, tc.now)
		if due != tc.due || why != tc.why {
			t.Errorf("%s: %v %v, want %v %v", tc.name, due, why, tc.due, tc.why)
		}
	}
	for _, s := range []string{"read", "Write", " manage "} {
		if _, err := ParseRole(s); err != nil {
			t.Errorf("ParseRole(%q): %v", s, err)
		}
	}
	if _, err := ParseRole("admin"); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("ParseRole(admin): %v", err)
	}
	if h, err := ParseHistoryMode("from-join"); err != nil || h != HistoryFromJoin {
		t.Errorf("ParseHistoryMode: %v %v", h, err)
	}
	if _, err := ParseHistoryMode("all"); !errors.Is(err, ErrInvalidEvent) || !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("ParseHistoryMode(all): %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	m := newManaged(f, DefaultPolicy())
	bob := newPerson(f, "bob")
	for _, r := range []Request{
		{Op: RequestAdd, KeyPackage: bob.kp.Marshal(), Role: RoleRead},
		{Op: RequestSetPolicy, Policy: DefaultPolicy()},
		{Op: RequestRotate},
		{Op: RequestRemove, Target: m.boss.key()}, // leaving
		{Op: RequestSetHosts, Hosts: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"}},
		{Op: RequestTransferManager, Target: bob.key()}, // version 2
	} {
		b, _ := MarshalRequest(m.request(f, m.boss, r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			if !errors.Is(err, ErrRequestMalformed) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		out, err := MarshalRequest(r)
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("accepted request does not re-encode canonically: %v", err)
		}
	})
}

// TestInvalidPolicy: a policy value out of bounds is ErrInvalidPolicy,
// which is also an ErrInvalidEvent (an event setting it does not apply);
// other events that do not apply are not policy errors.
func TestInvalidPolicy(t *testing.T) {
	for _, p := range []Policy{
		{History: HistoryMode(9)},
		{RotateEvery: -time.Hour},
		{RotateEvery: time.Second},
		{RotateEvery: MaxRotateEvery + time.Hour},
		{RotateEvery: MinRotateEvery + time.Millisecond},
	} {
		err := p.validate()
		if !errors.Is(err, ErrInvalidPolicy) || !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%+v: %v, want ErrInvalidPolicy and ErrInvalidEvent", p, err)
		}
	}
	if err := DefaultPolicy().validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
	if errors.Is(ErrInvalidEvent, ErrInvalidPolicy) {
		t.Error("every ErrInvalidEvent is a policy error")
	}
}
