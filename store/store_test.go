package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshnode/meshnode/envelope"
)

func TestPutGetRoundTrip(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	e := seal(t, k, 1024)

	r := mustPut(t, s, e)
	if r.Duplicate || r.Seq != 1 {
		t.Fatalf("first Put = %+v, want seq 1, not duplicate", r)
	}
	if ok, err := s.Has(m, e.ID()); err != nil || !ok {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	got, err := s.Get(m, e.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), e.Bytes()) || got.ID() != e.ID() {
		t.Fatal("Get returned different bytes")
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("stored envelope no longer verifies: %v", err)
	}

	other := seal(t, k, 1024).ID()
	if ok, err := s.Has(m, other); err != nil || ok {
		t.Fatalf("Has(unknown) = %v, %v", ok, err)
	}
	if _, err := s.Get(m, other); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
	var otherBox envelope.MailboxID
	if _, err := s.Get(otherBox, e.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(other mailbox) = %v, want ErrNotFound", err)
	}

	st, err := s.Stats(m)
	if err != nil {
		t.Fatal(err)
	}
	if st.Count != 1 || st.Bytes != 1024 || st.FirstSeq != 1 || st.LastSeq != 1 || st.Floor != 0 {
		t.Fatalf("Stats = %+v", st)
	}
	mbs, err := s.Mailboxes()
	if err != nil || len(mbs) != 1 || mbs[0] != m {
		t.Fatalf("Mailboxes = %v, %v", mbs, err)
	}
	if u := s.Usage(); u != (Usage{Mailboxes: 1, Count: 1, Bytes: 1024}) {
		t.Fatalf("Usage = %+v", u)
	}
}

func TestPutRejectsBadInput(t *testing.T) {
	p := testParams()
	p.MaxEnvelopeSize = 1000
	s := openMem(t, p)
	k := newKey(t)
	if _, err := s.Put(t.Context(), nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Put(nil) = %v", err)
	}
	big := seal(t, k, 1001)
	if _, err := s.Put(t.Context(), big); !errors.Is(err, ErrTooLarge) || !errors.Is(err, envelope.ErrTooLarge) {
		t.Fatalf("Put(too large) = %v, want ErrTooLarge", err)
	}
	if ok, _ := s.Has(big.Mailbox(), big.ID()); ok {
		t.Fatal("too-large envelope was stored")
	}
	if u := s.Usage(); u != (Usage{}) {
		t.Fatalf("Usage after rejection = %+v", u)
	}
	mustPut(t, s, seal(t, k, 1000))
}

func TestDuplicatesSequential(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	a, b := seal(t, k, 500), seal(t, k, 600)
	mustPut(t, s, a)
	mustPut(t, s, b)
	for range 3 {
		r := mustPut(t, s, a)
		if !r.Duplicate || r.Seq != 1 {
			t.Fatalf("re-Put = %+v, want duplicate of seq 1", r)
		}
	}
	st, _ := s.Stats(a.Mailbox())
	if st.Count != 2 || st.Bytes != 1100 || st.LastSeq != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	if got := counterValue(t, s.m.duplicates); got != 3 {
		t.Fatalf("duplicates metric = %v, want 3", got)
	}
}

func TestDuplicatesConcurrent(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	envs := make([]*envelope.Envelope, 20)
	for i := range envs {
		envs[i] = seal(t, k, 300)
	}
	const workers = 8
	results := make([][]Result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, e := range envs {
				r, err := s.Put(context.Background(), e)
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], r)
			}
		})
	}
	wg.Wait()
	for i := range envs {
		fresh := 0
		seq := results[0][i].Seq
		for w := range workers {
			if !results[w][i].Duplicate {
				fresh++
			}
			if results[w][i].Seq != seq {
				t.Fatalf("envelope %d got seq %d and %d", i, seq, results[w][i].Seq)
			}
		}
		if fresh != 1 {
			t.Fatalf("envelope %d stored %d times", i, fresh)
		}
	}
	if got := readAll(t, s, mailboxOf(k), 7); len(got) != len(envs) {
		t.Fatalf("mailbox holds %d envelopes, want %d", len(got), len(envs))
	}
}

