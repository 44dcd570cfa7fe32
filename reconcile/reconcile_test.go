package reconcile

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// TestReconcileProperty: random sets of every size and difference, in
// both directions, split, and disjoint; both sides must learn exactly the
// symmetric difference.
func TestReconcileProperty(t *testing.T) {
	sizes := []int{0, 1, 17, 1000, 100_000}
	diffs := []int{0, 1, 10, 1000}
	shapes := []struct {
		name string
		a, b func(d int) int // extra IDs on each side
	}{
		{"a-has-more", func(d int) int { return d }, func(int) int { return 0 }},
		{"b-has-more", func(int) int { return 0 }, func(d int) int { return d }},
		{"split", func(d int) int { return d / 2 }, func(d int) int { return d - d/2 }},
	}
	seed := uint64(0)
	for _, n := range sizes {
		for _, d := range diffs {
			for _, sh := range shapes {
				seed++
				t.Run(fmt.Sprintf("n=%d/d=%d/%s", n, d, sh.name), func(t *testing.T) {
					r := rand.New(rand.NewPCG(seed, 7))
					common := randomIDs(r, n)
					aIDs := append(randomIDs(r, sh.a(d)), common...)
					bIDs := append(randomIDs(r, sh.b(d)), common...)
					st := checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, DefaultParams())
					if d == 0 && st.Rounds != 1 {
						t.Errorf("equal sets took %d rounds", st.Rounds)
					}
				})
			}
		}
		t.Run(fmt.Sprintf("n=%d/disjoint", n), func(t *testing.T) {
			if n == 100_000 && testing.Short() {
				t.Skip("slow in -short")
			}
			r := rand.New(rand.NewPCG(uint64(n), 8))
			aIDs, bIDs := randomIDs(r, n), randomIDs(r, n)
			checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, DefaultParams())
		})
	}
}

// TestReconcileParams covers other branching factors, thresholds, small
// messages (so deferring and grouping happen all the time) and a Set
// without Nth (the scanning split).
func TestReconcileParams(t *testing.T) {
	small := DefaultParams()
	small.MaxMessageSize, small.MaxIDs, small.MaxRanges = 8<<10, 64, 512
	b2 := DefaultParams()
	b2.Branching, b2.IDListThreshold = 2, 2
	b64 := DefaultParams()
	b64.Branching, b64.IDListThreshold = 64, 300
	cases := []struct {
		name string
		p    Params
		scan bool
	}{
		{"default-scan", DefaultParams(), true},
		{"small-messages", small, false},
		{"small-messages-scan", small, true},
		{"B=2", b2, false},
		{"B=64", b64, true},
	}
	for i, c := range cases {
		for _, shape := range [][3]int{{3000, 0, 0}, {3000, 1, 0}, {3000, 40, 70}, {3000, 700, 900}, {0, 500, 0}, {0, 1500, 1500}} {
			n, da, db := shape[0], shape[1], shape[2]
			t.Run(fmt.Sprintf("%s/n=%d/+%d/+%d", c.name, n, da, db), func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(i), uint64(n+da+db)))
				common := randomIDs(r, n)
				aIDs := append(randomIDs(r, da), common...)
				bIDs := append(randomIDs(r, db), common...)
				var a, b Set = NewMemSet(aIDs...), NewMemSet(bIDs...)
				if c.scan {
					a, b = scanSet{a.(*MemSet)}, scanSet{b.(*MemSet)}
				}
				checkSimulate(t, a, b, aIDs, bIDs, c.p)
			})
		}
	}
}

// TestReconcileClusteredIDs: IDs sharing long prefixes need long bounds
// (pairs differing only in the last byte need all 32); IDs at the very ends
// of the space meet Lowest and Infinity. Beyond the shared prefixes the IDs
// are random, as hash outputs are.
func TestReconcileClusteredIDs(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var aIDs, bIDs []envelope.ID
	for i, id := range randomIDs(r, 600) {
		copy(id[:], []byte("0123456789abcdef")[:i%17])
		switch r.IntN(3) {
		case 0:
			aIDs = append(aIDs, id)
		case 1:
			bIDs = append(bIDs, id)
		default:
			aIDs, bIDs = append(aIDs, id), append(bIDs, id)
		}
	}
	for _, id := range randomIDs(r, 20) {
		next := id
		next[31]++
		aIDs, bIDs = append(aIDs, id), append(bIDs, id, next)
	}
	var top envelope.ID
	for i := range top {
		top[i] = 0xff
	}
	aIDs = append(aIDs, envelope.ID{}, top)
	bIDs = append(bIDs, envelope.ID{31: 1})
	for _, bt := range []int{2, 4, 16} {
		p := DefaultParams()
		p.Branching, p.IDListThreshold = bt, bt
		checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, p)
	}
}

