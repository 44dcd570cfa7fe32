package keymgmt

import "encoding/binary"

// reader is a bounds-checked cursor over an encoding. Every method returns
// ok=false instead of slicing past the end, so decoders never panic on
// truncated input; callers turn !ok into ErrMalformed.
type reader struct {
	b  []byte
	ok bool
}

func newReader(b []byte) *reader { return &reader{b: b, ok: true} }

// bytes returns the next n bytes (aliasing the input).
func (r *reader) bytes(n int) []byte {
	if !r.ok || n < 0 || n > len(r.b) {
		r.ok = false
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() uint8 {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) i64() int64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

// done reports whether every read succeeded and nothing is left over.
func (r *reader) done() bool { return r.ok && len(r.b) == 0 }

// clone copies b so decoded values never alias caller buffers.
func clone(b []byte) []byte { return append([]byte(nil), b...) }
