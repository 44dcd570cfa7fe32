package groupstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestSeqTrackerSequence(t *testing.T) {
	alice, bob := [32]byte{1}, [32]byte{2}
	var tr SeqTracker // zero value usable
	type step struct {
		author [32]byte
		seq    uint64
		status SeqStatus
		late   bool
		gaps   []SeqRange
	}
	steps := []step{
		{alice, 1, SeqNew, false, nil},
		{alice, 2, SeqNew, false, nil},
		{alice, 5, SeqNew, false, []SeqRange{{3, 4}}},                // 3 and 4 missing
		{alice, 2, SeqDuplicate, true, []SeqRange{{3, 4}}},           // replay
		{bob, 3, SeqNew, false, []SeqRange{{1, 2}}},                  // bob's first seen is 3
		{alice, 4, SeqNew, true, []SeqRange{{3, 3}}},                 // reordered: fills part of the gap
		{alice, 9, SeqNew, false, []SeqRange{{3, 3}, {6, 8}}},        // new gap
		{alice, 7, SeqNew, true, []SeqRange{{3, 3}, {6, 6}, {8, 8}}}, // splits the gap
		{alice, 3, SeqNew, true, []SeqRange{{6, 6}, {8, 8}}},
		{alice, 8, SeqNew, true, []SeqRange{{6, 6}}},
		{alice, 6, SeqNew, true, nil}, // merges everything
		{alice, 6, SeqDuplicate, true, nil},
		{alice, 9, SeqDuplicate, true, nil},
		{bob, 1, SeqNew, true, []SeqRange{{2, 2}}},
	}
	for i, s := range steps {
		obs, err := tr.Observe(s.author, s.seq)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if obs.Status != s.status || obs.Late != s.late || !reflect.DeepEqual(obs.Gaps, s.gaps) {
			t.Fatalf("step %d (seq %d): got %+v, want status %v late %v gaps %v", i, s.seq, obs, s.status, s.late, s.gaps)
		}
	}
	if tr.Ranges() != 3 || tr.Authors() != 2 || tr.Highest(alice) != 9 || tr.Highest([32]byte{9}) != 0 {
		t.Fatalf("ranges %d authors %d highest %d", tr.Ranges(), tr.Authors(), tr.Highest(alice))
	}
	if !tr.Seen(alice, 6) || tr.Seen(alice, 10) || tr.Seen(bob, 2) {
		t.Fatal("Seen wrong")
	}
	want := map[[32]byte][]SeqRange{bob: {{2, 2}}}
	if got := tr.Gaps(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Gaps %v, want %v", got, want)
	}
	if _, err := tr.Observe(alice, 0); !errors.Is(err, ErrBadSeq) {
		t.Fatalf("seq 0: %v", err)
	}
}

