package keymgmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKDF is deliberately weak so tests run fast; never use it for real.
var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

var testOpts = KeystoreOptions{KDF: testKDF}

func newKeystore(tb testing.TB, s Suite) *Keystore {
	tb.Helper()
	ks, err := NewKeystore(s)
	if err != nil {
		tb.Fatal(err)
	}
	ks.Meta["created-by"] = "test"
	ks.Meta["profile"] = "ada"
	return ks
}

func sameKeystore(t *testing.T, got, want *Keystore) {
	t.Helper()
	if !got.Identity.Public().Equal(want.Identity.Public()) || got.DataKey != want.DataKey {
		t.Fatal("keystore keys changed")
	}
	if len(got.Meta) != len(want.Meta) {
		t.Fatalf("metadata %v, want %v", got.Meta, want.Meta)
	}
	for k, v := range want.Meta {
		if got.Meta[k] != v {
			t.Fatalf("metadata %v, want %v", got.Meta, want.Meta)
		}
	}
}

// onlyFile fails unless dir holds exactly the named file (no temporary
// leftovers).
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only %s", names, name)
	}
}

func TestKeystoreRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "keystore")
			ks := newKeystore(t, s)
			if err := CreateKeystore(path, ks, []byte("correct horse"), testOpts); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("keystore mode %v, want 0600", fi.Mode().Perm())
			}
			onlyFile(t, dir, "keystore")
			raw, _ := os.ReadFile(path)
			if bytes.Contains(raw, ks.DataKey[:]) || bytes.Contains(raw, []byte("ada")) {
				t.Fatal("secrets or metadata in the clear")
			}
			got, err := LoadKeystore(path, []byte("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			if got.Unencrypted {
				t.Fatal("encrypted keystore flagged as unencrypted")
			}
			sameKeystore(t, got, ks)
		})
	}
}