func TestQuotasRejectWithNothingWritten(t *testing.T) {
	k := newKey(t)
	m := mailboxOf(k)
	cases := []struct {
		name   string
		policy MailboxPolicy
		global int64
		size   int
		fits   int // envelopes stored before the rejection
	}{
		{"mailbox count", MailboxPolicy{QuotaCount: 3}, 0, 300, 3},
		{"mailbox bytes", MailboxPolicy{QuotaBytes: 1000}, 0, 300, 3},
		{"global bytes", MailboxPolicy{}, 1000, 300, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams()
			p.Default = tc.policy
			p.GlobalQuotaBytes = tc.global
			s := openMem(t, p)
			for range tc.fits {
				mustPut(t, s, seal(t, k, tc.size))
			}
			statsBefore, _ := s.Stats(m)
			usageBefore := s.Usage()
			e := seal(t, k, tc.size)
			if _, err := s.Put(t.Context(), e); !errors.Is(err, ErrQuotaExceeded) {
				t.Fatalf("Put over quota = %v, want ErrQuotaExceeded", err)
			}
			if ok, _ := s.Has(m, e.ID()); ok {
				t.Fatal("rejected envelope is stored")
			}
			statsAfter, _ := s.Stats(m)
			if statsAfter != statsBefore || s.Usage() != usageBefore {
				t.Fatalf("rejection changed state: %+v -> %+v", statsBefore, statsAfter)
			}
			n := 0
			if err := s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(envelope.ID, bool) bool { n++; return true }); err != nil || n != tc.fits {
				t.Fatalf("RangeIDs sees %d IDs (%v), want %d", n, err, tc.fits)
			}
			// Sequence numbers have no gap after a rejection.
			if err := s.SetPolicy(m, MailboxPolicy{}); err != nil {
				t.Fatal(err)
			}
			if tc.global == 0 {
				if r := mustPut(t, s, e); r.Seq != uint64(tc.fits+1) {
					t.Fatalf("after lifting the quota: seq %d, want %d", r.Seq, tc.fits+1)
				}
			}
		})
	}
}

