package groupstate

import (
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
	"golang.org/x/crypto/chacha20poly1305"
)

// Padding hides a message's length from hosts up to a size bucket: every
// plaintext is padded to the smallest bucket that fits it, so a host sees
// one of len(buckets) ciphertext sizes.
//
//	padded = uint32be(len(payload)) ‖ payload ‖ zero bytes up to the bucket
const padPrefix = 4

// MaxPaddedSize is the largest bucket: what fits a default-size envelope
// (envelope.DefaultMaxSize) after the envelope's overhead and the AEAD tag.
const MaxPaddedSize = envelope.DefaultMaxSize - envelope.Overhead - chacha20poly1305.Overhead

// MaxPayloadSize is the largest payload encoding that can be sent.
const MaxPayloadSize = MaxPaddedSize - padPrefix

// buckets are the padded plaintext sizes, ascending. They are part of the
// protocol: a receiver rejects any other size.
var buckets = [...]int{512, 2 << 10, 8 << 10, 32 << 10, MaxPaddedSize}

// Buckets returns the padded plaintext sizes, ascending.
func Buckets() []int { return append([]int(nil), buckets[:]...) }

// bucketFor returns the smallest bucket that holds n payload bytes.
func bucketFor(n int) (int, error) {
	for _, b := range buckets {
		if n+padPrefix <= b {
			return b, nil
		}
	}
	return 0, fmt.Errorf("%w: the message is %d bytes and at most %d fit in one envelope", ErrTooLong, n, MaxPayloadSize)
}

func isBucket(n int) bool {
	for _, b := range buckets {
		if n == b {
			return true
		}
	}
	return false
}

// pad returns payload padded to its bucket, in a buffer with extra spare
// capacity (for the AEAD tag, so sealing in place does not reallocate).
func pad(payload []byte, extra int) ([]byte, error) {
	size, err := bucketFor(len(payload))
	if err != nil {
		return nil, err
	}
	out := make([]byte, size, size+extra)
	binary.BigEndian.PutUint32(out, uint32(len(payload)))
	copy(out[padPrefix:], payload)
	return out, nil
}

// unpad checks and strips the padding: the size must be a bucket, the
// length prefix must fit, and every padding byte must be zero.
func unpad(padded []byte) ([]byte, error) {
	if !isBucket(len(padded)) {
		return nil, fmt.Errorf("%w: padded size %d is not a bucket size", ErrPadding, len(padded))
	}
	n := binary.BigEndian.Uint32(padded)
	if uint64(n) > uint64(len(padded)-padPrefix) {
		return nil, fmt.Errorf("%w: length prefix %d exceeds the %d-byte bucket", ErrPadding, n, len(padded))
	}
	end := padPrefix + int(n)
	if sz, _ := bucketFor(int(n)); sz != len(padded) {
		return nil, fmt.Errorf("%w: %d bytes padded to %d, not to the smallest bucket %d", ErrPadding, n, len(padded), sz)
	}
	var nz byte
	for _, c := range padded[end:] {
		nz |= c
	}
	if nz != 0 {
		return nil, fmt.Errorf("%w: non-zero padding bytes", ErrPadding)
	}
	return padded[padPrefix:end], nil
}
