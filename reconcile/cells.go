package reconcile

import (
	"encoding/binary"
	"fmt"
)

// A cell is one bucket of an invertible Bloom lookup table over the
// session keys of a node's IDs: how many keys fell in it (signed, so a
// difference of two tables is a table), the XOR of the keys and the XOR
// of their checksums. Each key falls in min(3, c) distinct cells of a
// table of c cells.
type cell struct {
	count int64
	keys  uint64
	check uint32
}

// MaxCells bounds the cells of one node's table.
const MaxCells = 64

// maxCellCount bounds the count of a cell on the wire (no node holds more
// IDs than a store may hold envelopes).
const maxCellCount = 1 << 40

// positions returns the distinct cells of a key in a table of c cells.
func positions(seeds [3]uint32, c int) []int {
	k := min(3, c)
	out := make([]int, 0, 3)
	for j := range k {
		p := int(seeds[j] % uint32(c))
		for containsInt(out, p) {
			p = (p + 1) % c
		}
		out = append(out, p)
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// addKey adds (sign +1) or removes (-1) key in cells.
func (h *hasher) addKey(cells []cell, key uint64, sign int64) {
	chk, seeds := h.check(key)
	for _, p := range positions(seeds, len(cells)) {
		cells[p].count += sign
		cells[p].keys ^= key
		cells[p].check ^= chk
	}
}

// peel decodes a difference table (theirs minus ours): it returns the keys
// only they hold (+1) and only we hold (-1), and false if the table does
// not decode completely (more differences than it can hold, or a peer
// sending junk).
func (h *hasher) peel(cells []cell) (theirs, ours []uint64, ok bool) {
	// Every pure cell peeled removes a key from the table; a table of c
	// cells never yields more than c·3 keys honestly.
	for range len(cells) * 3 {
		progress := false
		for i := range cells {
			c := cells[i]
			if c.count != 1 && c.count != -1 {
				continue
			}
			chk, _ := h.check(c.keys)
			if chk != c.check {
				continue
			}
			if c.count == 1 {
				theirs = append(theirs, c.keys)
			} else {
				ours = append(ours, c.keys)
			}
			h.addKey(cells, c.keys, -c.count)
			progress = true
		}
		if !progress {
			break
		}
	}
	for _, c := range cells {
		if c != (cell{}) {
			return nil, nil, false
		}
	}
	return theirs, ours, true
}

func appendCell(b []byte, c cell) []byte {
	b = binary.AppendVarint(b, c.count)
	b = binary.BigEndian.AppendUint64(b, c.keys)
	return binary.BigEndian.AppendUint32(b, c.check)
}

func (d *decoder) cell() (cell, error) {
	count, err := d.varint()
	if err != nil {
		return cell{}, err
	}
	if count > maxCellCount || count < -maxCellCount {
		return cell{}, fmt.Errorf("%w: cell count %d", ErrTooLarge, count)
	}
	b, err := d.bytes(12)
	if err != nil {
		return cell{}, err
	}
	return cell{count: count, keys: binary.BigEndian.Uint64(b), check: binary.BigEndian.Uint32(b[8:])}, nil
}