func TestPolicyOverride(t *testing.T) {
	p := testParams()
	p.Default = MailboxPolicy{QuotaCount: 1}
	s := openMem(t, p)
	k := newKey(t)
	m := mailboxOf(k)
	if err := s.SetPolicy(m, MailboxPolicy{QuotaCount: 2}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, seal(t, k, 200))
	mustPut(t, s, seal(t, k, 200))
	st, _ := s.Stats(m)
	if !st.Override || st.Policy.QuotaCount != 2 {
		t.Fatalf("Stats = %+v", st)
	}
	if err := s.ClearPolicy(m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), seal(t, k, 200)); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("after ClearPolicy: %v", err)
	}
	for _, bad := range []MailboxPolicy{{MaxAge: -1}, {QuotaBytes: -1}, {MaxBytes: 10, QuotaBytes: 5}, {MaxCount: 3, QuotaCount: 2}} {
		if err := s.SetPolicy(m, bad); !errors.Is(err, ErrInvalidParams) {
			t.Fatalf("SetPolicy(%+v) = %v", bad, err)
		}
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	m := mailboxOf(k)
	s, err := Open(dir, diskParams(), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	var want []envelope.ID
	for range 50 {
		e := seal(t, k, 1024)
		mustPut(t, s, e)
		want = append(want, e.ID())
	}
	pol := MailboxPolicy{MaxCount: 100, QuotaCount: 200}
	if err := s.SetPolicy(m, pol); err != nil {
		t.Fatal(err)
	}
	pg, err := s.Page(m, nil, 20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	inst, usage := s.InstanceID(), s.Usage()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, dir, diskParams())
	if s2.InstanceID() != inst {
		t.Fatalf("instance ID changed: %s -> %s", inst, s2.InstanceID())
	}
	if s2.Usage() != usage {
		t.Fatalf("usage changed: %+v -> %+v", usage, s2.Usage())
	}
	if got := ids(readAll(t, s2, m, 9)); !slices.Equal(got, want) {
		t.Fatalf("after reopen: %d envelopes, want %d in order", len(got), len(want))
	}
	rest, err := s2.Page(m, pg.Next, 100, 1<<20)
	if err != nil {
		t.Fatalf("cursor from before reopen: %v", err)
	}
	if !slices.Equal(ids(rest.Envelopes), want[20:]) {
		t.Fatal("cursor from before reopen resumes at the wrong place")
	}
	st, _ := s2.Stats(m)
	if !st.Override || st.Policy != pol {
		t.Fatalf("policy after reopen: %+v", st)
	}
	if r := mustPut(t, s2, seal(t, k, 1024)); r.Seq != 51 {
		t.Fatalf("seq after reopen = %d, want 51", r.Seq)
	}
}

func TestConcurrentPutsAreDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, diskParams(), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 40
	keys := []ed25519.PrivateKey{newKey(t), newKey(t), newKey(t)}
	envs := make([]*envelope.Envelope, workers*each)
	for i := range envs {
		envs[i] = seal(t, keys[i%len(keys)], 1024)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, e := range envs[w*each : (w+1)*each] {
				if _, err := s.Put(context.Background(), e); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir, diskParams())
	for _, e := range envs {
		got, err := s2.Get(e.Mailbox(), e.ID())
		if err != nil || !bytes.Equal(got.Bytes(), e.Bytes()) {
			t.Fatalf("envelope %s after reopen: %v", e.ID().Short(), err)
		}
	}
	if u := s2.Usage(); u.Count != int64(len(envs)) || u.Mailboxes != int64(len(keys)) {
		t.Fatalf("Usage after reopen = %+v", u)
	}
}

func TestRangeIDsOrderAndBounds(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	var all []envelope.ID
	for range 200 {
		e := seal(t, k, 200)
		mustPut(t, s, e)
		all = append(all, e.ID())
	}
	mustPut(t, s, seal(t, newKey(t), 200)) // another mailbox must not leak in
	slices.SortFunc(all, func(a, b envelope.ID) int { return bytes.Compare(a[:], b[:]) })

	collect := func(lo, hi envelope.ID) []envelope.ID {
		var got []envelope.ID
		err := s.RangeIDs(m, lo, hi, func(id envelope.ID, live bool) bool {
			if !live {
				t.Fatalf("%s reported as not live", id.Short())
			}
			got = append(got, id)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := collect(envelope.ID{}, envelope.ID{}); !slices.Equal(got, all) {
		t.Fatalf("full range: %d IDs, want %d sorted", len(got), len(all))
	}
	for _, r := range [][2]int{{0, 1}, {10, 50}, {50, 51}, {199, 199}, {0, 199}} {
		lo, hi := all[r[0]], all[r[1]]
		if got := collect(lo, hi); !slices.Equal(got, all[r[0]:r[1]]) {
			t.Fatalf("[%d,%d): got %d IDs, want %d", r[0], r[1], len(got), r[1]-r[0])
		}
	}
	// lo just after an ID excludes it: the ID plus one, as a 256-bit
	// big-endian number (a last byte of 0xff carries).
	lo := all[10]
	for i := len(lo) - 1; i >= 0; i-- {
		if lo[i]++; lo[i] != 0 {
			break
		}
	}
	if got := collect(lo, all[20]); !slices.Equal(got, all[11:20]) {
		t.Fatalf("exclusive lo: got %d IDs", len(got))
	}
	// fn returning false stops.
	n := 0
	if err := s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(envelope.ID, bool) bool { n++; return n < 5 }); err != nil || n != 5 {
		t.Fatalf("early stop after %d calls, %v", n, err)
	}
}

func TestSubscribe(t *testing.T) {
	p := testParams()
	p.SubscriberBuffer = 4
	s, err := Open("", p, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	m := mailboxOf(k)
	ch, cancel := s.Subscribe(m)
	ch2, _ := s.Subscribe(m)
	otherCh, cancelOther := s.Subscribe(mailboxOf(newKey(t)))
	e := seal(t, k, 300)
	mustPut(t, s, e)
	if got := <-ch; got != e.ID() {
		t.Fatalf("notified %s, want %s", got.Short(), e.ID().Short())
	}
	mustPut(t, s, e) // duplicate: no notification
	// Overflow drops instead of blocking the writer.
	for range 10 {
		mustPut(t, s, seal(t, k, 300))
	}
	if n := len(ch); n != 4 {
		t.Fatalf("buffered notifications = %d, want 4 (the buffer)", n)
	}
	if len(otherCh) != 0 {
		t.Fatal("notification for another mailbox")
	}
	cancel()
	cancel()
	for range ch {
	}
	cancelOther()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range ch2 { // closed by Close
	}
	after, _ := s.Subscribe(m)
	if _, ok := <-after; ok {
		t.Fatal("Subscribe after Close gave an open channel")
	}
}

func TestClosed(t *testing.T) {
	s, err := Open("", testParams(), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(t)
	e := seal(t, k, 300)
	mustPut(t, s, e)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	m := e.Mailbox()
	checks := map[string]error{}
	_, checks["Put"] = s.Put(t.Context(), seal(t, k, 300))
	_, checks["Has"] = s.Has(m, e.ID())
	_, checks["Get"] = s.Get(m, e.ID())
	_, checks["Page"] = s.Page(m, nil, 1, 1)
	_, checks["Stats"] = s.Stats(m)
	_, checks["Mailboxes"] = s.Mailboxes()
	_, checks["EnforceRetention"] = s.EnforceRetention(t.Context())
	checks["SetPolicy"] = s.SetPolicy(m, MailboxPolicy{})
	checks["RangeIDs"] = s.RangeIDs(m, envelope.ID{}, envelope.ID{}, func(envelope.ID, bool) bool { return true })
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestPutContextCancelled(t *testing.T) {
	s := openMem(t, testParams())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e := seal(t, newKey(t), 300)
	if _, err := s.Put(ctx, e); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx = %v", err)
	}
	// Either way, a retry is safe and ends with exactly one copy.
	mustPut(t, s, e)
	if st, _ := s.Stats(e.Mailbox()); st.Count != 1 {
		t.Fatalf("count = %d", st.Count)
	}
}

func TestCorruptRecordsAreErrors(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	m := mailboxOf(k)
	s, err := Open(dir, diskParams(), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	e1, e2 := seal(t, k, 300), seal(t, k, 300)
	mustPut(t, s, e1)
	mustPut(t, s, e2)
	// Garble the second arrival record's envelope and the first's index.
	err = s.db.Update(func(txn *badger.Txn) error {
		bad := encodeArrival(e2.ID(), 0, e2.Bytes())
		bad[len(bad)-1] ^= 1
		if err := txn.Set(arrivalKey(m, 2), bad); err != nil {
			return err
		}
		return txn.Set(indexKey(m, e1.ID()), []byte{1, 2, 3})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(m, e2.ID()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get(garbled envelope) = %v", err)
	}
	if _, err := s.Get(m, e1.ID()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get(garbled index) = %v", err)
	}
	if _, err := s.Page(m, nil, 10, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Page over garbled record = %v", err)
	}
	if _, err := s.Put(t.Context(), e1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Put over garbled index = %v", err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(stateKey(m), []byte{1}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stats(m); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Stats(garbled state) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, diskParams(), WithLogger(quietLogger())); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a garbled state record = %v, want ErrCorrupt", err)
	}
}

func TestOpenRejectsForeignDirectories(t *testing.T) {
	write := func(t *testing.T, dir string, kv map[string][]byte) {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(txn *badger.Txn) error {
			for k, v := range kv {
				if err := txn.Set([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]struct {
		kv   map[string][]byte
		want error
	}{
		"not a store":   {map[string][]byte{"hello": []byte("world")}, ErrSchema},
		"future schema": {map[string][]byte{"v": encodeSchema(2)}, ErrSchema},
		"bad schema":    {map[string][]byte{"v": {1}}, ErrCorrupt},
		"no meta":       {map[string][]byte{"v": encodeSchema(1)}, ErrCorrupt},
		"bad meta":      {map[string][]byte{"v": encodeSchema(1), "n": {1, 2}}, ErrCorrupt},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.kv)
			if s, err := Open(dir, diskParams(), WithLogger(quietLogger())); !errors.Is(err, tc.want) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Open("", diskParams()); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("Open on disk with empty dir = %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := testParams()
	p.Default = MailboxPolicy{QuotaCount: 2}
	s := openMem(t, p, WithRegisterer(reg))
	k := newKey(t)
	e := seal(t, k, 300)
	mustPut(t, s, e)
	mustPut(t, s, e)
	mustPut(t, s, seal(t, k, 300))
	if _, err := s.Put(t.Context(), seal(t, k, 300)); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"puts", counterValue(t, s.m.puts), 2},
		{"duplicates", counterValue(t, s.m.duplicates), 1},
		{"quota rejections", counterValue(t, s.m.rejections.WithLabelValues(reasonQuotaMailbox)), 1},
		{"bytes", counterValue(t, s.m.bytes), 600},
	} {
		if c.got != c.want {
			t.Errorf("metric %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range fams {
		found[f.GetName()] = true
		if f.GetName() == "meshnode_store_envelopes" && f.GetMetric()[0].GetGauge().GetValue() != 2 {
			t.Errorf("envelopes gauge = %v, want 2", f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	for _, name := range []string{"meshnode_store_envelopes", "meshnode_store_commit_seconds", "meshnode_store_batch_size", "meshnode_store_evictions_total"} {
		if !found[name] {
			t.Errorf("metric %s not registered", name)
		}
	}
	if _, err := Open("", p, WithRegisterer(reg)); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("second store on one registry = %v, want ErrInvalidParams", err)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{DefaultParams(), InMemoryParams()} {
		if err := p.validate(); err != nil {
			t.Fatalf("default params invalid: %v", err)
		}
	}
	cases := map[string]func(*Params){
		"envelope size too small":   func(p *Params) { p.MaxEnvelopeSize = envelope.Overhead },
		"envelope size too large":   func(p *Params) { p.MaxEnvelopeSize = envelope.AbsoluteMaxSize + 1 },
		"negative global quota":     func(p *Params) { p.GlobalQuotaBytes = -1 },
		"negative tombstone TTL":    func(p *Params) { p.TombstoneTTL = -1 },
		"negative interval":         func(p *Params) { p.RetentionInterval = -1 },
		"zero chunk":                func(p *Params) { p.RetentionChunk = 0 },
		"discard ratio 0":           func(p *Params) { p.GCDiscardRatio = 0 },
		"discard ratio 1":           func(p *Params) { p.GCDiscardRatio = 1 },
		"zero batch":                func(p *Params) { p.MaxBatchCount = 0 },
		"batch bytes below max env": func(p *Params) { p.MaxBatchBytes = p.MaxEnvelopeSize - 1 },
		"zero subscriber buffer":    func(p *Params) { p.SubscriberBuffer = 0 },
		"tiny memtable":             func(p *Params) { p.Badger.MemTableSize = 1 << 10 },
		"no memtables":              func(p *Params) { p.Badger.NumMemtables = 0 },
		"one compactor":             func(p *Params) { p.Badger.NumCompactors = 1 },
		"no compactor on disk":      func(p *Params) { p.Badger.NumCompactors = 0 },
		"negative compactors":       func(p *Params) { p.Badger.NumCompactors = -2 },
		"zero value threshold":      func(p *Params) { p.Badger.ValueThreshold = 0 },
		"huge value threshold":      func(p *Params) { p.Badger.ValueThreshold = 2 << 20 },
		"negative cache":            func(p *Params) { p.Badger.BlockCacheSize = -1 },
		"stall below L0 tables":     func(p *Params) { p.Badger.NumLevelZeroTablesStall = p.Badger.NumLevelZeroTables },
		"vlog file too small":       func(p *Params) { p.Badger.ValueLogFileSize = 1 << 10 },
		"tiny base table":           func(p *Params) { p.Badger.BaseTableSize = 1 },
		"negative policy":           func(p *Params) { p.Default.MaxCount = -1 },
		"quota below retention":     func(p *Params) { p.Default.MaxBytes, p.Default.QuotaBytes = 10, 5 },
		"envelope does not fit txn": func(p *Params) { p.InMemory = true; p.MaxEnvelopeSize = envelope.AbsoluteMaxSize },
	}
	for name, mut := range cases {
		p := DefaultParams()
		mut(&p)
		if err := p.validate(); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%s: validate = %v, want ErrInvalidParams", name, err)
		}
		if _, err := Open(t.TempDir(), p); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("%s: Open = %v, want ErrInvalidParams", name, err)
		}
	}
	for name, opt := range map[string]Option{"logger": WithLogger(nil), "registerer": WithRegisterer(nil), "clock": WithClock(nil)} {
		if _, err := Open("", testParams(), opt); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("nil %s: %v", name, err)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
