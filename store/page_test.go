package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

func TestPagingLosesAndRepeatsNothing(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	var want []envelope.ID
	for i := range 1000 {
		e := seal(t, k, 200+i%300)
		mustPut(t, s, e)
		want = append(want, e.ID())
	}
	for _, tc := range []struct {
		limit, maxBytes int
	}{{1, 1 << 20}, {7, 1 << 20}, {100, 1 << 20}, {2000, 1 << 20}, {1000, 1000}, {1000, 1}} {
		var got []envelope.ID
		var cur Cursor
		for pages := 0; ; pages++ {
			pg, err := s.Page(m, cur, tc.limit, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(pg.Envelopes) == 0 && pg.More {
				t.Fatalf("limit %d bytes %d: empty page with More", tc.limit, tc.maxBytes)
			}
			if len(pg.Envelopes) > tc.limit {
				t.Fatalf("page of %d envelopes, limit %d", len(pg.Envelopes), tc.limit)
			}
			total := 0
			for _, e := range pg.Envelopes {
				total += e.Size()
			}
			if len(pg.Envelopes) > 1 && total > tc.maxBytes {
				t.Fatalf("page of %d bytes, limit %d", total, tc.maxBytes)
			}
			got = append(got, ids(pg.Envelopes)...)
			cur = pg.Next
			if !pg.More {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d bytes %d: paged %d envelopes, differing from the %d stored", tc.limit, tc.maxBytes, len(got), len(want))
		}
		// Resuming at the end gives an empty page and the same cursor.
		pg, err := s.Page(m, cur, tc.limit, tc.maxBytes)
		if err != nil || len(pg.Envelopes) != 0 || pg.More || !bytes.Equal(pg.Next, cur) {
			t.Fatalf("page at end = %d envelopes, more %v, err %v", len(pg.Envelopes), pg.More, err)
		}
	}
}

func TestPagingWhileWriting(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	const writers, each = 4, 250
	envs := make([]*envelope.Envelope, writers*each)
	for i := range envs {
		envs[i] = seal(t, k, 300)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for _, e := range envs[w*each : (w+1)*each] {
				if _, err := s.Put(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := map[envelope.ID]uint64{}
	var order []envelope.ID
	var cur Cursor
	for len(seen) < len(envs) {
		pg, err := s.Page(m, cur, 5, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range pg.Envelopes {
			if _, dup := seen[e.ID()]; dup {
				t.Fatalf("envelope %s paged twice", e.ID().Short())
			}
			seen[e.ID()] = 0
			order = append(order, e.ID())
		}
		cur = pg.Next
		if t.Failed() {
			break
		}
	}
	wg.Wait()
	pg, err := s.Page(m, cur, 5, 1<<20)
	if err != nil || len(pg.Envelopes) != 0 {
		t.Fatalf("after all writes: %d more envelopes, %v", len(pg.Envelopes), err)
	}
	// Arrival order as paged must match the stored sequence numbers.
	for i, id := range order {
		rec, ok, err := s.lookupIndex(m, id)
		if err != nil || !ok || rec.seq != uint64(i+1) {
			t.Fatalf("paged #%d has seq %d (%v %v)", i+1, rec.seq, ok, err)
		}
	}
}

func TestPageLimits(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	for range 3 {
		mustPut(t, s, seal(t, k, 1000))
	}
	for _, tc := range []struct{ limit, maxBytes int }{{0, 10}, {-1, 10}, {10, 0}, {10, -5}} {
		if _, err := s.Page(m, nil, tc.limit, tc.maxBytes); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("Page(limit %d, bytes %d) = %v", tc.limit, tc.maxBytes, err)
		}
	}
	// A byte limit below one envelope still returns one.
	pg, err := s.Page(m, nil, 10, 10)
	if err != nil || len(pg.Envelopes) != 1 || !pg.More {
		t.Fatalf("tiny byte limit: %d envelopes, more %v, %v", len(pg.Envelopes), pg.More, err)
	}
	pg, err = s.Page(m, nil, 10, 2500)
	if err != nil || len(pg.Envelopes) != 2 || !pg.More {
		t.Fatalf("2500-byte limit: %d envelopes, more %v, %v", len(pg.Envelopes), pg.More, err)
	}
	// Unknown mailbox: empty page, a cursor that works later.
	var empty envelope.MailboxID
	pg, err = s.Page(empty, nil, 10, 100)
	if err != nil || len(pg.Envelopes) != 0 || pg.More {
		t.Fatalf("empty mailbox: %+v, %v", pg, err)
	}
}

func TestCursorErrors(t *testing.T) {
	s := openMem(t, testParams())
	other := openMem(t, testParams())
	k, k2 := newKey(t), newKey(t)
	m, m2 := mailboxOf(k), mailboxOf(k2)
	for range 5 {
		e := seal(t, k, 300)
		mustPut(t, s, e)
		mustPut(t, other, e)
		mustPut(t, s, seal(t, k2, 300))
	}
	pg, err := s.Page(m, nil, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	good := pg.Next
	if _, err := s.Page(m, good, 10, 1<<20); err != nil {
		t.Fatalf("good cursor: %v", err)
	}
	foreign, err := other.Page(m, nil, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]Cursor{
		"foreign store":  foreign.Next,
		"truncated":      good[:len(good)-1],
		"extended":       append(slices.Clone(good), 0),
		"one byte":       {1},
		"beyond last":    encodeCursor(s.inst, m, 6),
		"far beyond":     encodeCursor(s.inst, m, 1<<60),
		"other mailbox":  mustPage(t, s, m2).Next,
		"wrong version":  append([]byte{2}, good[1:]...),
		"all zeros":      make(Cursor, cursorSize),
		"seq w/o check":  append(append(slices.Clone(good[:9]), 0, 0, 0, 0, 0, 0, 0, 1), good[17:]...),
		"check mismatch": append(slices.Clone(good[:17]), good[17]^1, good[18], good[19], good[20]),
	}
	for i := range good {
		for _, bit := range []byte{1, 0x80} {
			c := slices.Clone(good)
			c[i] ^= bit
			cases["flip byte "+string(rune('a'+i))+string(rune('0'+bit%10))] = c
		}
	}
	for name, c := range cases {
		pg, err := s.Page(m, c, 10, 1<<20)
		if !errors.Is(err, ErrUnknownCursor) {
			t.Errorf("%s: err = %v, want ErrUnknownCursor", name, err)
		}
		if len(pg.Envelopes) != 0 {
			t.Errorf("%s: returned %d envelopes with a bad cursor", name, len(pg.Envelopes))
		}
	}
}

func mustPage(t *testing.T, s *Store, m envelope.MailboxID) Page {
	t.Helper()
	pg, err := s.Page(m, nil, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

// VisitPage hands fn exactly the encodings Page decodes, with the same
// cursors, limits and errors; an error from fn ends the walk and comes
// back wrapped, with no cursor.
func TestVisitPage(t *testing.T) {
	s := openMem(t, testParams())
	k := newKey(t)
	m := mailboxOf(k)
	for i := range 300 {
		mustPut(t, s, seal(t, k, envelope.Overhead+100+i%700))
	}
	for _, tc := range []struct{ limit, maxBytes int }{{1, 1 << 20}, {7, 1 << 20}, {13, 1 << 20}, {1000, 4000}, {1000, 1}} {
		var cur, rawCur Cursor
		for {
			pg, err := s.Page(m, cur, tc.limit, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			var seen [][]byte
			next, more, err := s.VisitPage(m, rawCur, tc.limit, tc.maxBytes, func(enc []byte) error {
				seen = append(seen, bytes.Clone(enc))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != len(pg.Envelopes) || more != pg.More || !bytes.Equal(next, pg.Next) {
				t.Fatalf("limit %d bytes %d: visited %d (more %v) vs a page of %d (more %v)", tc.limit, tc.maxBytes, len(seen), more, len(pg.Envelopes), pg.More)
			}
			total := 0
			for i, b := range seen {
				if !bytes.Equal(b, pg.Envelopes[i].Bytes()) {
					t.Fatalf("visited envelope %d differs from the decoded one", i)
				}
				total += len(b)
			}
			if len(seen) > 1 && total > tc.maxBytes {
				t.Fatalf("visited page of %d bytes over the %d-byte limit", total, tc.maxBytes)
			}
			cur, rawCur = pg.Next, next
			if !pg.More {
				break
			}
		}
	}
	none := func([]byte) error { return nil }
	if _, _, err := s.VisitPage(m, Cursor("bogus"), 10, 1<<20, none); !errors.Is(err, ErrUnknownCursor) {
		t.Fatalf("bogus cursor: %v", err)
	}
	if _, _, err := s.VisitPage(m, nil, 0, 1<<20, none); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("zero limit: %v", err)
	}
	stop := errors.New("stop here")
	calls := 0
	next, more, err := s.VisitPage(m, nil, 10, 1<<20, func([]byte) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 || next != nil || more {
		t.Fatalf("after %d calls: %v (next %x, more %v)", calls, err, next, more)
	}
}
