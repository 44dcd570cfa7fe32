package admission

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/store"
)

func testController(t *testing.T, mod func(*Params)) *Controller {
	t.Helper()
	p := DefaultParams()
	if mod != nil {
		mod(&p)
	}
	c, err := New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKeyOf(t *testing.T) {
	p := DefaultParams()
	for _, tc := range []struct {
		addr string
		want string
	}{
		{"/ip4/192.0.2.77/tcp/1", "192.0.2.0/24"},
		{"/ip6/2001:db8:1:2:3::1/tcp/1", "2001:db8:1::/48"},
		{"/ip6/::ffff:198.51.100.9/tcp/1", "198.51.100.0/24"},
		{"/ip4/127.0.0.1/tcp/1", ""},
		{"/ip6/::1/tcp/1", ""},
		{"/dns4/example.com/tcp/1", ""},
	} {
		got := p.KeyOf(ma.StringCast(tc.addr))
		if (tc.want == "" && got.IsValid()) || (tc.want != "" && got != netip.MustParsePrefix(tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.addr, got, tc.want)
		}
	}
	p.ExemptLoopback = false
	if got := p.KeyOf(ma.StringCast("/ip4/127.0.2.9/tcp/1")); got != netip.MustParsePrefix("127.0.2.0/24") {
		t.Errorf("loopback without exemption: %v", got)
	}
	if p.KeyOf(nil).IsValid() {
		t.Error("nil address has a key")
	}
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Params){
		"v4 bits":      func(p *Params) { p.IPv4PrefixBits = 33 },
		"v6 bits":      func(p *Params) { p.IPv6PrefixBits = 4 },
		"reserved":     func(p *Params) { p.Fetch.ReservedStreams = p.Fetch.MaxStreams },
		"pending":      func(p *Params) { p.Relay.MaxPending = 0 },
		"negative":     func(p *Params) { p.NewMailboxRate = -1 },
		"proof":        func(p *Params) { p.NewMailboxProofBits = 33 },
		"conns":        func(p *Params) { p.ConnsPerPrefix = p.ConnsPerIP - 1 },
		"bytes window": func(p *Params) { p.NewBytesWindow = 0 },
	} {
		p := DefaultParams()
		mod(&p)
		if err := p.Validate(); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// gateFixture opens tickets on a gate whose resets are recorded.
type gateFixture struct {
	g     *Gate
	reset map[*Ticket]bool
}

func (f *gateFixture) open(p peer.ID, key string) *Ticket {
	var k Key
	if key != "" {
		k = netip.MustParsePrefix(key)
	}
	var t *Ticket
	t = f.g.open(p, k, func() { f.reset[t] = true })
	return t
}

func newGateFixture(t *testing.T, gp GateParams, classify Classifier) *gateFixture {
	c := testController(t, nil)
	if classify != nil {
		c.SetClassifier(classify)
	}
	return &gateFixture{g: newGate("test", gp, c), reset: map[*Ticket]bool{}}
}

// Idle streams from many peer IDs of one network are reset, oldest first,
// to make room: they never lock out a newer stream, whoever opens it.
func TestGatePendingEvictsOldest(t *testing.T) {
	f := newGateFixture(t, GateParams{
		MaxPending: 8, PendingPerPrefix: 4, PendingPerPeer: 2,
		MaxStreams: 8, ReservedStreams: 2, PerPrefix: 4, PrivilegedPerPrefix: 4, PerPeer: 4,
	}, nil)
	var attack []*Ticket
	for i := range 20 {
		attack = append(attack, f.open(peer.ID(rune('a'+i)), "192.0.2.0/24"))
	}
	// Only the newest PendingPerPrefix of the attacker's network stay.
	for i, tk := range attack {
		if want := i < 16; f.reset[tk] != want {
			t.Fatalf("attacker stream %d reset=%v, want %v", i, f.reset[tk], want)
		}
	}
	if err := attack[0].Activate(envelope.MailboxID{}); !errors.Is(err, ErrEvicted) {
		t.Fatalf("evicted stream activated: %v", err)
	}
	// A member elsewhere gets in and is served.
	m := f.open("member", "198.51.100.0/24")
	if err := m.activate(false); err != nil {
		t.Fatal(err)
	}
	if f.reset[m] {
		t.Fatal("member's stream reset")
	}
	// One peer's own pending streams: the peer's oldest goes first.
	p1 := f.open("p", "203.0.113.0/24")
	p2 := f.open("p", "203.0.113.0/24")
	p3 := f.open("p", "203.0.113.0/24")
	if !f.reset[p1] || f.reset[p2] || f.reset[p3] {
		t.Fatalf("per-peer eviction: %v %v %v", f.reset[p1], f.reset[p2], f.reset[p3])
	}
	if u := f.g.Usage(); u.Pending > 8 {
		t.Fatalf("%d pending, limit 8", u.Pending)
	}
}

// The last ReservedStreams active streams are for privileged ones only,
// and a network's general streams are capped.
func TestGateReservedShare(t *testing.T) {
	f := newGateFixture(t, GateParams{
		MaxPending: 64, PendingPerPrefix: 64, PendingPerPeer: 64,
		MaxStreams: 6, ReservedStreams: 2, PerPrefix: 3, PrivilegedPerPrefix: 6, PerPeer: 6,
	}, nil)
	var general []*Ticket
	for i, key := range []string{"192.0.2.0/24", "192.0.2.0/24", "192.0.2.0/24", "192.0.2.0/24", "198.51.100.0/24", "198.51.100.0/24"} {
		tk := f.open(peer.ID(rune('a'+i)), key)
		err := tk.activate(false)
		switch {
		case i == 3 || i == 5:
			if !errors.Is(err, status.ErrBusy) {
				t.Fatalf("general stream %d admitted past a limit: %v", i, err)
			}
		case err != nil:
			t.Fatalf("general stream %d: %v", i, err)
		default:
			general = append(general, tk)
		}
	}
	// 4 general streams = MaxStreams - ReservedStreams: the rest is for
	// privileged streams.
	for i := range 2 {
		if err := f.open(peer.ID(rune('x'+i)), "203.0.113.0/24").activate(true); err != nil {
			t.Fatalf("privileged stream %d: %v", i, err)
		}
	}
	if err := f.open("y2", "203.0.113.0/24").activate(true); !errors.Is(err, status.ErrBusy) {
		t.Fatalf("stream past MaxStreams: %v", err)
	}
	// Closing frees the place.
	general[0].Close()
	general[0].Close() // idempotent
	if err := f.open("z", "203.0.113.0/24").activate(false); err != nil {
		t.Fatal(err)
	}
	if u := f.g.Usage(); u.Active != 6 || u.General != 4 {
		t.Fatalf("usage %+v", u)
	}
}

func TestTicketUpgrade(t *testing.T) {
	est := envelope.MailboxID{1}
	f := newGateFixture(t, GateParams{
		MaxPending: 4, PendingPerPrefix: 4, PendingPerPeer: 4,
		MaxStreams: 4, ReservedStreams: 2, PerPrefix: 1, PrivilegedPerPrefix: 4, PerPeer: 4,
	}, func(m envelope.MailboxID) Class {
		if m == est {
			return ClassEstablished
		}
		return ClassNew
	})
	a := f.open("a", "192.0.2.0/24")
	if err := a.Activate(envelope.MailboxID{2}); err != nil || a.Privileged() {
		t.Fatalf("general: %v %v", err, a.Privileged())
	}
	// A session's later request for an established mailbox upgrades it,
	// which frees its network's general place.
	if err := a.Activate(est); err != nil || !a.Privileged() {
		t.Fatalf("upgrade: %v %v", err, a.Privileged())
	}
	if err := f.open("b", "192.0.2.0/24").Activate(envelope.MailboxID{3}); err != nil {
		t.Fatalf("general place not freed: %v", err)
	}
	var nilTicket *Ticket
	if err := nilTicket.Activate(est); err != nil || !nilTicket.Privileged() {
		t.Fatal("nil ticket")
	}
	nilTicket.Close()
}

func TestAdmitStoreNewMailboxes(t *testing.T) {
	c := testController(t, func(p *Params) {
		p.NewMailboxRatePerPrefix, p.NewMailboxBurstPerPrefix = 0.001, 3
		p.NewMailboxRate, p.NewMailboxBurst = 0.001, 4
		p.NewMailboxProofBits = 8
		p.NewBytesPerPrefix, p.NewBytesWindow = 10_000, 1e12
	})
	self := peer.ID("host")
	c.SetSelf(self)
	known := map[envelope.MailboxID]Class{}
	c.SetClassifier(func(m envelope.MailboxID) Class { return known[m] })
	netA := Origin{Peer: "a", Key: netip.MustParsePrefix("192.0.2.0/24")}
	netB := Origin{Peer: "b", Key: netip.MustParsePrefix("198.51.100.0/24")}
	mb := func(i byte) envelope.MailboxID { return envelope.MailboxID{i} }

	for i := range byte(3) {
		if err := c.AdmitStore(mb(i), netA, 100); err != nil {
			t.Fatalf("new mailbox %d: %v", i, err)
		}
	}
	if err := c.AdmitStore(mb(3), netA, 100); !errors.Is(err, status.ErrRateLimited) {
		t.Fatalf("past the prefix rate: %v", err)
	}
	// The same mailbox again is not a new admission.
	if err := c.AdmitStore(mb(0), netA, 100); err != nil {
		t.Fatalf("admitted mailbox again: %v", err)
	}
	if err := c.AdmitStore(mb(10), netB, 100); err != nil {
		t.Fatalf("other network: %v", err)
	}
	// The host's total is spent: a proof of work is asked for.
	err := c.AdmitStore(mb(11), netB, 100)
	bits, ok := status.ProofBitsOf(err)
	if !errors.Is(err, status.ErrProofRequired) || !ok || bits != 8 {
		t.Fatalf("past the total: %v (bits %d)", err, bits)
	}
	bad := Proof{}
	netB.Proof = &bad
	if CheckMailboxProof(self, mb(11), bad, 8) {
		t.Skip("the zero nonce happens to solve it")
	}
	if err := c.AdmitStore(mb(11), netB, 100); !errors.Is(err, status.ErrProofRequired) {
		t.Fatalf("bad proof: %v", err)
	}
	// A proof for another host or mailbox does not help.
	other, err := SolveMailboxProof(context.Background(), "other-host", mb(11), 8)
	if err != nil {
		t.Fatal(err)
	}
	if CheckMailboxProof(self, mb(11), other, 8) {
		t.Log("a proof for another host happens to check here")
	}
	good, err := SolveMailboxProof(context.Background(), self, mb(11), 8)
	if err != nil {
		t.Fatal(err)
	}
	netB.Proof = &good
	if err := c.AdmitStore(mb(11), netB, 100); err != nil {
		t.Fatalf("good proof: %v", err)
	}
	// Established mailboxes and the node's own envelopes are never refused here.
	known[mb(20)] = ClassEstablished
	if err := c.AdmitStore(mb(20), netA, 100); err != nil {
		t.Fatal(err)
	}
	if err := c.AdmitStore(mb(21), Origin{Local: true}, 100); err != nil {
		t.Fatal(err)
	}
	// A prefix's byte budget for new mailboxes.
	known[mb(30)] = ClassNew
	netC := Origin{Peer: "c", Key: netip.MustParsePrefix("203.0.113.0/24")}
	if err := c.AdmitStore(mb(30), netC, 9_000); err != nil {
		t.Fatal(err)
	}
	if err := c.AdmitStore(mb(30), netC, 2_000); !errors.Is(err, store.ErrQuotaExceeded) {
		t.Fatalf("past the prefix's bytes: %v", err)
	}
	counts := map[Reason]uint64{}
	for _, rc := range c.Refusals().Counts() {
		counts[rc.Reason] = rc.Recent
	}
	for _, r := range []Reason{ReasonNewMailboxPrefix, ReasonProofRequired, ReasonProofInvalid, ReasonPrefixBytes} {
		if counts[r] == 0 {
			t.Errorf("no refusal counted for %s: %v", r, counts)
		}
	}
}

func TestTrust(t *testing.T) {
	c := testController(t, nil)
	if c.Privileged(envelope.MailboxID{1}, "p") {
		t.Fatal("unknown peer privileged")
	}
	c.Trust("p")
	if !c.Privileged(envelope.MailboxID{1}, "p") {
		t.Fatal("trusted peer not privileged")
	}
}

func TestRefusalsWindow(t *testing.T) {
	r, err := NewRefusals(2e9, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1000)
	r.now = func() timeT { return unix(now) }
	r.Add(ReasonRatePeer)
	r.Add(ReasonRatePeer)
	r.Add(ReasonStreamsBusy)
	if got := r.Counts(); len(got) != 2 || got[0].Reason != ReasonRatePeer || got[0].Recent != 2 {
		t.Fatalf("counts %+v", got)
	}
	now += 5
	if r.Recent() != 0 {
		t.Fatal("old refusals still recent")
	}
	if got := r.Counts(); got[0].Total != 2 {
		t.Fatalf("totals lost: %+v", got)
	}
}
