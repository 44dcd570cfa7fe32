package reconcile

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// ProtocolVersion is the first byte of every message.
const ProtocolVersion = 2

// listBytes is the size of a key in an ID list or an ID-list answer.
const listBytes = 6

// resultBytes is the size of a key in a cell-table answer.
const resultBytes = 8

// mode says what an item carries.
type mode byte

const (
	modeSplit1 mode = 1 // the 16 children's fingerprints
	modeSplit2 mode = 2 // the 256 grandchildren's fingerprints
	modeCells  mode = 3 // a cell table of the node
	modeList   mode = 4 // the sender's keys in the node (listBytes each)
	modeResult mode = 5 // answer to cells: keys each side lacks
	modeIDDiff mode = 6 // answer to a list: which listed keys the sender lacks, and its keys not listed
	modeFP     mode = 7 // the sender's fingerprint of the node (deferred)
)

func (m mode) String() string {
	switch m {
	case modeSplit1:
		return "split1"
	case modeSplit2:
		return "split2"
	case modeCells:
		return "cells"
	case modeList:
		return "list"
	case modeResult:
		return "result"
	case modeIDDiff:
		return "iddiff"
	case modeFP:
		return "fingerprint"
	}
	return fmt.Sprintf("mode(%d)", byte(m))
}

// kind is what a side sent on a node and awaits an answer to.
type kind byte

const (
	kindFP    kind = iota // a fingerprint: the answer says whether it differs, and acts
	kindCells             // a cell table: answered by a result or an action
	kindList              // an ID list: answered by an ID difference or a split
)

// allowed reports whether an item of mode m may answer an entry of kind k.
func allowed(k kind, m mode) bool {
	switch k {
	case kindFP:
		return m == modeSplit1 || m == modeSplit2 || m == modeCells || m == modeList || m == modeFP
	case kindCells:
		return m == modeResult || m == modeSplit1 || m == modeSplit2 || m == modeList || m == modeFP
	case kindList:
		return m == modeIDDiff || m == modeSplit1 || m == modeSplit2 || m == modeFP
	}
	return false
}

// splitDepth is the depth of a split mode.
func splitDepth(m mode) int {
	if m == modeSplit2 {
		return 2
	}
	return 1
}

// item is one decoded or to-be-encoded answer on a node.
type item struct {
	mode  mode
	fps   []Fingerprint // split: 16^depth; fp: 1
	cells []cell
	keys  []uint64 // list: listBytes keys, non-decreasing; iddiff: the sender's keys not listed
	lack  []uint64 // result: keys of the receiver the sender lacks
	extra []uint64 // result: keys of the sender the receiver lacks
	bits  []bool   // iddiff: bits[i]: the sender lacks the receiver's i-th listed key
}

// cost is the encoded size of it.
func (it *item) cost() int {
	n := 1
	switch it.mode {
	case modeSplit1, modeSplit2, modeFP:
		n += FingerprintSize * len(it.fps)
	case modeCells:
		n++
		for _, c := range it.cells {
			n += varintLen(c.count) + 12
		}
	case modeList:
		n += uvarintLen(uint64(len(it.keys))) + listBytes*len(it.keys)
	case modeResult:
		n += uvarintLen(uint64(len(it.lack))) + resultBytes*len(it.lack) + uvarintLen(uint64(len(it.extra))) + resultBytes*len(it.extra)
	case modeIDDiff:
		n += (len(it.bits)+7)/8 + uvarintLen(uint64(len(it.keys))) + listBytes*len(it.keys)
	}
	return n
}

// entries is the number of entries it opens (nodes the receiver answers).
func (it *item) entries() int {
	switch it.mode {
	case modeSplit1, modeSplit2, modeFP:
		return len(it.fps)
	case modeCells, modeList:
		return 1
	}
	return 0
}

func appendItem(b []byte, it *item) []byte {
	b = append(b, byte(it.mode))
	switch it.mode {
	case modeSplit1, modeSplit2, modeFP:
		for _, fp := range it.fps {
			b = append(b, fp[:]...)
		}
	case modeCells:
		b = append(b, byte(len(it.cells)))
		for _, c := range it.cells {
			b = appendCell(b, c)
		}
	case modeList:
		b = appendKeys(b, it.keys, listBytes)
	case modeResult:
		b = appendKeys(b, it.lack, resultBytes)
		b = appendKeys(b, it.extra, resultBytes)
	case modeIDDiff:
		b = append(b, packBits(it.bits)...)
		b = appendKeys(b, it.keys, listBytes)
	}
	return b
}

