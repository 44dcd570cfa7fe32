package reconcile

import (
	"encoding/binary"
	"fmt"

	"github.com/meshnode/meshnode/envelope"
)

// ProtocolVersion is the first byte of every message.
const ProtocolVersion = 1

// mode says what a range of a message carries.
type mode byte

const (
	// modeSkip: the sender considers the range settled; nothing to do.
	modeSkip mode = 0
	// modeFingerprint: the sender's fingerprint of the range; compare.
	modeFingerprint mode = 1
	// modeIDList: all of the sender's IDs in the range; answer with an IDDiff.
	modeIDList mode = 2
	// modeIDDiff: the answer to an ID list: which of the listed IDs the
	// sender lacks (bitmap) and the IDs the sender has that were not listed.
	modeIDDiff mode = 3
)

func (m mode) String() string {
	switch m {
	case modeSkip:
		return "skip"
	case modeFingerprint:
		return "fingerprint"
	case modeIDList:
		return "idlist"
	case modeIDDiff:
		return "iddiff"
	}
	return fmt.Sprintf("mode(%d)", byte(m))
}

// wireRange is one decoded range. Its lower bound is the upper bound of the
// range before it (Lowest for the first).
type wireRange struct {
	hi   Bound
	mode mode
	fp   Fingerprint   // modeFingerprint
	ids  []envelope.ID // modeIDList: all sender IDs; modeIDDiff: IDs the receiver lacks
	bits []byte        // modeIDDiff: bit i set = sender lacks the receiver's i-th listed ID
	nbit int           // modeIDDiff: number of bits (the receiver's listed IDs in range)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// encodedLen is the size of r on the wire.
func (r *wireRange) encodedLen() int {
	n := r.hi.encodedLen() + 1
	switch r.mode {
	case modeFingerprint:
		n += FingerprintSize
	case modeIDList:
		n += uvarintLen(uint64(len(r.ids))) + IDSize*len(r.ids)
	case modeIDDiff:
		n += uvarintLen(uint64(r.nbit)) + len(r.bits) + uvarintLen(uint64(len(r.ids))) + IDSize*len(r.ids)
	}
	return n
}

func appendRange(dst []byte, r *wireRange) []byte {
	dst = appendBound(dst, r.hi)
	dst = append(dst, byte(r.mode))
	switch r.mode {
	case modeFingerprint:
		dst = append(dst, r.fp[:]...)
	case modeIDList:
		dst = binary.AppendUvarint(dst, uint64(len(r.ids)))
		for i := range r.ids {
			dst = append(dst, r.ids[i][:]...)
		}
	case modeIDDiff:
		dst = binary.AppendUvarint(dst, uint64(r.nbit))
		dst = append(dst, r.bits...)
		dst = binary.AppendUvarint(dst, uint64(len(r.ids)))
		for i := range r.ids {
			dst = append(dst, r.ids[i][:]...)
		}
	}
	return dst
}

func encodeMessage(rs []wireRange) []byte {
	n := 1
	for i := range rs {
		n += rs[i].encodedLen()
	}
	b := make([]byte, 0, n)
	b = append(b, ProtocolVersion)
	for i := range rs {
		b = appendRange(b, &rs[i])
	}
	return b
}

// decoder reads a message, checking every length before it slices.
type decoder struct {
	b   []byte
	off int
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, fmt.Errorf("%w: truncated at byte %d", ErrMalformed, d.off)
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) bytes(n int) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, fmt.Errorf("%w: %d bytes wanted at byte %d, %d left", ErrMalformed, n, d.off, d.remaining())
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s, nil
}

// uvarint reads a minimally encoded varint of at most limit.
func (d *decoder) uvarint(limit int, what string) (int, error) {
	x, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad %s varint at byte %d", ErrMalformed, what, d.off)
	}
	if n != uvarintLen(x) {
		return 0, fmt.Errorf("%w: non-minimal %s varint at byte %d", ErrMalformed, what, d.off)
	}
	if x > uint64(limit) {
		return 0, fmt.Errorf("%w: %s %d, limit %d", ErrTooLarge, what, x, limit)
	}
	d.off += n
	return int(x), nil
}