// TestReconcileTargets checks the product targets for n = 100,000 with d
// missing half on each side: rounds <= 2·log16(n/d)+2 and bytes <= 2·d·1KiB
// + 16 KiB. (Counts, not times: timing lives in BenchmarkReconcile.)
func TestReconcileTargets(t *testing.T) {
	const n = 100_000
	for _, d := range []int{1, 10, 1000} {
		r := rand.New(rand.NewPCG(uint64(d), 10))
		common := randomIDs(r, n-d/2)
		aIDs := append(randomIDs(r, d/2), common...)
		bIDs := append(randomIDs(r, d-d/2), common...)
		st := checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, DefaultParams())
		maxRounds := 2*math.Log(float64(n)/float64(d))/math.Log(16) + 2
		maxBytes := 2*d*1024 + 16*1024
		t.Logf("d=%d: %d rounds (target %.1f), %d bytes (target %d)", d, st.Rounds, maxRounds, st.Bytes(), maxBytes)
		if float64(st.Rounds) > maxRounds || st.Bytes() > maxBytes {
			t.Errorf("d=%d: %d rounds, %d bytes over the targets", d, st.Rounds, st.Bytes())
		}
	}
}

// TestSessionErrors drives sessions with hand-made messages.
func TestSessionErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	ids := randomIDs(r, 10)
	set := NewMemSet(ids...)
	p := DefaultParams()
	enc := func(rs ...wireRange) []byte { return encodeMessage(rs) }
	list := wireRange{hi: Infinity(), mode: modeIDList}

	t.Run("diff-without-list", func(t *testing.T) {
		res, _ := NewResponder(set, p)
		_, _, _, _, err := res.Reconcile(enc(wireRange{hi: Infinity(), mode: modeIDDiff}))
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v, want ErrProtocol", err)
		}
		// A failed session stays failed.
		if _, _, _, _, err := res.Reconcile(enc(list)); !errors.Is(err, ErrProtocol) {
			t.Fatalf("after failure: %v", err)
		}
	})
	// The initiator of a 10-ID set sends an ID list of [Lowest, Infinity).
	initiated := func(t *testing.T) *Initiator {
		in, err := NewInitiator(set, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Initiate(); err != nil {
			t.Fatal(err)
		}
		return in
	}
	t.Run("diff-wrong-bit-count", func(t *testing.T) {
		_, _, _, _, err := initiated(t).Reconcile(enc(wireRange{hi: Infinity(), mode: modeIDDiff, nbit: 9, bits: []byte{0, 0}}))
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("diff-offers-listed-id", func(t *testing.T) {
		sorted := set.IDs()
		_, _, _, _, err := initiated(t).Reconcile(enc(wireRange{hi: Infinity(), mode: modeIDDiff, nbit: 10, bits: []byte{0, 0}, ids: sorted[3:4]}))
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("diff-learns", func(t *testing.T) {
		sorted := set.IDs()
		other := randomIDs(r, 1)
		_, _, _, _, err := initiated(t).Reconcile(enc(wireRange{hi: Infinity(), mode: modeIDDiff, nbit: 10, bits: []byte{0b101, 0}, ids: other}))
		if err != nil {
			t.Fatal(err)
		}
		reply, have, need, done, err := initiated(t).Reconcile(enc(wireRange{hi: Infinity(), mode: modeIDDiff, nbit: 10, bits: []byte{0b101, 0b10}, ids: other}))
		if err != nil || reply != nil || !done {
			t.Fatalf("reply %x, done %v, err %v", reply, done, err)
		}
		if len(have) != 3 || have[0] != sorted[0] || have[1] != sorted[2] || have[2] != sorted[9] || len(need) != 1 || need[0] != other[0] {
			t.Fatalf("have %v need %v", have, need)
		}
	})
	t.Run("after-done", func(t *testing.T) {
		in := initiated(t)
		if _, _, _, done, err := in.Reconcile(enc()); err != nil || !done {
			t.Fatalf("empty answer: done %v, %v", done, err)
		}
		if _, _, _, _, err := in.Reconcile(enc()); !errors.Is(err, ErrProtocol) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("order", func(t *testing.T) {
		in, _ := NewInitiator(set, p)
		if _, _, _, _, err := in.Reconcile(enc()); !errors.Is(err, ErrProtocol) {
			t.Fatalf("Reconcile before Initiate: %v", err)
		}
		in.Initiate()
		if _, err := in.Initiate(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("Initiate twice: %v", err)
		}
	})
	t.Run("too-many-rounds", func(t *testing.T) {
		q := p
		q.MaxRounds = 3
		big := NewMemSet(randomIDs(r, 1000)...)
		res, _ := NewResponder(big, q)
		// A peer that keeps sending a wrong fingerprint of everything.
		msg := enc(wireRange{hi: Infinity(), mode: modeFingerprint, fp: Fingerprint{1}})
		for i := range q.MaxRounds {
			if reply, _, _, done, err := res.Reconcile(msg); err != nil || reply == nil || done {
				t.Fatalf("message %d: reply %d bytes, done %v, %v", i, len(reply), done, err)
			}
		}
		if _, _, _, _, err := res.Reconcile(msg); !errors.Is(err, ErrTooManyRounds) {
			t.Fatalf("got %v, want ErrTooManyRounds", err)
		}
	})
	t.Run("bad-params", func(t *testing.T) {
		q := p
		q.Branching = 1
		if _, err := NewInitiator(set, q); !errors.Is(err, ErrInvalidParams) {
			t.Fatalf("got %v", err)
		}
		if _, err := NewResponder(nil, p); !errors.Is(err, ErrInvalidParams) {
			t.Fatalf("nil set: %v", err)
		}
	})
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*Params)
	}{
		{"branching-1", func(p *Params) { p.Branching = 1 }},
		{"branching-huge", func(p *Params) { p.Branching = 1000 }},
		{"threshold-1", func(p *Params) { p.IDListThreshold = 1 }},
		{"message-tiny", func(p *Params) { p.MaxMessageSize = 100 }},
		{"message-huge", func(p *Params) { p.MaxMessageSize = 1 << 30 }},
		{"message-below-need", func(p *Params) { p.MaxMessageSize = MinMessageSize }},
		{"ranges-few", func(p *Params) { p.MaxRanges = 10 }},
		{"ids-below-threshold", func(p *Params) { p.MaxIDs = 10 }},
		{"rounds-0", func(p *Params) { p.MaxRounds = 0 }},
	} {
		p := DefaultParams()
		c.edit(&p)
		if err := p.validate(); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%s: got %v, want ErrInvalidParams", c.name, err)
		}
	}
}

// TestReconcileWhileSetsChange: envelopes arrive during a session. The
// session must still end cleanly, report only IDs that are really in the
// difference at some point, and a second session must then converge.
func TestReconcileWhileSetsChange(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 16))
	common := randomIDs(r, 20_000)
	aIDs := append(randomIDs(r, 300), common...)
	bIDs := append(randomIDs(r, 300), common...)
	a, b := NewMemSet(aIDs...), NewMemSet(bIDs...)
	p := DefaultParams()
	ini, _ := NewInitiator(a, p)
	res, _ := NewResponder(b, p)
	msg, err := ini.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	var have, need []envelope.ID
	for msg != nil {
		// Arrivals on both sides, some of them on both.
		arrivals := randomIDs(r, 20)
		a.Add(arrivals[:10]...)
		b.Add(arrivals[5:]...)
		reply, _, _, _, err := res.Reconcile(msg)
		if err != nil {
			t.Fatal(err)
		}
		if reply == nil {
			break
		}
		var h, n []envelope.ID
		if msg, h, n, _, err = ini.Reconcile(reply); err != nil {
			t.Fatal(err)
		}
		have, need = append(have, h...), append(need, n...)
	}
	for _, id := range have {
		if !a.Has(id) {
			t.Fatalf("reported have %s that a never held", id.Short())
		}
	}
	for _, id := range need {
		if !b.Has(id) {
			t.Fatalf("reported need %s that b never held", id.Short())
		}
	}
	// Apply the transfers, then a fresh session finds what arrived late.
	a.Add(need...)
	b.Add(have...)
	checkSimulate(t, a, b, a.IDs(), b.IDs(), p)
}

// failingSet fails every call after the first ok ones.
type failingSet struct {
	*MemSet
	ok *int
}

var errStore = errors.New("store is on fire")

func (s failingSet) Fingerprint(lo, hi Bound) (Fingerprint, int, error) {
	if *s.ok--; *s.ok < 0 {
		return Fingerprint{}, 0, errStore
	}
	return s.MemSet.Fingerprint(lo, hi)
}

func (s failingSet) Range(lo, hi Bound, fn func(envelope.ID) bool) error {
	if *s.ok--; *s.ok < 0 {
		return errStore
	}
	return s.MemSet.Range(lo, hi, fn)
}

func (s failingSet) Nth(lo Bound, k int) (envelope.ID, bool, error) {
	if *s.ok--; *s.ok < 0 {
		return envelope.ID{}, false, errStore
	}
	return s.MemSet.Nth(lo, k)
}

// TestSetErrorsPropagate: a storage error at any point of a session comes
// back wrapped, never as a panic or a wrong result.
func TestSetErrorsPropagate(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 17))
	common := randomIDs(r, 3000)
	aIDs := append(randomIDs(r, 50), common...)
	bIDs := append(randomIDs(r, 50), common...)
	for fail := 0; ; fail++ {
		okA, okB := fail, 1<<30
		if fail%2 == 1 {
			okA, okB = 1<<30, fail/2
		}
		a := failingSet{NewMemSet(aIDs...), &okA}
		b := failingSet{NewMemSet(bIDs...), &okB}
		_, err := Simulate(a, b, DefaultParams())
		if err == nil {
			if fail < 20 {
				t.Fatalf("fail=%d: no error", fail)
			}
			return // the failure point is past the end of the session
		}
		if !errors.Is(err, errStore) {
			t.Fatalf("fail=%d: %v, want the store's error", fail, err)
		}
	}
}
