package store

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/meshnode/meshnode/envelope"
)

// admissionParams: a mailbox is established after an hour and 2
// envelopes; a new one may hold 2,000 bytes; of a 10,000-byte store, 20%
// is reserved for established mailboxes.
func admissionParams() Params {
	p := testParams()
	p.GlobalQuotaBytes = 10_000
	p.Admission = AdmissionParams{
		EstablishAfter:        time.Hour,
		EstablishMinEnvelopes: 2,
		NewMailboxQuotaBytes:  2_000,
		ReserveFraction:       0.2,
	}
	return p
}

func TestStanding(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, admissionParams(), WithClock(clk.now))
	k := newKey(t)
	m := mailboxOf(k)
	if got := s.Standing(m); got != StandingUnknown {
		t.Fatalf("unknown mailbox: %v", got)
	}
	mustPut(t, s, seal(t, k, 200))
	if got := s.Standing(m); got != StandingNew {
		t.Fatalf("after one envelope: %v", got)
	}
	clk.advance(2 * time.Hour)
	if got := s.Standing(m); got != StandingNew {
		t.Fatalf("old but with one envelope only: %v", got)
	}
	mustPut(t, s, seal(t, k, 200))
	if got := s.Standing(m); got != StandingEstablished {
		t.Fatalf("old with a history: %v", got)
	}
	// A mailbox that only had a policy set is still unknown.
	k2 := newKey(t)
	if err := s.SetPolicy(mailboxOf(k2), MailboxPolicy{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Standing(mailboxOf(k2)); got != StandingUnknown {
		t.Fatalf("policy only: %v", got)
	}
}

// New mailboxes are capped, may not use the reserve, and are evicted
// newest first to make room for an established mailbox, which loses no
// write while new mailboxes hold anything.
func TestAdmissionBudgets(t *testing.T) {
	clk := newFakeClock()
	s := openMem(t, admissionParams(), WithClock(clk.now))
	est := newKey(t)
	for range 4 {
		mustPut(t, s, seal(t, est, 500)) // 2,000 bytes
	}
	clk.advance(2 * time.Hour)
	if s.Standing(mailboxOf(est)) != StandingEstablished {
		t.Fatal("not established")
	}

	// A new mailbox's own budget.
	n1 := newKey(t)
	for range 4 {
		mustPut(t, s, seal(t, n1, 500))
	}
	_, err := s.Put(t.Context(), seal(t, n1, 500))
	if !errors.Is(err, ErrQuotaExceeded) || !errors.Is(err, ErrNewMailboxQuota) {
		t.Fatalf("past a new mailbox's budget: %v", err)
	}
	clk.advance(time.Minute)
	// Fill to the reserve (8,000 of 10,000) with newer mailboxes.
	n2 := newKey(t)
	for range 4 {
		mustPut(t, s, seal(t, n2, 500))
	}
	clk.advance(time.Minute)
	n4 := newKey(t)
	for range 4 {
		mustPut(t, s, seal(t, n4, 500))
	}
	if u := s.AdmissionUsage(); !u.NewRefused || u.NewLimitBytes != 8_000 || u.Bytes != 8_000 {
		t.Fatalf("usage %+v", u)
	}
	n3 := newKey(t)
	_, err = s.Put(t.Context(), seal(t, n3, 500))
	if !errors.Is(err, ErrQuotaExceeded) || !errors.Is(err, ErrReserved) {
		t.Fatalf("new mailbox into the reserve: %v", err)
	}
	// 8,000: the established mailbox still writes into the reserve.
	for range 4 {
		mustPut(t, s, seal(t, est, 500))
	}
	if u := s.Usage(); u.Bytes != 10_000 {
		t.Fatalf("store holds %d bytes, want 10,000", u.Bytes)
	}
	// Now full: the newest new mailbox (n4) gives way, oldest envelope
	// first, then n2, then n1.
	count := func(m envelope.MailboxID) int64 {
		st, err := s.Stats(m)
		if err != nil {
			t.Fatal(err)
		}
		return st.Count
	}
	first := readAll(t, s, mailboxOf(n4), 10)[0]
	mustPut(t, s, seal(t, est, 500))
	if c := count(mailboxOf(n4)); c != 3 {
		t.Fatalf("newest new mailbox holds %d, want 3", c)
	}
	if ok, _ := s.Has(mailboxOf(n4), first.ID()); ok {
		t.Fatal("the newest mailbox's oldest envelope was not the one evicted")
	}
	// Its tombstone keeps it out (sync cannot bring it back).
	if _, err := s.Put(t.Context(), first); !errors.Is(err, ErrExpired) {
		t.Fatalf("evicted envelope sent again: %v", err)
	}
	for range 3 + 4 {
		mustPut(t, s, seal(t, est, 500))
	}
	if c1, c2, c4 := count(mailboxOf(n1)), count(mailboxOf(n2)), count(mailboxOf(n4)); c4 != 0 || c2 != 0 || c1 != 4 {
		t.Fatalf("after 8 more established writes: n1 %d, n2 %d, n4 %d; want 4, 0, 0", c1, c2, c4)
	}
	for range 4 {
		mustPut(t, s, seal(t, est, 500))
	}
	if c := count(mailboxOf(n1)); c != 0 {
		t.Fatalf("oldest new mailbox holds %d", c)
	}
	// Nothing new left: the global quota refuses even an established one.
	if _, err := s.Put(t.Context(), seal(t, est, 500)); !errors.Is(err, ErrQuotaExceeded) || errors.Is(err, ErrReserved) {
		t.Fatalf("full of established data: %v", err)
	}
	if u := s.Usage(); u.Bytes != 10_000 {
		t.Fatalf("store holds %d bytes", u.Bytes)
	}
}

// Creation times survive a restart; mailboxes stored before creation
// times were recorded count as created long ago.
func TestAdmissionRecordsPersist(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	p := admissionParams()
	p.InMemory = false
	p.Badger.NumCompactors = 2 // on disk: Badger's compactors (0 is for in-memory stores)
	p.Badger.ValueThreshold = 512
	fresh, old := newKey(t), newKey(t)
	s, err := Open(dir, p, WithClock(clk.now), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		mustPut(t, s, seal(t, fresh, 300))
		mustPut(t, s, seal(t, old, 300))
	}
	// old's record goes, as if it had been stored by an earlier version.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(admissionKey(mailboxOf(old))) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, p, WithClock(clk.now))
	if got := s.Standing(mailboxOf(fresh)); got != StandingNew {
		t.Fatalf("fresh mailbox after restart: %v", got)
	}
	if got := s.Standing(mailboxOf(old)); got != StandingEstablished {
		t.Fatalf("mailbox without a record: %v", got)
	}
	clk.advance(time.Hour)
	if got := s.Standing(mailboxOf(fresh)); got != StandingEstablished {
		t.Fatalf("fresh mailbox an hour later: %v", got)
	}
}

func FuzzDecodeAdmission(f *testing.F) {
	f.Add(encodeAdmission(1_700_000_000_000_000_000))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeAdmission(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if string(encodeAdmission(c)) != string(b) {
			t.Fatal("record does not re-encode to its input")
		}
	})
}
