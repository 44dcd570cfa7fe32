package keymgmt

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			id := newID(t, s)
			for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("abc"), 1000)} {
				sealed, err := SealTo(id.Public(), []byte("group|epoch|head"), pt)
				if err != nil {
					t.Fatal(err)
				}
				if len(sealed) != len(pt)+s.SealOverhead() {
					t.Fatalf("sealed %d bytes to %d, want overhead %d", len(pt), len(sealed), s.SealOverhead())
				}
				got, err := id.Open([]byte("group|epoch|head"), sealed)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("open: %v", err)
				}
			}
			a, _ := SealTo(id.Public(), nil, []byte("same"))
			b, _ := SealTo(id.Public(), nil, []byte("same"))
			if bytes.Equal(a, b) {
				t.Fatal("two seals of the same plaintext are equal")
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			id := newID(t, s)
			info := []byte("info")
			sealed, err := SealTo(id.Public(), info, []byte("secret"))
			if err != nil {
				t.Fatal(err)
			}
			flip := func(i int) []byte { c := clone(sealed); c[i] ^= 1; return c }
			otherSuite := SuitePQ
			if s == SuitePQ {
				otherSuite = SuiteX25519
			}
			tests := []struct {
				name   string
				opener *Identity
				info   []byte
				sealed []byte
			}{
				{"wrong info", id, []byte("infp"), sealed},
				{"empty info", id, nil, sealed},
				{"wrong recipient", newID(t, s), info, sealed},
				{"wrong suite", newID(t, otherSuite), info, sealed},
				{"tampered enc", id, info, flip(0)},
				{"tampered ciphertext", id, info, flip(s.EncSize())},
				{"tampered tag", id, info, flip(len(sealed) - 1)},
				{"truncated", id, info, sealed[:len(sealed)-1]},
				{"shorter than overhead", id, info, sealed[:s.SealOverhead()-1]},
				{"enc only", id, info, sealed[:s.EncSize()]},
				{"empty", id, info, nil},
				{"trailing byte", id, info, append(clone(sealed), 0)},
			}
			for _, tc := range tests {
				pt, err := tc.opener.Open(tc.info, tc.sealed)
				if !errors.Is(err, ErrDecrypt) || pt != nil {
					t.Errorf("%s: got %q, %v; want ErrDecrypt", tc.name, pt, err)
				}
			}
			// A SealTo blob never opens as epoch secrets, even with the same
			// info: the labels separate the two uses.
			if _, err := id.OpenEpochSecrets(info, sealed); !errors.Is(err, ErrDecrypt) {
				t.Errorf("SealTo output opened as epoch secrets: %v", err)
			}
		})
	}
}