func TestSeqTrackerExtremes(t *testing.T) {
	var tr SeqTracker
	a := [32]byte{7}
	if _, err := tr.Observe(a, math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if g := tr.AuthorGaps(a); len(g) != 1 || g[0] != (SeqRange{1, math.MaxUint64 - 1}) {
		t.Fatalf("gaps %v", g)
	}
	if obs, _ := tr.Observe(a, math.MaxUint64); obs.Status != SeqDuplicate {
		t.Fatal("max seq replay not detected")
	}
	if obs, _ := tr.Observe(a, math.MaxUint64-1); obs.Status != SeqNew || tr.Ranges() != 1 {
		t.Fatal("join below max failed")
	}
	roundTripTracker(t, &tr)
}

// TestSeqTrackerCompact observes 100k messages of 10 authors, each author's
// shuffled within windows of 64 and with every message delivered twice: the
// tracker ends with one range per author and a tiny encoding.
func TestSeqTrackerCompact(t *testing.T) {
	const authors, perAuthor, window = 10, 10000, 64
	rng := rand.New(rand.NewPCG(1, 2))
	var tr SeqTracker
	maxRanges := 0
	for a := range authors {
		author := [32]byte{byte(a)}
		for base := uint64(1); base <= perAuthor; base += window {
			seqs := make([]uint64, 0, 2*window)
			for s := base; s < base+window && s <= perAuthor; s++ {
				seqs = append(seqs, s, s)
			}
			rng.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
			news := 0
			for _, s := range seqs {
				obs, err := tr.Observe(author, s)
				if err != nil {
					t.Fatal(err)
				}
				if obs.Status == SeqNew {
					news++
				}
				maxRanges = max(maxRanges, tr.Ranges())
			}
			if news != len(seqs)/2 {
				t.Fatalf("%d new of %d distinct", news, len(seqs)/2)
			}
		}
	}
	if tr.Ranges() != authors || len(tr.Gaps()) != 0 {
		t.Fatalf("%d ranges, gaps %v", tr.Ranges(), tr.Gaps())
	}
	b, _ := tr.MarshalBinary()
	if len(b) > 5+authors*(36+1+16) {
		t.Fatalf("encoding of 100k messages is %d bytes", len(b))
	}
	if maxRanges > authors+window {
		t.Fatalf("tracker grew to %d ranges while reordering within %d", maxRanges, window)
	}
	t.Logf("100k messages: %d ranges at most, %d-byte encoding", maxRanges, len(b))
}

// TestSeqTrackerMatchesSet checks random observations against a plain set.
func TestSeqTrackerMatchesSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var tr SeqTracker
	seen := map[[32]byte]map[uint64]bool{}
	for range 20000 {
		a := [32]byte{byte(rng.IntN(3))}
		s := uint64(rng.IntN(500) + 1)
		if seen[a] == nil {
			seen[a] = map[uint64]bool{}
		}
		obs, err := tr.Observe(a, s)
		if err != nil {
			t.Fatal(err)
		}
		if (obs.Status == SeqDuplicate) != seen[a][s] {
			t.Fatalf("author %d seq %d: status %v, seen before %v", a[0], s, obs.Status, seen[a][s])
		}
		seen[a][s] = true
	}
	for a, set := range seen {
		hi := uint64(0)
		for s := range set {
			hi = max(hi, s)
		}
		var missing []uint64
		for s := uint64(1); s < hi; s++ {
			if !set[s] {
				missing = append(missing, s)
			}
		}
		var fromGaps []uint64
		for _, r := range tr.AuthorGaps(a) {
			for s := r.First; s <= r.Last; s++ {
				fromGaps = append(fromGaps, s)
			}
		}
		if !reflect.DeepEqual(missing, fromGaps) {
			t.Fatalf("author %d: gaps disagree with the set", a[0])
		}
	}
	roundTripTracker(t, &tr)
}

func roundTripTracker(t *testing.T, tr *SeqTracker) {
	t.Helper()
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var tr2 SeqTracker
	if err := tr2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tr.seen, tr2.seen) {
		t.Fatal("round trip changed the tracker")
	}
	b2, _ := tr2.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("tracker encoding not canonical")
	}
}

