package directory

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/keymgmt"
)

func ownerKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func nameHash(s string) keymgmt.NameHash {
	n, err := keymgmt.ParseAlias(s)
	if err != nil {
		panic(err)
	}
	return n.Hash()
}

func blob(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func publishRequest(t testing.TB, owner ed25519.PrivateKey, name keymgmt.NameHash, blobs int) *request {
	t.Helper()
	q := &request{op: opPublish, name: name, ts: time.Now().UnixMilli(), expires: time.Now().Add(time.Hour).Unix(),
		mailboxes: []envelope.MailboxID{{1}, {2}}}
	for range blobs {
		q.blobs = append(q.blobs, blob(100))
	}
	q.sign(owner)
	return q
}

func TestRequestRoundTrip(t *testing.T) {
	owner := ownerKey(t)
	p := DefaultParams()
	pub := publishRequest(t, owner, nameHash("bob"), 3)
	rem := &request{op: opRemove, name: nameHash("bob"), ts: 42}
	rem.sign(owner)
	st := &request{op: opStatus, name: nameHash("bob"), ts: 43}
	st.sign(owner)
	for _, q := range []*request{pub, rem, st, {op: opFetch, name: nameHash("bob")}} {
		b := q.marshal()
		if len(b) > maxRequestSize(p) {
			t.Fatalf("%s request of %d bytes over the bound %d", q.op, len(b), maxRequestSize(p))
		}
		got, err := parseRequest(b, p)
		if err != nil {
			t.Fatalf("%s: %v", q.op, err)
		}
		if !bytes.Equal(got.marshal(), b) {
			t.Fatalf("%s does not round-trip", q.op)
		}
		if q.op.signed() {
			if err := got.verify(); err != nil {
				t.Fatalf("%s: %v", q.op, err)
			}
		}
	}
}

func TestParseRequestRejects(t *testing.T) {
	p := DefaultParams()
	owner := ownerKey(t)
	pub := publishRequest(t, owner, nameHash("bob"), 2).marshal()
	mod := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), pub...)) }
	dupMailbox := &request{op: opPublish, name: nameHash("bob"), ts: 1, expires: 2,
		mailboxes: []envelope.MailboxID{{1}, {1}}, blobs: [][]byte{blob(100)}}
	dupMailbox.sign(owner)
	tooMany := &request{op: opPublish, name: nameHash("bob"), ts: 1, expires: 2}
	for range p.MaxBlobs + 1 {
		tooMany.blobs = append(tooMany.blobs, blob(100))
	}
	tooMany.sign(owner)
	big := &request{op: opPublish, name: nameHash("bob"), ts: 1, expires: 2, blobs: [][]byte{blob(p.MaxBlobSize + 1)}}
	big.sign(owner)
	tiny := &request{op: opPublish, name: nameHash("bob"), ts: 1, expires: 2, blobs: [][]byte{blob(minBlobSize - 1)}}
	tiny.sign(owner)
	none := &request{op: opPublish, name: nameHash("bob"), ts: 1, expires: 2}
	none.sign(owner)
	mbs := &request{op: opPublish, name: nameHash("bob"), ts: 1, expires: 2, blobs: [][]byte{blob(100)}}
	for i := range p.MaxMailboxes + 1 {
		mbs.mailboxes = append(mbs.mailboxes, envelope.MailboxID{byte(i)})
	}
	mbs.sign(owner)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"version", mod(func(b []byte) []byte { b[0] = 2; return b }), ErrVersion},
		{"op", mod(func(b []byte) []byte { b[1] = 9; return b }), ErrMalformed},
		{"short head", pub[:20], ErrMalformed},
		{"truncated", pub[:len(pub)-1], ErrMalformed},
		{"trailing", append(append([]byte(nil), pub...), 0), ErrMalformed},
		{"fetch trailing", append((&request{op: opFetch}).marshal(), 0), ErrMalformed},
		{"duplicate mailbox", dupMailbox.marshal(), ErrMalformed},
		{"too many blobs", tooMany.marshal(), ErrTooLarge},
		{"blob too large", big.marshal(), ErrTooLarge},
		{"blob too small", tiny.marshal(), ErrTooLarge},
		{"no blobs", none.marshal(), ErrTooLarge},
		{"too many mailboxes", mbs.marshal(), ErrTooLarge},
	}
	for _, tc := range tests {
		if _, err := parseRequest(tc.b, p); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Decodes, but the signature does not verify.
	for name, b := range map[string][]byte{
		"flipped blob":  mod(func(b []byte) []byte { b[len(b)-70] ^= 1; return b }),
		"flipped owner": mod(func(b []byte) []byte { b[40] ^= 1; return b }),
		"flipped sig":   mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
	} {
		q, err := parseRequest(b, p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := q.verify(); !errors.Is(err, ErrNotOwner) {
			t.Errorf("%s: %v, want ErrNotOwner", name, err)
		}
	}
}

func TestResponseRoundTripAndRejects(t *testing.T) {
	good := []struct {
		o op
		r response
	}{
		{opFetch, response{code: status.OK, body: blob(200)}},
		{opFetch, response{code: status.NotFound, msg: "no"}},
		{opStatus, response{code: status.OK, body: make([]byte, maxStatusBody)}},
		{opPublish, response{code: status.OK}},
		{opRemove, response{code: status.BadSignature, msg: "not yours"}},
	}
	for _, tc := range good {
		got, err := parseResponse(tc.r.marshal(), tc.o)
		if err != nil || got.code != tc.r.code || got.msg != tc.r.msg || !bytes.Equal(got.body, tc.r.body) {
			t.Fatalf("%s %+v: %+v %v", tc.o, tc.r, got, err)
		}
	}
	bad := []struct {
		name string
		o    op
		b    []byte
	}{
		{"empty", opFetch, nil},
		{"short message", opFetch, []byte{0, 0, 5, 'a'}},
		{"unknown code", opPublish, []byte{200, 0, 0}},
		{"body on publish", opPublish, []byte{0, 0, 0, 1}},
		{"body on refusal", opFetch, append([]byte{byte(status.NotFound), 0, 0}, blob(100)...)},
		{"tiny blob", opFetch, []byte{0, 0, 0, 1}},
		{"short status", opStatus, []byte{0, 0, 0, 1, 2}},
	}
	for _, tc := range bad {
		if _, err := parseResponse(tc.b, tc.o); !errors.Is(err, ErrBadResponse) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestRecordRoundTripAndRejects(t *testing.T) {
	r := &record{owner: ownerKey(t).Public().(ed25519.PublicKey), lastTS: 5, expires: 7,
		mailboxes: []envelope.MailboxID{{3}}, blobs: [][]byte{blob(100), blob(60)}}
	b := r.marshal()
	got, err := parseRecord(b)
	if err != nil || !bytes.Equal(got.marshal(), b) {
		t.Fatalf("record round trip: %v", err)
	}
	tomb := &record{owner: r.owner, lastTS: 9, expires: 10}
	if got, err := parseRecord(tomb.marshal()); err != nil || len(got.blobs) != 0 {
		t.Fatalf("tombstone: %v", err)
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{2}, b[1:]...),
		"truncated": b[:len(b)-1],
		"trailing":  append(append([]byte(nil), b...), 1),
	} {
		if _, err := parseRecord(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	for _, c := range codes {
		code, msg := codeOf(c.err)
		if code != c.code {
			t.Fatalf("%v → %v", c.err, code)
		}
		if err := errOf(code, msg); !errors.Is(err, c.err) {
			t.Fatalf("code %v does not come back as %v: %v", code, c.err, err)
		}
	}
	if code, msg := codeOf(errors.New("disk on fire at /secret/path")); code != status.Unavailable || msg != "internal error" {
		t.Fatalf("internal error leaks: %v %q", code, msg)
	}
}

func FuzzParseRequest(f *testing.F) {
	owner := ownerKey(f)
	f.Add(publishRequest(f, owner, nameHash("bob"), 2).marshal())
	f.Add((&request{op: opFetch, name: nameHash("bob")}).marshal())
	rem := &request{op: opRemove, name: nameHash("bob"), ts: 1}
	rem.sign(owner)
	f.Add(rem.marshal())
	p := DefaultParams()
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := parseRequest(b, p)
		if err != nil {
			return
		}
		if !bytes.Equal(q.marshal(), b) {
			t.Fatal("accepted a non-canonical request")
		}
		_ = q.verify()
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add((&response{code: status.OK, body: blob(100)}).marshal(), uint8(opFetch))
	f.Add((&response{code: status.OK, body: make([]byte, 9)}).marshal(), uint8(opStatus))
	f.Add((&response{code: status.NotFound, msg: "x"}).marshal(), uint8(opPublish))
	f.Fuzz(func(t *testing.T, b []byte, o uint8) {
		r, err := parseResponse(b, op(o))
		if err != nil {
			return
		}
		if !bytes.Equal(r.marshal(), b) {
			t.Fatal("accepted a non-canonical response")
		}
	})
}

func FuzzParseRecord(f *testing.F) {
	r := &record{owner: ownerKey(f).Public().(ed25519.PublicKey), lastTS: 5, expires: 7,
		mailboxes: []envelope.MailboxID{{3}}, blobs: [][]byte{blob(100)}}
	f.Add(r.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.marshal(), b) {
			t.Fatal("accepted a non-canonical record")
		}
	})
}