func TestSealToRejectsBadRecipient(t *testing.T) {
	good := newID(t, SuiteX25519).Public()
	tests := []struct {
		name string
		p    *PublicIdentity
		want error
	}{
		{"nil", nil, ErrInvalidKey},
		{"short key", &PublicIdentity{SignPub: good.SignPub, Suite: SuiteX25519, HPKEPub: good.HPKEPub[:31]}, ErrInvalidKey},
		{"suite mismatch", &PublicIdentity{SignPub: good.SignPub, Suite: SuitePQ, HPKEPub: good.HPKEPub}, ErrInvalidKey},
		{"unknown suite", &PublicIdentity{SignPub: good.SignPub, Suite: 0, HPKEPub: good.HPKEPub}, ErrUnknownSuite},
		// The all-zero X25519 point gives an all-zero shared secret, which
		// HPKE refuses.
		{"low-order point", &PublicIdentity{SignPub: good.SignPub, Suite: SuiteX25519, HPKEPub: make([]byte, 32)}, ErrInvalidKey},
	}
	for _, tc := range tests {
		if out, err := SealTo(tc.p, nil, []byte("x")); !errors.Is(err, tc.want) || out != nil {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEpochSecretsEncoding(t *testing.T) {
	s, err := NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	w, err := MarshalEpochSecrets(s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := MarshalEpochSecrets(s.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != epochSecretsWriteSize || len(r) != epochSecretsReadSize {
		t.Fatalf("encodings are %d and %d bytes", len(w), len(r))
	}
	for _, b := range [][]byte{w, r} {
		got, err := ParseEpochSecrets(b)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := MarshalEpochSecrets(got)
		if !bytes.Equal(again, b) {
			t.Fatal("epoch secrets do not re-encode to their input")
		}
	}
	// A writer without WPub gets it derived.
	noPub := &EpochSecrets{Read: s.Read, Write: s.Write}
	if b, err := MarshalEpochSecrets(noPub); err != nil || !bytes.Equal(b, w) {
		t.Fatalf("writer without WPub: %v", err)
	}

	other, _ := NewEpochSecrets()
	with := func(b []byte, f func([]byte)) []byte { c := clone(b); f(c); return c }
	reject := map[string][]byte{
		"empty":             nil,
		"version only":      w[:1],
		"bad version":       with(w, func(c []byte) { c[0] = 2 }),
		"unknown flag":      with(w, func(c []byte) { c[1] |= 0x80 }),
		"writer truncated":  w[:len(w)-1],
		"writer trailing":   append(clone(w), 0),
		"reader with W":     append(clone(r), make([]byte, 32)...),
		"writer flag no W":  with(r, func(c []byte) { c[1] = epochFlagWrite }),
		"reader flag has W": with(w, func(c []byte) { c[1] = 0 }),
		"WPub mismatch": with(w, func(c []byte) {
			copy(c[2+SecretSize:], other.WPub)
		}),
	}
	for name, b := range reject {
		if got, err := ParseEpochSecrets(b); !errors.Is(err, ErrMalformed) || got != nil {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := MarshalEpochSecrets(&EpochSecrets{Read: s.Read}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("secrets without W or WPub: %v", err)
	}
	if _, err := MarshalEpochSecrets(nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("nil secrets: %v", err)
	}
}

func TestSealEpochSecrets(t *testing.T) {
	s, err := NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	info := []byte("group-id|epoch 7|head")
	for _, suite := range suites {
		t.Run(suite.String(), func(t *testing.T) {
			id := newID(t, suite)
			for _, readOnly := range []bool{false, true} {
				sealed, err := SealEpochSecrets(id.Public(), info, s, readOnly)
				if err != nil {
					t.Fatal(err)
				}
				got, err := id.OpenEpochSecrets(info, sealed)
				if err != nil {
					t.Fatal(err)
				}
				if got.Read != s.Read || !got.WPub.Equal(s.WPub) {
					t.Fatal("R or WPub changed")
				}
				if readOnly != (got.Write == nil) {
					t.Fatalf("readOnly=%v but write secret present=%v", readOnly, got.Write != nil)
				}
				if !readOnly && *got.Write != *s.Write {
					t.Fatal("W changed")
				}
				if readOnly && bytes.Contains(sealed, s.Write[:]) {
					t.Fatal("write secret in the clear")
				}
				// Wrong info (another epoch) and wrong recipient fail.
				if _, err := id.OpenEpochSecrets([]byte("group-id|epoch 8|head"), sealed); !errors.Is(err, ErrDecrypt) {
					t.Errorf("wrong info: %v", err)
				}
				if _, err := newID(t, suite).OpenEpochSecrets(info, sealed); !errors.Is(err, ErrDecrypt) {
					t.Errorf("wrong recipient: %v", err)
				}
				// Epoch secrets never open through the generic Open.
				if _, err := id.Open(info, sealed); !errors.Is(err, ErrDecrypt) {
					t.Errorf("epoch secrets opened by Open: %v", err)
				}
			}
		})
	}
	id := newID(t, SuiteX25519)
	// Write access cannot be granted from read-only secrets.
	if _, err := SealEpochSecrets(id.Public(), info, s.ReadOnly(), false); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("write grant without W: %v", err)
	}
	// A writer without WPub can still seal read-only copies.
	sealed, err := SealEpochSecrets(id.Public(), info, &EpochSecrets{Read: s.Read, Write: s.Write}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := id.OpenEpochSecrets(info, sealed); err != nil || !got.WPub.Equal(s.WPub) || got.Write != nil {
		t.Fatalf("read-only copy from writer without WPub: %v", err)
	}
	if _, err := SealEpochSecrets(id.Public(), info, nil, true); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("nil secrets: %v", err)
	}
	// A sealed blob whose plaintext is not epoch secrets is ErrMalformed.
	junk, err := sealLabelled(id.Public(), LabelSealEpochSecrets, info, []byte("junk"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.OpenEpochSecrets(info, junk); !errors.Is(err, ErrMalformed) {
		t.Errorf("junk epoch secrets: %v", err)
	}
}

func TestEpochSecretsSealer(t *testing.T) {
	s, err := NewEpochSecrets()
	if err != nil {
		t.Fatal(err)
	}
	info := []byte("group|epoch|head")
	z, err := NewEpochSecretsSealer(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	// One sealer, many recipients of both suites and both access levels.
	for i := range 4 {
		id := newID(t, suites[i%2])
		readOnly := i >= 2
		sealed, err := z.SealTo(id.Public(), info, readOnly)
		if err != nil {
			t.Fatal(err)
		}
		got, err := id.OpenEpochSecrets(info, sealed)
		if err != nil {
			t.Fatal(err)
		}
		if got.Read != s.Read || !got.WPub.Equal(s.WPub) || (got.Write == nil) != readOnly {
			t.Fatalf("recipient %d got the wrong secrets", i)
		}
	}
	// A sealer over read-only secrets cannot grant write access.
	ro, err := NewEpochSecretsSealer(s.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	pub := newID(t, SuiteX25519).Public()
	if _, err := ro.SealTo(pub, info, false); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("write grant from read-only sealer: %v", err)
	}
	if _, err := ro.SealTo(pub, info, true); err != nil {
		t.Errorf("read grant from read-only sealer: %v", err)
	}
	ro.Close()
	if out, err := ro.SealTo(pub, info, true); !errors.Is(err, ErrInvalidParams) || out != nil {
		t.Errorf("sealer used after Close: %v", err)
	}
	if _, err := NewEpochSecretsSealer(&EpochSecrets{Read: s.Read}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("sealer over secrets without W or WPub: %v", err)
	}
}

func FuzzParseEpochSecrets(f *testing.F) {
	s, err := NewEpochSecrets()
	if err != nil {
		f.Fatal(err)
	}
	w, _ := MarshalEpochSecrets(s)
	r, _ := MarshalEpochSecrets(s.ReadOnly())
	f.Add(w)
	f.Add(r)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseEpochSecrets(b)
		if err != nil {
			if got != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("rejection %v with value %v", err, got)
			}
			return
		}
		again, err := MarshalEpochSecrets(got)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted secrets do not re-encode to their input: %v", err)
		}
		if _, err := got.Derive(); err != nil {
			t.Fatal(err)
		}
		if len(got.WPub) != ed25519.PublicKeySize {
			t.Fatal("accepted secrets without WPub")
		}
	})
}

// FuzzOpen feeds arbitrary bytes to Identity.Open for both suites: anything
// but the seeded valid seal must be ErrDecrypt, never a panic.
func FuzzOpen(f *testing.F) {
	ids := map[Suite]*Identity{SuiteX25519: newID(f, SuiteX25519), SuitePQ: newID(f, SuitePQ)}
	for _, s := range suites {
		sealed, err := SealTo(ids[s].Public(), []byte("info"), []byte("plaintext"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(s), []byte("info"), sealed)
	}
	f.Fuzz(func(t *testing.T, s uint8, info, sealed []byte) {
		id := ids[SuiteX25519]
		if Suite(s) == SuitePQ {
			id = ids[SuitePQ]
		}
		pt, err := id.Open(info, sealed)
		if err != nil {
			if pt != nil || !errors.Is(err, ErrDecrypt) {
				t.Fatalf("rejection %v with plaintext %q", err, pt)
			}
			return
		}
		if len(sealed) != len(pt)+id.Suite().SealOverhead() {
			t.Fatal("opened a seal of the wrong length")
		}
	})
}

func BenchmarkSealTo(b *testing.B) {
	for _, s := range suites {
		b.Run(s.String(), func(b *testing.B) {
			pub := newID(b, s).Public()
			pt := make([]byte, 256)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SealTo(pub, []byte("info"), pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, s := range suites {
		b.Run(s.String(), func(b *testing.B) {
			id := newID(b, s)
			sealed, err := SealTo(id.Public(), []byte("info"), make([]byte, 256))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := id.Open([]byte("info"), sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSealEpochSecrets(b *testing.B) {
	es, err := NewEpochSecrets()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range suites {
		b.Run(s.String(), func(b *testing.B) {
			pub := newID(b, s).Public()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := SealEpochSecrets(pub, []byte("group|epoch|head"), es, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEpochSecretsSealer is the per-recipient cost of a rotation that
// reuses one sealer.
func BenchmarkEpochSecretsSealer(b *testing.B) {
	es, err := NewEpochSecrets()
	if err != nil {
		b.Fatal(err)
	}
	z, err := NewEpochSecretsSealer(es)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(z.Close)
	for _, s := range suites {
		b.Run(s.String(), func(b *testing.B) {
			pub := newID(b, s).Public()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := z.SealTo(pub, []byte("group|epoch|head"), false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpenEpochSecrets(b *testing.B) {
	es, err := NewEpochSecrets()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range suites {
		b.Run(s.String(), func(b *testing.B) {
			id := newID(b, s)
			sealed, err := SealEpochSecrets(id.Public(), []byte("group|epoch|head"), es, false)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := id.OpenEpochSecrets([]byte("group|epoch|head"), sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
