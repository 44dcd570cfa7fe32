package pow

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestSolveCheck(t *testing.T) {
	for _, bits := range []uint8{0, 1, 8, 12} {
		in := append([]byte("label/input"), make([]byte, NonceSize)...)
		if err := Solve(context.Background(), in, bits); err != nil {
			t.Fatal(err)
		}
		if _, ok := Check(in, bits); !ok {
			t.Fatalf("%d bits: solution does not check", bits)
		}
		// Another input with the same nonce fails (almost surely, at 12
		// bits: 1 in 4096).
		other := append([]byte("label/other"), in[len(in)-NonceSize:]...)
		if _, ok := Check(other, 12); ok && bits == 12 {
			t.Log("a nonce happened to solve another input too")
		}
	}
}

func TestSolveLimits(t *testing.T) {
	if err := Solve(context.Background(), make([]byte, NonceSize), MaxBits+1); !errors.Is(err, ErrTooHard) {
		t.Fatalf("33 bits: %v", err)
	}
	if err := Solve(context.Background(), make([]byte, 3), 1); err == nil {
		t.Fatal("input without room for a nonce accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Solve(ctx, make([]byte, 40), MaxBits); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestLeadingZeros(t *testing.T) {
	var d [sha256.Size]byte
	if LeadingZeros(&d) != 256 {
		t.Fatal("zero digest")
	}
	d[1] = 0x10
	if got := LeadingZeros(&d); got != 11 {
		t.Fatalf("got %d, want 11", got)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add(make([]byte, 40), uint8(32))
	f.Fuzz(func(t *testing.T, in []byte, bits uint8) {
		d, ok := Check(in, bits)
		if ok != (LeadingZeros(&d) >= int(bits)) {
			t.Fatal("Check disagrees with LeadingZeros")
		}
	})
}
