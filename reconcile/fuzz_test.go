package reconcile

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
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
// SHA-256 bytes, so IDs can share long prefixes, crowd one node of the
// trie and sit at the ends of the space. The rest must be hash output:
// with freely chosen IDs, sums collide trivially ({x+1, x+4} and
// {x+2, x+3}), which is why the protocol is only for hash IDs.
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
			p.MaxMessageSize, p.MaxRounds = MinMessageSize, 1<<12
		case 2:
			p.MaxScanNode = 16
		case 3:
			p.MaxMessageSize, p.MaxRounds, p.MaxScanNode = MinMessageSize, 1<<12, 32
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
		checkSimulate(t, NewMemSet(aIDs...), NewMemSet(bIDs...), aIDs, bIDs, p)
	})
}

// FuzzMessage feeds arbitrary bytes to both sides at every step of a real
// session: as the responder's first message, and as the reply the
// initiator or the responder gets after an honest exchange of k messages.
// Whatever the bytes, a side returns a reply or one of the package's
// errors; it never panics, and never replies over its limits.
//
//	data = step:u8 ‖ message
func FuzzMessage(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	common := randomIDs(r, 2000)
	a := NewMemSet(append(randomIDs(r, 40), common...)...)
	b := NewMemSet(append(randomIDs(r, 40), common...)...)
	p := DefaultParams()
	p.MaxMessageSize = 16 << 10
	// Seeds: the honest messages of a session.
	var honest [][]byte
	ini, _ := NewInitiator(a, p)
	res, _ := NewResponder(b, p)
	msg, _ := ini.Initiate()
	for msg != nil && len(honest) < 8 {
		honest = append(honest, msg)
		reply, _, err := res.Reconcile(msg)
		if err != nil || reply == nil {
			break
		}
		honest = append(honest, reply)
		if msg, _, err = ini.Reconcile(reply); err != nil {
			break
		}
	}
	for i, m := range honest {
		f.Add(append([]byte{byte(i)}, m...))
	}
	f.Add([]byte{0, ProtocolVersion})
	f.Add([]byte{1, ProtocolVersion, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 {
			return
		}
		step := int(data[0]) % (len(honest) + 1)
		ini, err := NewInitiator(a, p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := NewResponder(b, p)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := ini.Initiate()
		if err != nil {
			t.Fatal(err)
		}
		// Run step honest messages, then deliver the fuzzed one to the
		// side whose turn it is.
		var target interface {
			Reconcile([]byte) ([]byte, bool, error)
		} = res
		for i := 0; i < step && msg != nil; i++ {
			if i%2 == 0 {
				msg, _, err = res.Reconcile(msg)
				target = ini
			} else {
				msg, _, err = ini.Reconcile(msg)
				target = res
			}
			if err != nil {
				t.Fatalf("honest step %d: %v", i, err)
			}
		}
		if msg == nil {
			return
		}
		reply, _, err := target.Reconcile(data[1:])
		if err != nil {
			for _, e := range []error{ErrMalformed, ErrVersion, ErrTooLarge, ErrProtocol, ErrTooManyRounds} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("error outside the package's sentinels: %v", err)
		}
		if len(reply) > p.MaxMessageSize {
			t.Fatalf("reply of %d bytes over the limit %d", len(reply), p.MaxMessageSize)
		}
	})
}