func (d *decoder) bound() (Bound, error) {
	at := d.off
	l, err := d.byte()
	if err != nil {
		return Bound{}, err
	}
	if l == boundInfinity {
		return Infinity(), nil
	}
	if int(l) > IDSize {
		return Bound{}, fmt.Errorf("%w: bound length %d at byte %d", ErrMalformed, l, at)
	}
	p, err := d.bytes(int(l))
	if err != nil {
		return Bound{}, err
	}
	if l > 0 && p[l-1] == 0 {
		return Bound{}, fmt.Errorf("%w: bound at byte %d ends in a zero byte", ErrMalformed, at)
	}
	var b Bound
	copy(b.v[:], p)
	return b, nil
}

// ids reads n IDs that must ascend strictly within [lo, hi).
func (d *decoder) ids(n int, lo, hi Bound) ([]envelope.ID, error) {
	raw, err := d.bytes(n * IDSize)
	if err != nil {
		return nil, err
	}
	ids := make([]envelope.ID, n)
	for i := range ids {
		copy(ids[i][:], raw[i*IDSize:])
		if !InRange(lo, hi, ids[i]) {
			return nil, fmt.Errorf("%w: ID %s outside its range [%v, %v)", ErrProtocol, ids[i].Short(), lo, hi)
		}
		if i > 0 && compareIDs(ids[i-1], ids[i]) >= 0 {
			return nil, fmt.Errorf("%w: IDs not strictly ascending", ErrProtocol)
		}
	}
	return ids, nil
}

// decodeMessage parses and checks a message against p's limits. It checks
// everything that needs no session state; the session checks the rest.
func decodeMessage(b []byte, p Params) ([]wireRange, error) {
	if len(b) > p.MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), p.MaxMessageSize)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	if b[0] != ProtocolVersion {
		return nil, fmt.Errorf("%w: version %d, this node speaks %d", ErrVersion, b[0], ProtocolVersion)
	}
	d := decoder{b: b, off: 1}
	var rs []wireRange
	lo := Lowest()
	totalIDs := 0
	for d.remaining() > 0 {
		if len(rs) == p.MaxRanges {
			return nil, fmt.Errorf("%w: more than %d ranges", ErrTooLarge, p.MaxRanges)
		}
		if lo.inf {
			return nil, fmt.Errorf("%w: range after the infinity bound", ErrProtocol)
		}
		var r wireRange
		var err error
		if r.hi, err = d.bound(); err != nil {
			return nil, err
		}
		if r.hi.Compare(lo) <= 0 {
			return nil, fmt.Errorf("%w: range %d bound %v not above %v", ErrProtocol, len(rs), r.hi, lo)
		}
		m, err := d.byte()
		if err != nil {
			return nil, err
		}
		r.mode = mode(m)
		switch r.mode {
		case modeSkip:
		case modeFingerprint:
			fp, err := d.bytes(FingerprintSize)
			if err != nil {
				return nil, err
			}
			copy(r.fp[:], fp)
		case modeIDList, modeIDDiff:
			if r.mode == modeIDDiff {
				if r.nbit, err = d.uvarint(p.MaxIDs, "bitmap length"); err != nil {
					return nil, err
				}
				if r.bits, err = d.bytes((r.nbit + 7) / 8); err != nil {
					return nil, err
				}
				if r.nbit%8 != 0 && r.bits[len(r.bits)-1]>>(r.nbit%8) != 0 {
					return nil, fmt.Errorf("%w: bitmap padding bits set", ErrMalformed)
				}
			}
			n, err := d.uvarint(p.MaxIDs-totalIDs, "ID count")
			if err != nil {
				return nil, err
			}
			totalIDs += n
			if r.ids, err = d.ids(n, lo, r.hi); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unknown range mode %d", ErrMalformed, m)
		}
		rs = append(rs, r)
		lo = r.hi
	}
	return rs, nil
}
