package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
)

// validManagedRecords returns one valid record of each managed-group kind:
// a pending key package, a split and a deferred payload.
func validManagedRecords(t testing.TB) (kp, split, deferred []byte) {
	id, err := keymgmt.NewIdentity(keymgmt.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	k, err := id.NewKeyPackage("dave", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, _ = json.Marshal(&pendingKeyPackage{Text: k.String(), Created: time.Now().UTC()})
	split, _ = json.Marshal(&Split{Group: "g", Epoch: 2, Reason: "fork", Detected: time.Now().UTC()})
	p := &groupstate.Payload{Epoch: 2, StateHead: [32]byte{1}, Seq: 1, Sent: 1, Kind: groupstate.KindText, Body: []byte("hi")}
	if err := groupstate.SignPayloadAs(p, id); err != nil {
		t.Fatal(err)
	}
	pb, err := groupstate.MarshalPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	return kp, split, append(u64(2), pb...)
}

// validRejection is a rejection log record with an author.
func validRejection() []byte {
	r := groupRejection{At: time.UnixMilli(1_800_000_000_000).UTC(), Kind: rejRefused, Reason: ReasonAfterRemoval,
		Detail: "sent after its removal", Author: [32]byte{7}, HasAuthor: true, Envelope: [32]byte{8}, Seq: 9, Epoch: 1}
	return r.marshal()
}

func TestManagedRecordsRejects(t *testing.T) {
	if r, err := decodeRejection(validRejection()); err != nil || r.Seq != 9 || !r.HasAuthor || r.Reason != ReasonAfterRemoval {
		t.Fatalf("valid rejection record: %+v %v", r, err)
	}
	kp, split, deferred := validManagedRecords(t)
	if _, err := decodePendingKP(kp); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeSplit(split); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeDeferred(deferred); err != nil {
		t.Fatal(err)
	}
	otherEpoch := append(u64(3), deferred[8:]...)
	tampered := append([]byte(nil), deferred...)
	tampered[len(tampered)-70] ^= 1
	badHosts, _ := json.Marshal(map[string]any{"key_package": json.RawMessage(kp)})
	for name, tc := range map[string]struct {
		b   []byte
		dec func([]byte) error
	}{
		"kp: not JSON":          {[]byte("{"), func(b []byte) error { _, err := decodePendingKP(b); return err }},
		"kp: not a package":     {[]byte(`{"key_package":"mnkp1.AAAA"}`), func(b []byte) error { _, err := decodePendingKP(b); return err }},
		"kp: wrong type":        {badHosts, func(b []byte) error { _, err := decodePendingKP(b); return err }},
		"split: not JSON":       {[]byte("[1"), func(b []byte) error { _, err := decodeSplit(b); return err }},
		"deferred: short":       {deferred[:5], func(b []byte) error { _, err := decodeDeferred(b); return err }},
		"deferred: truncated":   {deferred[:len(deferred)-1], func(b []byte) error { _, err := decodeDeferred(b); return err }},
		"deferred: signature":   {tampered, func(b []byte) error { _, err := decodeDeferred(b); return err }},
		"deferred: other epoch": {otherEpoch, func(b []byte) error { _, err := decodeDeferred(b); return err }},
		"seq: short":            {make([]byte, seqRecSize-1), func(b []byte) error { _, err := decodeSeqRec(b); return err }},
		"seq: long":             {make([]byte, seqRecSize+1), func(b []byte) error { _, err := decodeSeqRec(b); return err }},
		"rejection: empty":      {nil, func(b []byte) error { _, err := decodeRejection(b); return err }},
		"rejection: version":    {append([]byte{9}, validRejection()[1:]...), func(b []byte) error { _, err := decodeRejection(b); return err }},
		"rejection: truncated":  {validRejection()[:40], func(b []byte) error { _, err := decodeRejection(b); return err }},
		"rejection: trailing":   {append(validRejection(), 0), func(b []byte) error { _, err := decodeRejection(b); return err }},
	} {
		if err := tc.dec(tc.b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzManagedRecords feeds arbitrary bytes to the managed-group record
// decoders: a value or ErrCorrupt, never a panic.
func FuzzManagedRecords(f *testing.F) {
	kp, split, deferred := validManagedRecords(f)
	seq := seqRec{id: [32]byte{1}, digest: [32]byte{2}, order: 3, epoch: 4}.marshal()
	for _, b := range [][]byte{kp, split, deferred, seq, validRejection(), nil, []byte("null")} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodeSeqRec(b); err == nil {
			if !bytes.Equal(c.marshal(), b) {
				t.Fatal("decodeSeqRec does not round-trip")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeSeqRec: %v is not ErrCorrupt", err)
		}
		if r, err := decodeRejection(b); err == nil {
			if !bytes.Equal(r.marshal(), b) {
				t.Fatal("decodeRejection does not round-trip")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeRejection: %v is not ErrCorrupt", err)
		}
		if p, err := decodePendingKP(b); err == nil {
			if p.kp == nil || p.cursors == nil {
				t.Fatalf("decodePendingKP accepted an unusable record: %+v", p)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodePendingKP: %v is not ErrCorrupt", err)
		}
		if _, err := decodeSplit(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeSplit: %v is not ErrCorrupt", err)
		}
		if p, err := decodeDeferred(b); err == nil {
			if p.VerifyAuthor() != nil {
				t.Fatal("decodeDeferred accepted an unsigned payload")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decodeDeferred: %v is not ErrCorrupt", err)
		}
	})
}

// A group whose rotation period has passed is rotated by its manager's
// node without anyone asking.
func TestPeriodicRotation(t *testing.T) {
	alice := newPerson(t, "alice")
	alice.startManaged(nil)
	policy := groupstate.Policy{History: groupstate.HistoryShared, RotateEvery: time.Minute}
	// Created two minutes ago: the period has passed.
	g, c, err := groupstate.NewManagedGroup("timed", nil, alice.id, "alice", false, policy, time.Now().Add(-2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.n.addGroup(context.Background(), g, c, ""); err != nil {
		t.Fatal(err)
	}
	alice.n.member.kickManager()
	waitEpoch(t, alice, g.ID.String(), 1)
	cc := chainCopy(t, alice, g.ID.String())
	evs := cc.Events()
	if last := evs[len(evs)-1]; last.Kind != groupstate.EventRotate || time.Since(last.TimeValue()) > time.Minute {
		t.Fatalf("last event %s at %v", last.Kind, last.TimeValue())
	}
	if due, why := groupstate.NeedsRotation(cc.State(), cc.State().RotatedAt, 0, time.Now()); due {
		t.Fatalf("still due after the rotation: %s", why)
	}
}