func appendKeys(b []byte, keys []uint64, width int) []byte {
	b = binary.AppendUvarint(b, uint64(len(keys)))
	var buf [8]byte
	for _, k := range keys {
		binary.BigEndian.PutUint64(buf[:], k<<(64-8*width))
		b = append(b, buf[:width]...)
	}
	return b
}

func packBits(bits []bool) []byte {
	out := make([]byte, (len(bits)+7)/8)
	for i, set := range bits {
		if set {
			out[i/8] |= 1 << (i % 8)
		}
	}
	return out
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
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

func (d *decoder) varint() (int64, error) {
	x, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint at byte %d", ErrMalformed, d.off)
	}
	if n != varintLen(x) {
		return 0, fmt.Errorf("%w: non-minimal varint at byte %d", ErrMalformed, d.off)
	}
	d.off += n
	return x, nil
}

func (d *decoder) fps(n int) ([]Fingerprint, error) {
	b, err := d.bytes(n * FingerprintSize)
	if err != nil {
		return nil, err
	}
	out := make([]Fingerprint, n)
	for i := range out {
		copy(out[i][:], b[i*FingerprintSize:])
	}
	return out, nil
}

// keys reads a counted list of keys of width bytes; sorted requires them
// non-decreasing.
func (d *decoder) keys(width int, sorted bool, what string) ([]uint64, error) {
	n, err := d.uvarint(d.remaining()/width, what+" count")
	if err != nil {
		return nil, err
	}
	b, err := d.bytes(n * width)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, n)
	var buf [8]byte
	for i := range out {
		copy(buf[:width], b[i*width:])
		out[i] = binary.BigEndian.Uint64(buf[:]) >> (64 - 8*width)
		if sorted && i > 0 && out[i] < out[i-1] {
			return nil, fmt.Errorf("%w: %s keys not ascending", ErrProtocol, what)
		}
	}
	return out, nil
}

// bitmap reads n bits, whose padding must be zero.
func (d *decoder) bitmap(n int) ([]bool, error) {
	b, err := d.bytes((n + 7) / 8)
	if err != nil {
		return nil, err
	}
	if n%8 != 0 && b[len(b)-1]>>(n%8) != 0 {
		return nil, fmt.Errorf("%w: bitmap padding bits set", ErrMalformed)
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = b[i/8]&(1<<(i%8)) != 0
	}
	return out, nil
}

// item reads one item answering an entry of kind k on node n; listed is
// the number of keys of our list when k is kindList.
func (d *decoder) item(k kind, n Node, listed int) (*item, error) {
	at := d.off
	m, err := d.byte()
	if err != nil {
		return nil, err
	}
	it := &item{mode: mode(m)}
	if !allowed(k, it.mode) {
		return nil, fmt.Errorf("%w: %v at byte %d cannot answer this node (%v)", ErrProtocol, it.mode, at, n)
	}
	switch it.mode {
	case modeSplit1, modeSplit2:
		depth := splitDepth(it.mode)
		if n.Level+depth > MaxLevel {
			return nil, fmt.Errorf("%w: split of %v below the last level", ErrProtocol, n)
		}
		it.fps, err = d.fps(1 << (FanoutBits * depth))
	case modeFP:
		it.fps, err = d.fps(1)
	case modeCells:
		var c byte
		if c, err = d.byte(); err != nil {
			return nil, err
		}
		if c < 1 || c > MaxCells {
			return nil, fmt.Errorf("%w: %d cells (1 to %d)", ErrTooLarge, c, MaxCells)
		}
		it.cells = make([]cell, c)
		for i := range it.cells {
			if it.cells[i], err = d.cell(); err != nil {
				return nil, err
			}
		}
	case modeList:
		it.keys, err = d.keys(listBytes, true, "list")
	case modeResult:
		if it.lack, err = d.keys(resultBytes, false, "result"); err == nil {
			it.extra, err = d.keys(resultBytes, false, "result")
		}
	case modeIDDiff:
		if it.bits, err = d.bitmap(listed); err == nil {
			it.keys, err = d.keys(listBytes, true, "id-diff")
		}
	}
	if err != nil {
		return nil, err
	}
	return it, nil
}

// sortKeys sorts keys ascending in place and returns them.
func sortKeys(keys []uint64) []uint64 {
	slices.Sort(keys)
	return keys
}

// sortKeyed orders by key, then ID.
func sortKeyed(s []keyed) {
	slices.SortFunc(s, func(a, b keyed) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return compareIDs(a.id, b.id)
	})
}