func TestKeystoreDefaultKDF(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ks")
	if err := CreateKeystore(path, newKeystore(t, SuiteX25519), []byte("pw"), KeystoreOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := newReader(raw[prefixSize+saltSize:])
	got := KDFParams{Time: r.u32(), MemoryKiB: r.u32(), Threads: r.u8()}
	if got != DefaultKDFParams() || got != (KDFParams{3, 64 << 10, 2}) {
		t.Fatalf("stored KDF params %+v, want t=3 m=64MiB p=2", got)
	}
	if _, err := LoadKeystore(path, []byte("pw")); err != nil {
		t.Fatal(err)
	}
}

func TestKeystoreLoadRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ks")
	if err := CreateKeystore(path, newKeystore(t, SuiteX25519), []byte("pw"), testOpts); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeystore(path, []byte("pW")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	} else if !strings.Contains(err.Error(), "wrong passphrase or corrupted keystore") {
		t.Errorf("wrong passphrase message: %v", err)
	}
	for _, p := range [][]byte{nil, {}} {
		if _, err := LoadKeystore(path, p); !errors.Is(err, ErrPassphraseRequired) {
			t.Errorf("no passphrase: %v", err)
		}
	}
	if _, err := LoadKeystore(path+".missing", []byte("pw")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestKeystoreCorruptFiles(t *testing.T) {
	ks := newKeystore(t, SuiteX25519)
	enc, err := encodeKeystore(ks, []byte("pw"), testOpts)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := encodeKeystore(ks, nil, KeystoreOptions{Unencrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	with := func(b []byte, f func([]byte)) []byte { c := clone(b); f(c); return c }
	const (
		offTime  = prefixSize + saltSize
		offMem   = offTime + 4
		offThr   = offMem + 4
		offNonce = offThr + 1
	)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrKeystoreCorrupt},
		{"bad magic", with(enc, func(c []byte) { c[0] = 'X' }), ErrKeystoreCorrupt},
		{"future version", with(enc, func(c []byte) { c[len(keystoreMagic)] = 2 }), ErrKeystoreCorrupt},
		{"unknown mode", with(enc, func(c []byte) { c[len(keystoreMagic)+1] = 7 }), ErrKeystoreCorrupt},
		{"header truncated", enc[:encHeaderSize-1], ErrKeystoreCorrupt},
		{"body truncated", enc[:len(enc)-1], ErrKeystoreCorrupt},
		{"trailing byte", append(clone(enc), 0), ErrKeystoreCorrupt},
		{"length too small", with(enc, func(c []byte) { binary.BigEndian.PutUint32(c[encHeaderSize-4:], 3) }), ErrKeystoreCorrupt},
		{"zero time", with(enc, func(c []byte) { binary.BigEndian.PutUint32(c[offTime:], 0) }), ErrKeystoreCorrupt},
		{"huge time", with(enc, func(c []byte) { binary.BigEndian.PutUint32(c[offTime:], 1<<31) }), ErrKeystoreCorrupt},
		{"huge memory", with(enc, func(c []byte) { binary.BigEndian.PutUint32(c[offMem:], 1<<31) }), ErrKeystoreCorrupt},
		{"zero threads", with(enc, func(c []byte) { c[offThr] = 0 }), ErrKeystoreCorrupt},
		// Valid-looking but changed header fields fail authentication.
		{"tampered salt", with(enc, func(c []byte) { c[prefixSize] ^= 1 }), ErrWrongPassphrase},
		{"tampered time", with(enc, func(c []byte) { binary.BigEndian.PutUint32(c[offTime:], 2) }), ErrWrongPassphrase},
		{"tampered nonce", with(enc, func(c []byte) { c[offNonce] ^= 1 }), ErrWrongPassphrase},
		{"tampered ciphertext", with(enc, func(c []byte) { c[encHeaderSize] ^= 1 }), ErrWrongPassphrase},
		{"tampered tag", with(enc, func(c []byte) { c[len(c)-1] ^= 1 }), ErrWrongPassphrase},
		{"encrypted relabelled plain", with(enc, func(c []byte) { c[len(keystoreMagic)+1] = modeUnencrypted }), ErrKeystoreCorrupt},
		{"plain truncated", plain[:len(plain)-1], ErrKeystoreCorrupt},
		{"plain header only", plain[:plainHeaderSize], ErrKeystoreCorrupt},
		{"plain tampered body", with(plain, func(c []byte) { c[plainHeaderSize+5] ^= 1 }), ErrKeystoreCorrupt},
		{"plain tampered checksum", with(plain, func(c []byte) { c[len(c)-1] ^= 1 }), ErrKeystoreCorrupt},
		{"plain relabelled encrypted", with(plain, func(c []byte) { c[len(keystoreMagic)+1] = modeArgon2XChaC }), ErrKeystoreCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeKeystore(tc.b, []byte("pw"), fileKDFLimits)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Every truncation of either kind of file is refused, none panics.
	for _, b := range [][]byte{enc, plain} {
		for n := range len(b) {
			if _, err := decodeKeystore(b[:n], []byte("pw"), fileKDFLimits); !errors.Is(err, ErrKeystoreCorrupt) {
				t.Fatalf("truncated to %d of %d bytes: %v", n, len(b), err)
			}
		}
	}
	// A file larger than any keystore is refused before it is parsed.
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeystore(path, []byte("pw")); !errors.Is(err, ErrKeystoreCorrupt) {
		t.Errorf("oversized file: %v", err)
	}
}

func TestKeystoreSecretsRejects(t *testing.T) {
	ks := newKeystore(t, SuiteX25519)
	good, err := ks.marshalSecrets()
	if err != nil {
		t.Fatal(err)
	}
	// Layout: version, len16, private identity, data key, count16, entries.
	metaOff := 3 + privateIdentitySize + DataKeySize
	with := func(f func([]byte) []byte) []byte { return f(clone(good)) }
	tests := map[string][]byte{
		"version":       with(func(c []byte) []byte { c[0] = 2; return c }),
		"identity len":  with(func(c []byte) []byte { c[2]++; return c }),
		"bad identity":  with(func(c []byte) []byte { c[4] = 9; return c }),
		"count too big": with(func(c []byte) []byte { binary.BigEndian.PutUint16(c[metaOff:], MaxMetaEntries+1); return c }),
		"count short":   with(func(c []byte) []byte { binary.BigEndian.PutUint16(c[metaOff:], 1); return c }),
		"count long":    with(func(c []byte) []byte { binary.BigEndian.PutUint16(c[metaOff:], 3); return c }),
		"trailing":      append(clone(good), 0),
		"empty key": func() []byte {
			c := binary.BigEndian.AppendUint16(clone(good[:metaOff]), 1)
			return append(c, 0, 0, 0)
		}(),
		"unsorted keys": func() []byte {
			c := binary.BigEndian.AppendUint16(clone(good[:metaOff]), 2)
			c = append(c, 1, 'b', 0, 0)
			return append(c, 1, 'a', 0, 0)
		}(),
		"duplicate keys": func() []byte {
			c := binary.BigEndian.AppendUint16(clone(good[:metaOff]), 2)
			c = append(c, 1, 'a', 0, 0)
			return append(c, 1, 'a', 0, 0)
		}(),
		"value too long": func() []byte {
			c := binary.BigEndian.AppendUint16(clone(good[:metaOff]), 1)
			c = append(c, 1, 'a')
			c = binary.BigEndian.AppendUint16(c, MaxMetaValueSize+1)
			return append(c, make([]byte, MaxMetaValueSize+1)...)
		}(),
	}
	for name, b := range tests {
		if got, err := parseSecrets(b); !errors.Is(err, ErrKeystoreCorrupt) || got != nil {
			t.Errorf("%s: got %v, want ErrKeystoreCorrupt", name, err)
		}
	}
	for n := range len(good) {
		if _, err := parseSecrets(good[:n]); !errors.Is(err, ErrKeystoreCorrupt) {
			t.Fatalf("secrets truncated to %d: %v", n, err)
		}
	}
}

func TestCreateKeystoreRejects(t *testing.T) {
	ks := newKeystore(t, SuiteX25519)
	big := newKeystore(t, SuiteX25519)
	for i := range 20 {
		big.Meta[strings.Repeat("k", i+1)] = strings.Repeat("v", MaxMetaValueSize)
	}
	tooMany := newKeystore(t, SuiteX25519)
	for i := range MaxMetaEntries + 1 {
		tooMany.Meta[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = ""
	}
	withMeta := func(k, v string) *Keystore {
		c := newKeystore(t, SuiteX25519)
		c.Meta[k] = v
		return c
	}
	tests := []struct {
		name string
		ks   *Keystore
		pass []byte
		opts KeystoreOptions
		want error
	}{
		{"nil keystore", nil, []byte("pw"), testOpts, ErrInvalidParams},
		{"no identity", &Keystore{}, []byte("pw"), testOpts, ErrInvalidParams},
		{"no passphrase", ks, nil, testOpts, ErrPassphraseRequired},
		{"empty passphrase", ks, []byte{}, testOpts, ErrPassphraseRequired},
		{"passphrase with unencrypted", ks, []byte("pw"), KeystoreOptions{Unencrypted: true}, ErrInvalidParams},
		{"zero time", ks, []byte("pw"), KeystoreOptions{KDF: KDFParams{Time: 0, MemoryKiB: 64, Threads: 1}}, ErrInvalidParams},
		{"zero threads", ks, []byte("pw"), KeystoreOptions{KDF: KDFParams{Time: 1, MemoryKiB: 64}}, ErrInvalidParams},
		{"memory below 8 KiB per thread", ks, []byte("pw"), KeystoreOptions{KDF: KDFParams{Time: 1, MemoryKiB: 15, Threads: 2}}, ErrInvalidParams},
		{"memory too large", ks, []byte("pw"), KeystoreOptions{KDF: KDFParams{Time: 1, MemoryKiB: maxKDFMemoryKiB + 1, Threads: 1}}, ErrInvalidParams},
		{"empty meta key", withMeta("", "v"), []byte("pw"), testOpts, ErrInvalidParams},
		{"long meta key", withMeta(strings.Repeat("k", MaxMetaKeySize+1), "v"), []byte("pw"), testOpts, ErrInvalidParams},
		{"long meta value", withMeta("k", strings.Repeat("v", MaxMetaValueSize+1)), []byte("pw"), testOpts, ErrInvalidParams},
		{"too many meta entries", tooMany, []byte("pw"), testOpts, ErrInvalidParams},
		{"meta too large in total", big, []byte("pw"), testOpts, ErrInvalidParams},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		path := filepath.Join(dir, "ks")
		if err := CreateKeystore(path, tc.ks, tc.pass, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("%s: refused create left %d files behind", tc.name, len(ents))
		}
	}
}

func TestKeystoreNoOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ks")
	first := newKeystore(t, SuiteX25519)
	if err := CreateKeystore(path, first, []byte("pw"), testOpts); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	second := newKeystore(t, SuitePQ)
	if err := CreateKeystore(path, second, []byte("pw"), testOpts); !errors.Is(err, ErrKeystoreExists) {
		t.Fatalf("create over existing: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("refused create changed the file")
	}
	onlyFile(t, dir, "ks")

	opts := testOpts
	opts.Overwrite = true
	if err := CreateKeystore(path, second, []byte("pw"), opts); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKeystore(path, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	sameKeystore(t, got, second)
	onlyFile(t, dir, "ks")
}

func TestChangePassphrase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ks")
	ks := newKeystore(t, SuitePQ)
	if err := CreateKeystore(path, ks, []byte("old"), testOpts); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	if err := ChangePassphrase(path, []byte("wrong"), []byte("new"), testOpts); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("change with wrong old passphrase: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("failed change modified the file")
	}
	if err := ChangePassphrase(path, []byte("old"), nil, testOpts); !errors.Is(err, ErrPassphraseRequired) {
		t.Fatalf("change to empty passphrase: %v", err)
	}
	if err := ChangePassphrase(path, []byte("old"), []byte("new"), testOpts); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeystore(path, []byte("old")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase still works: %v", err)
	}
	got, err := LoadKeystore(path, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	sameKeystore(t, got, ks)
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after change %v", fi.Mode().Perm())
	}
	onlyFile(t, dir, "ks")

	// Removing the encryption must be asked for explicitly, and is flagged.
	if err := ChangePassphrase(path, []byte("new"), nil, KeystoreOptions{Unencrypted: true}); err != nil {
		t.Fatal(err)
	}
	got, err = LoadKeystore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Unencrypted {
		t.Fatal("unencrypted keystore not flagged")
	}
	sameKeystore(t, got, ks)
}

func TestUnencryptedKeystore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ks")
	ks := newKeystore(t, SuiteX25519)
	if err := CreateKeystore(path, ks, nil, KeystoreOptions{Unencrypted: true}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if raw[len(keystoreMagic)+1] != modeUnencrypted {
		t.Fatal("file does not mark itself unencrypted")
	}
	for _, pass := range [][]byte{nil, []byte("ignored")} {
		got, err := LoadKeystore(path, pass)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Unencrypted {
			t.Fatal("unencrypted keystore not flagged")
		}
		sameKeystore(t, got, ks)
	}
}

func TestPassphraseFromEnv(t *testing.T) {
	t.Setenv(EnvPassphrase, "s3cret")
	if p, ok := PassphraseFromEnv(); !ok || string(p) != "s3cret" {
		t.Fatalf("got %q %v", p, ok)
	}
	t.Setenv(EnvPassphrase, "")
	if p, ok := PassphraseFromEnv(); ok || p != nil {
		t.Fatalf("empty variable: got %q %v", p, ok)
	}
	os.Unsetenv(EnvPassphrase)
	if p, ok := PassphraseFromEnv(); ok || p != nil {
		t.Fatalf("unset variable: got %q %v", p, ok)
	}
}

// FuzzDecodeKeystore decodes arbitrary files. The Argon2id limits are tiny
// so mutated headers cannot make a single input take seconds.
func FuzzDecodeKeystore(f *testing.F) {
	ks := newKeystore(f, SuiteX25519)
	for _, opts := range []KeystoreOptions{testOpts, {Unencrypted: true}} {
		pass := []byte("pw")
		if opts.Unencrypted {
			pass = nil
		}
		b, err := encodeKeystore(ks, pass, opts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	limits := KDFParams{Time: 2, MemoryKiB: 256, Threads: 4}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeKeystore(b, []byte("pw"), limits)
		if err != nil {
			if got != nil {
				t.Fatal("error with a non-nil keystore")
			}
			for _, e := range []error{ErrKeystoreCorrupt, ErrWrongPassphrase} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("unexpected error class: %v", err)
		}
		if got.Unencrypted {
			again, err := encodeKeystore(got, nil, KeystoreOptions{Unencrypted: true})
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("accepted unencrypted keystore does not re-encode to its input: %v", err)
			}
		}
	})
}

// BenchmarkDecodeKeystoreDefaultKDF measures unlocking a keystore with the
// default Argon2id parameters (what a node pays at start).
func BenchmarkDecodeKeystoreDefaultKDF(b *testing.B) {
	raw, err := encodeKeystore(newKeystore(b, SuiteX25519), []byte("pw"), KeystoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := decodeKeystore(raw, []byte("pw"), fileKDFLimits); err != nil {
			b.Fatal(err)
		}
	}
}
