package hostsync

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
)

func testID(b byte) envelope.ID {
	var id envelope.ID
	for i := range id {
		id[i] = b + byte(i)
	}
	return id
}

func TestFrameRoundTrips(t *testing.T) {
	h := defaultHello(envelope.MailboxID(testID(7)))
	hb := h.marshal()
	if len(hb) != helloSize {
		t.Fatalf("hello of %d bytes, want %d", len(hb), helloSize)
	}
	if got, err := parseHello(hb); err != nil || *got != *h {
		t.Fatalf("hello round trip: %+v, %v", got, err)
	}
	for _, sf := range []statusFrame{{status.OK, ""}, {status.NotServed, "no"}, {status.RateLimited, strings.Repeat("x", 600)}} {
		got, err := parseStatus(sf.marshal())
		if err != nil || got.code != sf.code || got.msg != status.Truncate(sf.msg) {
			t.Fatalf("status round trip of %v: %+v, %v", sf.code, got, err)
		}
	}
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	e := tu.Envelope(t, k, 100)
	if got, err := openEnvelope(marshalEnvelope(e), envelope.DefaultMaxSize, &m); err != nil || got.ID() != e.ID() {
		t.Fatalf("envelope round trip: %v", err)
	}
}

func TestFrameRejections(t *testing.T) {
	hb := defaultHello(envelope.MailboxID{}).marshal()
	mut := func(b []byte, f func([]byte) []byte) []byte { return f(slices.Clone(b)) }
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	other := tu.Mailbox(tu.WriteKey(t))
	e := marshalEnvelope(tu.Envelope(t, k, 100))

	tests := []struct {
		name  string
		parse func() error
		want  error
	}{
		{"hello short", func() error { _, err := parseHello(hb[:helloSize-1]); return err }, ErrProtocol},
		{"hello long", func() error { _, err := parseHello(append(slices.Clone(hb), 0)); return err }, ErrProtocol},
		{"hello type", func() error {
			_, err := parseHello(mut(hb, func(b []byte) []byte { b[0] = byte(frameStatus); return b }))
			return err
		}, ErrProtocol},
		{"hello version", func() error {
			_, err := parseHello(mut(hb, func(b []byte) []byte { b[1] = 1; return b }))
			return err
		}, envelope.ErrVersion},
		{"hello absurd limit", func() error {
			_, err := parseHello(mut(hb, func(b []byte) []byte { b[34] = 0xff; return b }))
			return err
		}, ErrProtocol},
		{"status short", func() error { _, err := parseStatus([]byte{byte(frameStatus), 0, 0}); return err }, ErrProtocol},
		{"status length", func() error { _, err := parseStatus([]byte{byte(frameStatus), 0, 0, 2, 'x'}); return err }, ErrProtocol},
		{"status too long", func() error {
			b := append([]byte{byte(frameStatus), 0, 0x02, 0x01}, make([]byte, 513)...)
			_, err := parseStatus(b)
			return err
		}, ErrProtocol},
		{"status code", func() error { _, err := parseStatus([]byte{byte(frameStatus), 200, 0, 0}); return err }, ErrProtocol},
		{"envelope type", func() error {
			_, err := openEnvelope(mut(e, func(b []byte) []byte { b[0] = byte(frameDone); return b }), envelope.DefaultMaxSize, &m)
			return err
		}, ErrProtocol},
		{"envelope bad signature", func() error {
			_, err := openEnvelope(mut(e, func(b []byte) []byte { b[len(b)-70] ^= 1; return b }), envelope.DefaultMaxSize, &m)
			return err
		}, envelope.ErrBadSignature},
		{"envelope other mailbox", func() error { _, err := openEnvelope(e, envelope.DefaultMaxSize, &other); return err }, envelope.ErrWrongMailbox},
		{"envelope truncated", func() error { _, err := openEnvelope(e[:50], envelope.DefaultMaxSize, &m); return err }, envelope.ErrMalformed},
		{"envelope too large", func() error { _, err := openEnvelope(e, 150, &m); return err }, envelope.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !isViolation(err) {
				t.Fatalf("%v is not counted as a violation", err)
			}
		})
	}
}

func FuzzParseHello(f *testing.F) {
	f.Add(defaultHello(envelope.MailboxID{}).marshal())
	f.Add([]byte{byte(frameHello), 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b)
		if err != nil {
			return
		}
		if !bytes.Equal(h.marshal(), b) {
			t.Fatalf("hello does not re-encode to its input")
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add((&statusFrame{code: status.NotServed, msg: "no"}).marshal())
	f.Add((&statusFrame{}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseStatus(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.marshal(), b) {
			t.Fatalf("status does not re-encode to its input")
		}
	})
}

func FuzzOpenEnvelope(f *testing.F) {
	k := tu.WriteKey(f)
	m := tu.Mailbox(k)
	f.Add(marshalEnvelope(tu.Envelope(f, k, 10)))
	f.Add([]byte{byte(frameEnvelope)})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := openEnvelope(b, 4096, &m)
		if err != nil {
			return
		}
		if e.Mailbox() != m || !bytes.Equal(marshalEnvelope(e), b) || e.Verify() != nil {
			t.Fatalf("opened an envelope that is not what was sent")
		}
	})
}
