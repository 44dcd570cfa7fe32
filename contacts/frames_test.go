package contacts

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/groupstate"
)

func testWelcomeEnvelopes(t testing.TB, sizes ...int) []*envelope.Envelope {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var out []*envelope.Envelope
	for _, n := range sizes {
		nonce := make([]byte, envelope.NonceSize)
		rand.Read(nonce)
		ct := make([]byte, n)
		rand.Read(ct)
		env, err := envelope.Seal(priv, nonce, ct, envelope.AbsoluteMaxSize)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func TestWelcomeFrames(t *testing.T) {
	envs := testWelcomeEnvelopes(t, 500, 65000, 65000, 30000)
	texts, err := WelcomeTexts(envs)
	if err != nil {
		t.Fatal(err)
	}
	if len(texts) != 4 {
		t.Fatalf("%d frames", len(texts))
	}
	for _, tx := range texts {
		if len(tx) > groupstate.MaxBodyLen(64, 8) {
			t.Fatalf("frame text of %d bytes does not fit a message", len(tx))
		}
	}
	// Any order, with repeats and noise, reassembles; done welcomes are
	// skipped.
	mixed := append([]string{texts[3], "hello", texts[1], texts[0]}, texts[2], texts[1])
	got := ReassembleWelcomes(mixed[:4], nil)
	if len(got) != 0 {
		t.Fatal("an incomplete welcome reassembled")
	}
	got = ReassembleWelcomes([]string{texts[3], "hello", texts[1], texts[0], texts[2]}, nil)
	if len(got) != 1 {
		t.Fatalf("%d welcomes reassembled", len(got))
	}
	for tag, g := range got {
		if len(g) != len(envs) {
			t.Fatalf("%d envelopes", len(g))
		}
		for i := range g {
			if g[i].ID() != envs[i].ID() {
				t.Fatalf("envelope %d changed", i)
			}
		}
		if again := ReassembleWelcomes(texts, map[[16]byte]bool{tag: true}); len(again) != 0 {
			t.Fatal("a done welcome reassembled again")
		}
	}
	if len(ReassembleWelcomes(mixed, nil)) != 0 {
		t.Fatal("a welcome with a repeated frame reassembled")
	}

	// Too large for a connection group.
	big := make([]*envelope.Envelope, 0, 100)
	for range 100 {
		big = append(big, testWelcomeEnvelopes(t, 64<<10)...)
	}
	if _, err := WelcomeTexts(big); !errors.Is(err, ErrWelcomeTooLarge) {
		t.Fatalf("oversized welcome: %v", err)
	}
	if _, err := WelcomeTexts(nil); !errors.Is(err, ErrWelcomeTooLarge) {
		t.Fatalf("empty welcome: %v", err)
	}
}

func TestWelcomeRejects(t *testing.T) {
	one, err := WelcomeTexts(testWelcomeEnvelopes(t, 500))
	if err != nil {
		t.Fatal(err)
	}
	two, _ := WelcomeTexts(testWelcomeEnvelopes(t, 60000))
	frame := func(s string) []byte {
		b, err := frameB64.DecodeString(strings.TrimPrefix(s, WelcomePrefix))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	enc := func(b []byte) string { return WelcomePrefix + frameB64.EncodeToString(b) }
	mod := func(s string, f func([]byte) []byte) string { return enc(f(frame(s))) }
	for name, text := range map[string]string{
		"no prefix":       strings.TrimPrefix(one[0], WelcomePrefix),
		"invite":          groupstate.InvitePrefix + "x",
		"bad base64":      WelcomePrefix + "!!!!",
		"padded base64":   WelcomePrefix + "AAAA==",
		"header only":     mod(one[0], func(b []byte) []byte { return b[:frameHeader] }),
		"version":         mod(one[0], func(b []byte) []byte { b[0] = 2; return b }),
		"count 0":         mod(one[0], func(b []byte) []byte { binary.BigEndian.PutUint16(b[19:], 0); return b }),
		"index >= count":  mod(one[0], func(b []byte) []byte { binary.BigEndian.PutUint16(b[17:], 1); return b }),
		"too many parts":  mod(one[0], func(b []byte) []byte { binary.BigEndian.PutUint16(b[19:], MaxWelcomeParts+1); return b }),
		"short middle":    mod(two[0], func(b []byte) []byte { return b[:len(b)-1] }),
		"oversized chunk": mod(two[0], func(b []byte) []byte { return append(b, 0) }),
	} {
		if _, err := parseFrame(text); !errors.Is(err, ErrBadWelcome) {
			t.Errorf("frame %s: %v", name, err)
		}
	}

	envs := testWelcomeEnvelopes(t, 300, 400)
	good := binary.BigEndian.AppendUint16(nil, 2)
	for _, e := range envs {
		good = binary.BigEndian.AppendUint32(good, uint32(len(e.Bytes())))
		good = append(good, e.Bytes()...)
	}
	if got, err := parseWelcome(good); err != nil || len(got) != 2 {
		t.Fatalf("valid stream: %v", err)
	}
	smod := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, stream := range map[string][]byte{
		"empty":            nil,
		"no envelopes":     {0, 0},
		"too many":         smod(func(b []byte) []byte { binary.BigEndian.PutUint16(b, groupstate.MaxWelcomeParts+1); return b }),
		"count too high":   smod(func(b []byte) []byte { binary.BigEndian.PutUint16(b, 3); return b }),
		"count too low":    smod(func(b []byte) []byte { binary.BigEndian.PutUint16(b, 1); return b }),
		"truncated":        good[:len(good)-1],
		"length past end":  smod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:], 1<<20); return b }),
		"bad signature":    smod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"length cut short": good[:2+3],
		"absurd length":    smod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[2:], 0xffffffff); return b }),
		"garbage envelope": append(binary.BigEndian.AppendUint32([]byte{0, 1}, 5), "hello"...),
	} {
		if _, err := parseWelcome(stream); !errors.Is(err, ErrBadWelcome) {
			t.Errorf("stream %s: %v", name, err)
		}
	}
}

func FuzzWelcome(f *testing.F) {
	texts, _ := WelcomeTexts(testWelcomeEnvelopes(f, 200, 300))
	f.Add(texts[0], []byte(nil))
	envs := testWelcomeEnvelopes(f, 100)
	stream := binary.BigEndian.AppendUint16(nil, 1)
	stream = binary.BigEndian.AppendUint32(stream, uint32(len(envs[0].Bytes())))
	stream = append(stream, envs[0].Bytes()...)
	f.Add(WelcomePrefix+"AQ", stream)
	f.Fuzz(func(t *testing.T, text string, stream []byte) {
		if fr, err := parseFrame(text); err == nil {
			if fr.count == 0 || fr.index >= fr.count || len(fr.chunk) == 0 || len(fr.chunk) > frameChunk {
				t.Fatalf("accepted frame %d of %d with %d bytes", fr.index, fr.count, len(fr.chunk))
			}
		}
		if got, err := parseWelcome(stream); err == nil {
			if len(got) == 0 {
				t.Fatal("accepted an empty welcome")
			}
			for _, e := range got {
				if e.Verify() != nil {
					t.Fatal("accepted an envelope that does not verify")
				}
			}
		}
		_ = ReassembleWelcomes([]string{text, text}, nil)
	})
}
