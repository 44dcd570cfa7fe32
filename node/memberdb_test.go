package node

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

func TestDecodeLocalRejects(t *testing.T) {
	tooMany, _ := json.Marshal(groupLocal{Heads: make([]envelope.ID, groupstate.MaxParents+1)})
	for _, b := range [][]byte{[]byte("{"), []byte(`{"next_seq":"x"}`), tooMany} {
		if _, err := decodeLocal(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeLocal(%q) = %v, want ErrCorrupt", b, err)
		}
	}
	l, err := decodeLocal(nil)
	if err != nil || l.NextSeq != 1 || l.Local == nil || l.Hosts == nil || l.Reported == nil {
		t.Fatalf("empty bookkeeping not initialised: %+v %v", l, err)
	}
}

// FuzzMemberRecords feeds arbitrary bytes to every decoder of the member
// database: they must return a value or ErrCorrupt, never panic.
func FuzzMemberRecords(f *testing.F) {
	local, _ := json.Marshal(groupLocal{NextSeq: 3, Heads: []envelope.ID{{1}}, Local: map[string][]byte{"a": {1}}, Membership: make([]byte, 32)})
	prof, _ := json.Marshal(profileRec{Nick: "bob", KEM: 0x20, PublicKey: []byte{1, 2}})
	msg, _ := json.Marshal(Message{ID: "x", Text: "hi", Kind: "text", Verified: true})
	for _, b := range [][]byte{local, prof, msg, nil, []byte("null")} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := decodeLocal(b); err == nil {
			if l.NextSeq == 0 || len(l.Heads) > groupstate.MaxParents || l.Local == nil || len(l.Membership) != 0 && len(l.Membership) != 32 {
				t.Fatalf("decodeLocal accepted an unusable record: %+v", l)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeLocal: %v is not ErrCorrupt", err)
		}
		if _, err := decodeProfileRec(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeProfileRec: %v is not ErrCorrupt", err)
		}
		if _, err := decodeMessage(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeMessage: %v is not ErrCorrupt", err)
		}
	})
}