func TestSeqTrackerUnmarshalRejects(t *testing.T) {
	enc := func(authors ...[]uint64) []byte { // each: author byte, then first/last pairs
		b := []byte{1}
		b = binary.BigEndian.AppendUint32(b, uint32(len(authors)))
		for _, a := range authors {
			b = append(b, byte(a[0]))
			b = append(b, make([]byte, 31)...)
			b = binary.BigEndian.AppendUint32(b, uint32((len(a)-1)/2))
			for _, v := range a[1:] {
				b = binary.BigEndian.AppendUint64(b, v)
			}
		}
		return b
	}
	good := enc([]uint64{1, 1, 5, 7, 9}, []uint64{2, 3, 3})
	var tr SeqTracker
	if err := tr.UnmarshalBinary(good); err != nil {
		t.Fatalf("hand-built encoding: %v", err)
	}
	tests := map[string][]byte{
		"empty":             nil,
		"bad version":       append([]byte{3}, good[1:]...),
		"trailing":          append(append([]byte(nil), good...), 0),
		"huge author count": {1, 0xff, 0xff, 0xff, 0xff},
		"zero ranges":       enc([]uint64{1}),
		"seq zero":          enc([]uint64{1, 0, 3}),
		"first after last":  enc([]uint64{1, 5, 4}),
		"overlap":           enc([]uint64{1, 1, 5, 5, 9}),
		"adjacent":          enc([]uint64{1, 1, 5, 6, 9}),
		"unsorted ranges":   enc([]uint64{1, 7, 9, 1, 5}),
		"after max":         enc([]uint64{1, 1, math.MaxUint64, math.MaxUint64, math.MaxUint64}),
		"authors unsorted":  enc([]uint64{2, 1, 1}, []uint64{1, 1, 1}),
		"author twice":      enc([]uint64{1, 1, 1}, []uint64{1, 3, 3}),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			var tr SeqTracker
			if err := tr.UnmarshalBinary(data); !errors.Is(err, ErrSeqTrackerMalformed) {
				t.Fatalf("got %v", err)
			}
		})
	}
	for n := range len(good) {
		if err := tr.UnmarshalBinary(good[:n]); !errors.Is(err, ErrSeqTrackerMalformed) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	// Version 2: an owner flag (and owner) after each key.
	v2 := func(flag byte, owner byte) []byte {
		b := []byte{2, 0, 0, 0, 1, 1}
		b = append(b, make([]byte, 31)...)
		b = append(b, flag)
		if flag == 1 {
			b = append(b, owner)
			b = append(b, make([]byte, 31)...)
		}
		b = binary.BigEndian.AppendUint32(b, 1)
		b = binary.BigEndian.AppendUint64(b, 1)
		return binary.BigEndian.AppendUint64(b, 4)
	}
	for _, ok := range [][]byte{v2(0, 0), v2(1, 9)} {
		if err := tr.UnmarshalBinary(ok); err != nil {
			t.Fatalf("version 2: %v", err)
		}
	}
	if tr.Owner([32]byte{1}) != [32]byte{9} {
		t.Fatal("owner not decoded")
	}
	for name, data := range map[string][]byte{"owner flag 2": v2(2, 0), "owner is the key": v2(1, 1), "v2 truncated": v2(1, 9)[:50]} {
		if err := tr.UnmarshalBinary(data); !errors.Is(err, ErrSeqTrackerMalformed) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// A membership's space keeps its owner through the encoding; a key that
// is its own author needs none.
func TestSeqTrackerOwners(t *testing.T) {
	var tr SeqTracker
	author, space := [32]byte{7}, [32]byte{8}
	tr.SetOwner(space, author)
	tr.SetOwner(author, author)
	for _, k := range [][32]byte{space, author} {
		if _, err := tr.Observe(k, 1); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := tr.MarshalBinary()
	var tr2 SeqTracker
	if err := tr2.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if tr2.Owner(space) != author || tr2.Owner(author) != author || tr2.Owner([32]byte{9}) != ([32]byte{9}) {
		t.Fatalf("owners %v", tr2.owners)
	}
	if b2, _ := tr2.MarshalBinary(); !bytes.Equal(b, b2) {
		t.Fatal("not canonical")
	}
}

func FuzzSeqTrackerUnmarshal(f *testing.F) {
	var tr SeqTracker
	for _, s := range []uint64{1, 2, 5, 9, 10, 100} {
		_, _ = tr.Observe([32]byte{1}, s)
		_, _ = tr.Observe([32]byte{2}, s*3)
	}
	b, _ := tr.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0})
	tr.SetOwner([32]byte{3}, [32]byte{4})
	_, _ = tr.Observe([32]byte{3}, 2)
	b, _ = tr.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var tr SeqTracker
		if err := tr.UnmarshalBinary(data); err != nil {
			return
		}
		out, _ := tr.MarshalBinary()
		if data[0] == seqTrackerVersion && !bytes.Equal(out, data) {
			t.Fatal("non-canonical tracker accepted")
		}
		var again SeqTracker
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("own encoding refused: %v", err)
		}
		if out2, _ := again.MarshalBinary(); !bytes.Equal(out, out2) {
			t.Fatal("re-encoding changed")
		}
		// The decoded tracker keeps working.
		for a := range tr.seen {
			_, _ = tr.Observe(a, 1)
			_, _ = tr.Observe(a, tr.Highest(a)/2+1)
		}
	})
}

func BenchmarkSeqTrackerObserveInOrder(b *testing.B) {
	var tr SeqTracker
	a := [32]byte{1}
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		if _, err := tr.Observe(a, seq); err != nil {
			b.Fatal(err)
		}
	}
}
