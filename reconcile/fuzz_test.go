package reconcile

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/meshnode/meshnode/envelope"
)

// FuzzReconcile fuzzes set contents. The input picks parameters, a number
// of common random IDs, and then explicit IDs that go to a, to b, or to
// both; both sides must learn exactly the symmetric difference.
//
//	data = params:u8 ‖ common:u16be ‖ seed:u64be ‖ (where:u8 ‖ prefix[k])*
//
// An explicit ID is the given prefix (k = where>>4 bytes, up to 15) then
// SHA-256 bytes, so IDs can share long prefixes and sit at the ends of the
// space. The rest must be hash output: with freely chosen IDs, sum
// fingerprints collide trivially ({x+1, x+4} and {x+2, x+3}), which is why
// the protocol is only for hash IDs (see the package documentation).
func FuzzReconcile(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0x03, 0xe8, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x10, 0xab, 0x21, 0xac, 0x12, 0xf2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{2, 0x00, 0x20, 9, 9, 9, 9, 9, 9, 9, 9, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0xf1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17})
	f.Add([]byte{3, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 1, 0x31, 0xff, 0xff, 0xff, 0x30, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 11 {
			return
		}
		p := DefaultParams()
		switch data[0] % 4 {
		case 1:
			p.Branching, p.IDListThreshold = 2, 2
		case 2:
			p.Branching, p.IDListThreshold = 4, 3
			p.MaxMessageSize, p.MaxIDs, p.MaxRanges = 8<<10, 40, 300
		case 3:
			p.MaxMessageSize, p.MaxIDs, p.MaxRanges = 8<<10, 64, 512
		}
		fill := data[0]
		common := int(binary.BigEndian.Uint16(data[1:])) % 4000
		r := rand.New(rand.NewPCG(binary.BigEndian.Uint64(data[3:]), 1))
		aIDs := randomIDs(r, common)
		bIDs := append([]envelope.ID(nil), aIDs...)
		var n uint64
		for rest := data[11:]; len(rest) > 0; {
			where, k := rest[0], int(rest[0]>>4)
			rest = rest[1:]
			k = min(k, len(rest))
			n++
			id := envelope.ID(sha256.Sum256(binary.BigEndian.AppendUint64([]byte{fill}, n)))
			copy(id[:], rest[:k])
			rest = rest[k:]
			switch where % 3 {
			case 0:
				aIDs = append(aIDs, id)
			case 1:
				bIDs = append(bIDs, id)
			default:
				aIDs, bIDs = append(aIDs, id), append(bIDs, id)
			}
		}
		var a, b Set = NewMemSet(aIDs...), NewMemSet(bIDs...)
		if data[0]&4 != 0 {
			a, b = scanSet{a.(*MemSet)}, scanSet{b.(*MemSet)}
		}
		checkSimulate(t, a, b, aIDs, bIDs, p)
	})
}
