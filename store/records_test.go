package store

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// fixedEnvelope is a deterministic valid envelope for fuzz seeds.
func fixedEnvelope(t testing.TB) *envelope.Envelope {
	t.Helper()
	k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	e, err := envelope.Seal(k, make([]byte, envelope.NonceSize), bytes.Repeat([]byte{0xab}, 200), 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRecordRoundTrips(t *testing.T) {
	st := &mailboxState{next: 11, count: 4, bytes: 1234, floor: 6, tombstones: 9}
	got, err := decodeState(encodeState(st))
	if err != nil || *got != *st {
		t.Fatalf("state: %+v, %v", got, err)
	}
	st.policy = &MailboxPolicy{MaxAge: time.Hour, MaxBytes: 5, MaxCount: 6, QuotaBytes: 7, QuotaCount: 8}
	got, err = decodeState(encodeState(st))
	if err != nil || got.policy == nil || *got.policy != *st.policy {
		t.Fatalf("state with policy: %+v, %v", got, err)
	}
	rec := indexRecord{seq: 3, arrival: -5, size: 1000}
	if r, err := decodeIndex(encodeIndex(rec)); err != nil || r != rec {
		t.Fatalf("index: %+v, %v", r, err)
	}
	if e, err := decodeTombstone(encodeTombstone(42)); err != nil || e != 42 {
		t.Fatalf("tombstone: %v, %v", e, err)
	}
	mt := meta{instance: InstanceID{1, 2, 3, 4, 5, 6, 7, 8}, created: time.Unix(0, 99)}
	if m, err := decodeMeta(encodeMeta(mt)); err != nil || m.instance != mt.instance || !m.created.Equal(mt.created) {
		t.Fatalf("meta: %+v, %v", m, err)
	}
	env := fixedEnvelope(t)
	e2, at, err := decodeArrival(encodeArrival(env.ID(), 77, env.Bytes()))
	if err != nil || at != 77 || e2.ID() != env.ID() {
		t.Fatalf("arrival: %v %v", at, err)
	}
	var m envelope.MailboxID
	m[0] = 9
	if seq, err := decodeCursor(encodeCursor(mt.instance, m, 123), mt.instance, m); err != nil || seq != 123 {
		t.Fatalf("cursor: %d, %v", seq, err)
	}
}

func TestRecordRejections(t *testing.T) {
	good := encodeState(&mailboxState{next: 3, count: 2, bytes: 10})
	withPolicy := encodeState(&mailboxState{next: 1, policy: &MailboxPolicy{MaxCount: 1}})
	mod := func(b []byte, f func([]byte)) []byte { c := bytes.Clone(b); f(c); return c }
	env := fixedEnvelope(t)
	arrival := encodeArrival(env.ID(), 1, env.Bytes())

	cases := []struct {
		name   string
		decode func([]byte) error
		in     []byte
	}{
		{"state empty", stateErr, nil},
		{"state short", stateErr, good[:len(good)-1]},
		{"state long", stateErr, append(bytes.Clone(good), 0)},
		{"state version", stateErr, mod(good, func(b []byte) { b[0] = 2 })},
		{"state next 0", stateErr, encodeState(&mailboxState{})},
		{"state floor >= next", stateErr, encodeState(&mailboxState{next: 3, floor: 3})},
		{"state count mismatch", stateErr, encodeState(&mailboxState{next: 3, count: 1, bytes: 5})},
		{"state bytes without count", stateErr, encodeState(&mailboxState{next: 1, bytes: 5})},
		{"state count without bytes", stateErr, encodeState(&mailboxState{next: 2, count: 1})},
		{"state unknown flag", stateErr, mod(good, func(b []byte) { b[stateBaseSize-1] = 2 })},
		{"state flag without policy", stateErr, mod(good, func(b []byte) { b[stateBaseSize-1] = 1 })},
		{"state policy without flag", stateErr, mod(withPolicy, func(b []byte) { b[stateBaseSize-1] = 0 })},
		{"state negative policy", stateErr, mod(withPolicy, func(b []byte) { b[stateBaseSize] = 0x80 })},
		{"index short", indexErr, make([]byte, indexSize-1)},
		{"index seq 0", indexErr, encodeIndex(indexRecord{seq: 0, size: 500})},
		{"index tiny size", indexErr, encodeIndex(indexRecord{seq: 1, size: 3})},
		{"index huge size", indexErr, encodeIndex(indexRecord{seq: 1, size: envelope.AbsoluteMaxSize + 1})},
		{"tombstone short", tombErr, []byte{1, 2, 3}},
		{"meta short", metaErr, []byte{1}},
		{"meta version", metaErr, mod(encodeMeta(meta{}), func(b []byte) { b[0] = 9 })},
		{"schema short", schemaErr, []byte{1}},
		{"arrival short", arrivalErr, arrival[:arrivalHeaderSize+10]},
		{"arrival wrong id", arrivalErr, mod(arrival, func(b []byte) { b[0] ^= 1 })},
		{"arrival bad envelope", arrivalErr, mod(arrival, func(b []byte) { b[arrivalHeaderSize] = 9 })},
		{"arrival truncated envelope", arrivalErr, arrival[:len(arrival)-1]},
	}
	for _, tc := range cases {
		if err := tc.decode(tc.in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
	for name, k := range map[string][]byte{
		"arrival key short":    arrivalKey(envelope.MailboxID{}, 1)[:10],
		"arrival key prefix":   mod(arrivalKey(envelope.MailboxID{}, 1), func(b []byte) { b[0] = 'x' }),
		"index key as arrival": indexKey(envelope.MailboxID{}, envelope.ID{}),
	} {
		if _, err := seqFromArrivalKey(k); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := idFromKey(arrivalKey(envelope.MailboxID{}, 1), prefixIndex); !errors.Is(err, ErrCorrupt) {
		t.Errorf("idFromKey(arrival key): %v", err)
	}
	if _, err := mailboxFromStateKey([]byte{prefixState, 1}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("mailboxFromStateKey(short): %v", err)
	}
}

func stateErr(b []byte) error   { _, err := decodeState(b); return err }
func indexErr(b []byte) error   { _, err := decodeIndex(b); return err }
func tombErr(b []byte) error    { _, err := decodeTombstone(b); return err }
func metaErr(b []byte) error    { _, err := decodeMeta(b); return err }
func schemaErr(b []byte) error  { _, err := decodeSchema(b); return err }
func arrivalErr(b []byte) error { _, _, err := decodeArrival(b); return err }

func FuzzDecodeCursor(f *testing.F) {
	inst := InstanceID{1, 2, 3, 4, 5, 6, 7, 8}
	var m envelope.MailboxID
	m[5] = 5
	for _, seq := range []uint64{0, 1, 1 << 40} {
		f.Add([]byte(encodeCursor(inst, m, seq)))
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, err := decodeCursor(b, inst, m)
		if err != nil {
			if !errors.Is(err, ErrUnknownCursor) {
				t.Fatalf("error %v is not ErrUnknownCursor", err)
			}
			return
		}
		if !bytes.Equal(encodeCursor(inst, m, seq), b) {
			t.Fatal("accepted a cursor that is not the canonical encoding")
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState(&mailboxState{next: 1}))
	f.Add(encodeState(&mailboxState{next: 11, count: 4, bytes: 1234, floor: 6, tombstones: 9}))
	f.Add(encodeState(&mailboxState{next: 3, count: 2, bytes: 5, policy: &MailboxPolicy{MaxAge: time.Hour, QuotaBytes: 9}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeState(st), b) {
			t.Fatal("state does not re-encode to its input")
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(indexRecord{seq: 1, arrival: 5, size: 200}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeIndex(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeIndex(r), b) {
			t.Fatal("index record does not re-encode to its input")
		}
	})
}

func FuzzDecodeArrival(f *testing.F) {
	env := fixedEnvelope(f)
	f.Add(encodeArrival(env.ID(), 1, env.Bytes()))
	f.Add(encodeArrival(env.ID(), -1, env.Bytes()[:100]))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, at, err := decodeArrival(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(encodeArrival(e.ID(), at, e.Bytes()), b) {
			t.Fatal("arrival record does not re-encode to its input")
		}
	})
}

func FuzzDecodeSmallRecords(f *testing.F) {
	f.Add(encodeTombstone(12345))
	f.Add(encodeMeta(meta{instance: InstanceID{9}, created: time.Unix(0, 1)}))
	f.Add(encodeSchema(schemaVersion))
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := decodeTombstone(b); err == nil {
			if !bytes.Equal(encodeTombstone(e), b) {
				t.Fatal("tombstone does not re-encode")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		if m, err := decodeMeta(b); err == nil {
			if !bytes.Equal(encodeMeta(m), b) {
				t.Fatal("meta does not re-encode")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		if v, err := decodeSchema(b); err == nil {
			if !bytes.Equal(encodeSchema(v), b) {
				t.Fatal("schema does not re-encode")
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		// Keys read back from Badger.
		if _, err := seqFromArrivalKey(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		if _, err := idFromKey(b, prefixTombstone); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
		if _, err := mailboxFromStateKey(b); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	})
}
