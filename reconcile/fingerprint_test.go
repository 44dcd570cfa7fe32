package reconcile

import (
	"crypto/sha256"
	"encoding/binary"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// referenceFingerprint computes the fingerprint with math/big, straight
// from the definition in the package documentation.
func referenceFingerprint(ids []envelope.ID) Fingerprint {
	sum := new(big.Int)
	for _, id := range ids {
		le := make([]byte, IDSize)
		for i := range le {
			le[i] = id[IDSize-1-i] // little-endian to big-endian
		}
		sum.Add(sum, new(big.Int).SetBytes(le))
	}
	sum.Mod(sum, new(big.Int).Lsh(big.NewInt(1), 256))
	be := sum.FillBytes(make([]byte, IDSize))
	le := make([]byte, IDSize)
	for i := range le {
		le[i] = be[IDSize-1-i]
	}
	h := sha256.New()
	h.Write([]byte(FingerprintLabel))
	h.Write(le)
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(ids))))
	var fp Fingerprint
	copy(fp[:], h.Sum(nil))
	return fp
}

func TestAccumulator(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	ids := randomIDs(r, 100)
	// Carries across every limb and the wrap at 2^256.
	var ones envelope.ID
	for i := range ones {
		ones[i] = 0xff
	}
	ids = append(ids, ones, ones, envelope.ID{1})
	var acc Accumulator
	for i, id := range ids {
		acc.Add(id)
		if got, want := acc.Fingerprint(), referenceFingerprint(ids[:i+1]); got != want {
			t.Fatalf("after %d IDs: %x, want %x", i+1, got, want)
		}
	}
	if acc.Count() != len(ids) {
		t.Fatalf("Count %d, want %d", acc.Count(), len(ids))
	}
	acc.Remove(ones)
	acc.Remove(ids[0])
	rest := append(append([]envelope.ID{}, ids[1:len(ids)-2]...), envelope.ID{1})
	if acc.Fingerprint() != referenceFingerprint(rest) {
		t.Fatal("Remove does not undo Add")
	}
	var a, b Accumulator
	for _, id := range rest[:50] {
		a.Add(id)
	}
	for _, id := range rest[50:] {
		b.Add(id)
	}
	a.Merge(b)
	if a.Fingerprint() != acc.Fingerprint() {
		t.Fatal("Merge differs from adding one by one")
	}
	var empty Accumulator
	if empty.Fingerprint() != referenceFingerprint(nil) {
		t.Fatal("empty fingerprint differs")
	}
	// The count matters: {x} and {x, 0} have the same sum.
	var one, two Accumulator
	one.Add(ids[0])
	two.Add(ids[0])
	two.Add(envelope.ID{})
	if one.Fingerprint() == two.Fingerprint() {
		t.Fatal("fingerprint ignores the count")
	}
}
