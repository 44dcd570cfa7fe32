package groupstate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestBuckets(t *testing.T) {
	b := Buckets()
	if len(b) != 5 || b[len(b)-1] != MaxPaddedSize || MaxPaddedSize != 65536-125-16 {
		t.Fatalf("buckets %v, max %d", b, MaxPaddedSize)
	}
	b[0] = 1
	if Buckets()[0] != 512 {
		t.Fatal("Buckets exposes the protocol table")
	}
}

func TestPadRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 508, 509, 2044, 2045, 8188, 8189, 32764, 32765, MaxPayloadSize} {
		in := bytes.Repeat([]byte{0xab}, n)
		padded, err := pad(in, 16)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		want, _ := bucketFor(n)
		if len(padded) != want || cap(padded) < want+16 {
			t.Fatalf("%d bytes padded to %d (cap %d), want %d", n, len(padded), cap(padded), want)
		}
		out, err := unpad(padded)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("%d bytes: unpad: %v", n, err)
		}
	}
	if _, err := pad(make([]byte, MaxPayloadSize+1), 0); !errors.Is(err, ErrTooLong) {
		t.Fatalf("oversize: %v", err)
	}
}

func TestUnpadRejects(t *testing.T) {
	good, _ := pad([]byte("hello"), 0)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"empty":              nil,
		"not a bucket":       good[:511],
		"non-zero padding":   mut(func(b []byte) []byte { b[511] = 1; return b }),
		"non-zero mid pad":   mut(func(b []byte) []byte { b[100] = 0x80; return b }),
		"length past bucket": mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b, 509); return b }),
		"length huge":        mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b, 1<<31); return b }),
		"larger bucket than needed": func() []byte {
			b := make([]byte, 2048)
			binary.BigEndian.PutUint32(b, 5)
			return b
		}(),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := unpad(data); !errors.Is(err, ErrPadding) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func FuzzUnpad(f *testing.F) {
	good, _ := pad([]byte("hello"), 0)
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := unpad(data)
		if err != nil {
			return
		}
		again, err := pad(out, 0)
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("padding not canonical: %v", err)
		}
	})
}
