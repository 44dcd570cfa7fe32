package keymgmt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

func testSeed() [MailboxSeedSize]byte {
	var s [MailboxSeedSize]byte
	rand.Read(s[:])
	return s
}

func newConnPackage(t testing.TB, kind NameKind, signer *Identity, suite Suite) (*ConnPackage, *ConnSecret) {
	t.Helper()
	now := time.Now()
	pkg, sec, err := NewConnPackage(kind, signer, suite, testSeed(), 0, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return pkg, sec
}

func TestParseAlias(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"bob", "bob", true},
		{"  Bob.Smith_2-x ", "bob.smith_2-x", true},
		{"ab", "", false},
		{strings.Repeat("a", MaxAliasLen), strings.Repeat("a", MaxAliasLen), true},
		{strings.Repeat("a", MaxAliasLen+1), "", false},
		{"-bob", "", false},
		{".bob", "", false},
		{"bo b", "", false},
		{"böb", "", false},
		{"bob\n", "bob", true},
		{"bob/x", "", false},
		{"rsyh-febx-eggx-wxaj-nli2-iyqu-7jhh-vzjg", "", false}, // reads as a fingerprint
		{"rsyhfebxeggxwxajnli2iyqu7jhhvzjg", "", false},
	}
	for _, tc := range tests {
		n, err := ParseAlias(tc.in)
		if tc.ok != (err == nil) || (tc.ok && (n.Canonical != tc.want || n.Kind != NameAlias)) {
			t.Errorf("ParseAlias(%q) = %+v, %v", tc.in, n, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidParams) {
			t.Errorf("ParseAlias(%q): error %v is not ErrInvalidParams", tc.in, err)
		}
	}
}

func TestParseName(t *testing.T) {
	id := newID(t, SuiteX25519)
	fp := id.Fingerprint()
	for _, in := range []string{fp, strings.ToUpper(fp), strings.ReplaceAll(fp, "-", "")} {
		n, err := ParseName(in)
		if err != nil || n.Kind != NameUserID || n.Canonical != fp || n != UserIDName(id.SigningKey()) {
			t.Fatalf("ParseName(%q) = %+v, %v", in, n, err)
		}
	}
	n, err := ParseName("Bob")
	if err != nil || n.Kind != NameAlias || n.Canonical != "bob" {
		t.Fatalf("ParseName(Bob) = %+v, %v", n, err)
	}
	if _, err := ParseName("x"); err == nil {
		t.Fatal("one-letter name accepted")
	}
}

func TestNameHashSeparatesKinds(t *testing.T) {
	a := Name{Kind: NameAlias, Canonical: "abc"}
	u := Name{Kind: NameUserID, Canonical: "abc"}
	if a.Hash() == u.Hash() {
		t.Fatal("alias and user ID of the same text hash alike")
	}
	if a.Hash() != (Name{Kind: NameAlias, Canonical: "abc"}).Hash() {
		t.Fatal("hash is not deterministic")
	}
	if h := a.Hash(); bytes.Contains(h[:], []byte("abc")) {
		t.Fatal("hash contains the name")
	}
}

func TestBlobSealOpen(t *testing.T) {
	bob, _ := ParseAlias("bob")
	carol, _ := ParseAlias("carol")
	pkg := []byte("a connection package")
	blob := bob.SealBlob(pkg)
	if bytes.Contains(blob, pkg) || len(blob) != len(pkg)+BlobOverhead {
		t.Fatalf("blob of %d bytes leaks or has the wrong size", len(blob))
	}
	if bytes.Equal(blob, bob.SealBlob(pkg)) {
		t.Fatal("two seals of the same package are equal (nonce reuse)")
	}
	got, err := bob.OpenBlob(blob)
	if err != nil || !bytes.Equal(got, pkg) {
		t.Fatalf("open: %q, %v", got, err)
	}
	for name, tc := range map[string]struct {
		n Name
		b []byte
	}{
		"other name":  {carol, blob},
		"other kind":  {Name{Kind: NameUserID, Canonical: "bob"}, blob},
		"truncated":   {bob, blob[:BlobOverhead-1]},
		"flipped bit": {bob, append(append([]byte{}, blob[:30]...), append([]byte{blob[30] ^ 1}, blob[31:]...)...)},
		"empty":       {bob, nil},
	} {
		if _, err := tc.n.OpenBlob(tc.b); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
}

func TestDirectoryOwnerKey(t *testing.T) {
	id := newID(t, SuiteX25519)
	a, _ := ParseAlias("bob")
	b, _ := ParseAlias("robert")
	ka, kb := id.DirectoryOwnerKey(a.Hash()), id.DirectoryOwnerKey(b.Hash())
	if !ka.Equal(id.DirectoryOwnerKey(a.Hash())) {
		t.Fatal("owner key is not stable")
	}
	if ka.Equal(kb) || ka.Public().(ed25519.PublicKey).Equal(id.SigningKey()) {
		t.Fatal("owner keys of two names (or of a name and the identity) are equal")
	}
	other := newID(t, SuiteX25519)
	if ka.Equal(other.DirectoryOwnerKey(a.Hash())) {
		t.Fatal("two identities derive the same owner key")
	}
}

func TestConnPackageRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			id := newID(t, s)
			for _, kind := range []NameKind{NameAlias, NameUserID} {
				signer := id
				name := UserIDName(id.SigningKey())
				if kind == NameAlias {
					signer, name = nil, Name{Kind: NameAlias, Canonical: "bob"}
				}
				pkg, sec := newConnPackage(t, kind, signer, s)
				b := pkg.Marshal()
				if len(b) > MaxConnPackageSize {
					t.Fatalf("%s package of %d bytes", kind, len(b))
				}
				got, err := ParseConnPackage(b)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Marshal(), b) || got.KeyID() != sec.KeyID() || got.Mailbox() != pkg.Mailbox() {
					t.Fatalf("%s package does not round-trip", kind)
				}
				if kind == NameAlias && (got.Identity != nil || bytes.Contains(b, id.SigningKey())) {
					t.Fatal("alias package carries the identity")
				}
				if err := got.CheckFor(name, time.Now()); err != nil {
					t.Fatal(err)
				}
				if err := got.CheckFor(name, pkg.Expires); !errors.Is(err, ErrExpired) {
					t.Fatalf("expired package: %v", err)
				}
				priv, err := sec.MarshalPrivate()
				if err != nil {
					t.Fatal(err)
				}
				sec2, err := ParseConnSecret(priv)
				if err != nil || sec2.KeyID() != sec.KeyID() || sec2.Suite() != s {
					t.Fatalf("secret round trip: %v", err)
				}
			}
		})
	}
}

func TestConnPackageForgery(t *testing.T) {
	bob, mallory := newID(t, SuiteX25519), newID(t, SuiteX25519)
	bobName := UserIDName(bob.SigningKey())
	pkg, _ := newConnPackage(t, NameUserID, bob, SuiteX25519)

	// Mallory replaces the HPKE key in bob's package: the signature fails.
	forged := pkg.Marshal()
	forged[3] ^= 1
	if _, err := ParseConnPackage(forged); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("tampered package: %v", err)
	}
	// A package of her own, validly signed by her, published under bob's
	// user ID: parses, but is not bob's.
	mine, _ := newConnPackage(t, NameUserID, mallory, SuiteX25519)
	got, err := ParseConnPackage(mine.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if err := got.CheckFor(bobName, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("mallory's package under bob's user ID: %v", err)
	}
	// An alias package under a user ID, and the other way round.
	alias, _ := newConnPackage(t, NameAlias, nil, SuiteX25519)
	if err := alias.CheckFor(bobName, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("alias package under a user ID: %v", err)
	}
	if err := pkg.CheckFor(Name{Kind: NameAlias, Canonical: "bob"}, time.Now()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("user ID package under an alias: %v", err)
	}
	// Bob's signature moved onto mallory's key.
	swapped := *mine
	swapped.Identity, swapped.Signature = pkg.Identity, pkg.Signature
	if _, err := ParseConnPackage(swapped.Marshal()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature moved to another key: %v", err)
	}
}

func TestNewConnPackageRejects(t *testing.T) {
	id := newID(t, SuiteX25519)
	now := time.Now()
	tests := []struct {
		name    string
		kind    NameKind
		signer  *Identity
		suite   Suite
		bits    uint8
		expires time.Time
	}{
		{"user ID unsigned", NameUserID, nil, SuiteX25519, 0, now.Add(time.Hour)},
		{"alias signed", NameAlias, id, SuiteX25519, 0, now.Add(time.Hour)},
		{"unknown kind", 9, nil, SuiteX25519, 0, now.Add(time.Hour)},
		{"unknown suite", NameAlias, nil, 7, 0, now.Add(time.Hour)},
		{"expires at creation", NameAlias, nil, SuiteX25519, 0, now},
		{"proof too hard", NameAlias, nil, SuiteX25519, MaxProofBits + 1, now.Add(time.Hour)},
	}
	for _, tc := range tests {
		if _, _, err := NewConnPackage(tc.kind, tc.signer, tc.suite, testSeed(), tc.bits, now, tc.expires); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestParseConnPackageRejects(t *testing.T) {
	id := newID(t, SuiteX25519)
	alias, _ := newConnPackage(t, NameAlias, nil, SuiteX25519)
	user, _ := newConnPackage(t, NameUserID, id, SuiteX25519)
	a, u := alias.Marshal(), user.Marshal()
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	lowOrder := mod(a, func(b []byte) []byte { copy(b[3:35], make([]byte, 32)); return b })
	tests := map[string][]byte{
		"empty":          nil,
		"version":        mod(a, func(b []byte) []byte { b[0] = 2; return b }),
		"kind":           mod(a, func(b []byte) []byte { b[1] = 3; return b }),
		"suite":          mod(a, func(b []byte) []byte { b[2] = 9; return b }),
		"truncated":      a[:len(a)-1],
		"trailing":       append(append([]byte(nil), a...), 0),
		"user truncated": u[:len(u)-1],
		"user trailing":  append(append([]byte(nil), u...), 0),
		"alias as user":  mod(a, func(b []byte) []byte { b[1] = byte(NameUserID); return b }),
		"user as alias":  mod(u, func(b []byte) []byte { b[1] = byte(NameAlias); return b }),
		"created>=exp": mod(a, func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[35:], binary.BigEndian.Uint64(b[43:]))
			return b
		}),
		"low-order key": lowOrder,
		"too large":     make([]byte, MaxConnPackageSize+1),
	}
	for name, b := range tests {
		if _, err := ParseConnPackage(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v is neither ErrMalformed nor ErrBadSignature", name, err)
		}
	}
}

func TestEstablishmentRoundTrip(t *testing.T) {
	for _, s := range suites {
		t.Run(s.String(), func(t *testing.T) {
			alice := newID(t, s)
			pkg, sec := newConnPackage(t, NameAlias, nil, s)
			invite := "meshnode-invite-v1." + strings.Repeat("A", MaxRequestInvite-19)
			e, err := alice.NewEstablishment(pkg, strings.Repeat("ä", MaxNickSize/2), invite, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			ct, err := SealRequest(context.Background(), pkg, e)
			if err != nil {
				t.Fatal(err)
			}
			if want := requestCiphertextHead + s.SealOverhead() + requestPadSize; len(ct) != want {
				t.Fatalf("request of %d bytes, want %d", len(ct), want)
			}
			small, _ := alice.NewEstablishment(pkg, "a", "i", time.Now())
			if ct2, _ := SealRequest(context.Background(), pkg, small); len(ct2) != len(ct) {
				t.Fatal("request size depends on its content")
			}
			if bytes.Contains(ct, alice.SigningKey()) || bytes.Contains(ct, []byte(invite[:40])) {
				t.Fatal("request leaks the initiator or the invite")
			}
			if id, err := RequestKeyID(ct); err != nil || id != pkg.KeyID() {
				t.Fatalf("key ID: %v", err)
			}
			got, err := sec.OpenRequest(ct)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Initiator.Equal(alice.Public()) || got.Nick != e.Nick || got.Invite != invite ||
				!got.Time.Equal(e.Time) || got.Nonce != e.Nonce {
				t.Fatalf("establishment changed: %+v", got)
			}
		})
	}
}

func TestEstablishmentBinding(t *testing.T) {
	alice := newID(t, SuiteX25519)
	pkgBob, secBob := newConnPackage(t, NameAlias, nil, SuiteX25519)
	pkgCarol, secCarol := newConnPackage(t, NameAlias, nil, SuiteX25519)
	e, err := alice.NewEstablishment(pkgBob, "alice", "invite", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Bob forwards alice's signed establishment to carol: carol opens it
	// but the signature binds bob's package key.
	fwd, err := SealRequest(context.Background(), pkgCarol, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secCarol.OpenRequest(fwd); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forwarded establishment: %v", err)
	}
	ct, _ := SealRequest(context.Background(), pkgBob, e)
	if _, err := secCarol.OpenRequest(ct); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("request for bob opened by carol: %v", err)
	}
	// A key ID rewritten to carol's does not open either.
	re := append([]byte(nil), ct...)
	cid := pkgCarol.KeyID()
	copy(re[1:], cid[:])
	if _, err := secCarol.OpenRequest(re); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("request with a rewritten key ID: %v", err)
	}
	// Tampering with the sealed part.
	bad := append([]byte(nil), ct...)
	bad[len(bad)-1] ^= 1
	if _, err := secBob.OpenRequest(bad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered request: %v", err)
	}
	// A signature by someone else.
	mallory := newID(t, SuiteX25519)
	forged := *e
	forged.Signature = mallory.Sign(SigContextConnRequest, e.signedMessage(pkgBob.KeyID()))
	fct, _ := SealRequest(context.Background(), pkgBob, &forged)
	if _, err := secBob.OpenRequest(fct); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("establishment signed by another identity: %v", err)
	}
}

func TestEstablishmentRejects(t *testing.T) {
	alice := newID(t, SuiteX25519)
	pkg, sec := newConnPackage(t, NameAlias, nil, SuiteX25519)
	if _, err := alice.NewEstablishment(pkg, "a\nb", "inv", time.Now()); err == nil {
		t.Fatal("control character in nick accepted")
	}
	if _, err := alice.NewEstablishment(pkg, "a", "", time.Now()); err == nil {
		t.Fatal("empty invite accepted")
	}
	if _, err := alice.NewEstablishment(pkg, "a", strings.Repeat("x", MaxRequestInvite+1), time.Now()); err == nil {
		t.Fatal("oversize invite accepted")
	}
	e, _ := alice.NewEstablishment(pkg, "alice", "invite", time.Now())
	b := e.Marshal()
	mod := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	tests := map[string][]byte{
		"empty":     nil,
		"version":   mod(func(b []byte) []byte { b[0] = 9; return b }),
		"truncated": b[:len(b)-1],
		"trailing":  append(append([]byte(nil), b...), 0),
		"bad id":    mod(func(b []byte) []byte { b[3] = 7; return b }),
	}
	for name, in := range tests {
		if _, err := ParseEstablishment(in, pkg.KeyID()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, ct := range map[string][]byte{
		"empty":     nil,
		"version":   {9, 1, 2, 3},
		"short":     make([]byte, requestCiphertextHead),
		"wrong len": append(append([]byte{connRequestVersion}, func() []byte { k := sec.KeyID(); return k[:] }()...), make([]byte, 100)...),
	} {
		if _, err := sec.OpenRequest(ct); err == nil {
			t.Errorf("request %s: accepted", name)
		}
	}
}

func FuzzParseConnPackage(f *testing.F) {
	id := newID(f, SuiteX25519)
	a, _ := newConnPackage(f, NameAlias, nil, SuiteX25519)
	u, _ := newConnPackage(f, NameUserID, id, SuiteX25519)
	f.Add(a.Marshal())
	f.Add(u.Marshal())
	f.Add([]byte{1, 2, 1})
	ap, _ := newProofPackage(f, NameAlias, nil, testProofBits)
	up, _ := newProofPackage(f, NameUserID, id, testProofBits)
	f.Add(ap.Marshal())
	f.Add(up.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseConnPackage(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatal("accepted a non-canonical package")
		}
	})
}

func FuzzParseEstablishment(f *testing.F) {
	alice := newID(f, SuiteX25519)
	pkg, _ := newConnPackage(f, NameAlias, nil, SuiteX25519)
	e, _ := alice.NewEstablishment(pkg, "alice", "invite", time.Now())
	f.Add(e.Marshal())
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEstablishment(b, pkg.KeyID())
		if err != nil {
			return
		}
		if !bytes.Equal(e.Marshal(), b) {
			t.Fatal("accepted a non-canonical establishment")
		}
	})
}

func FuzzOpenRequest(f *testing.F) {
	alice := newID(f, SuiteX25519)
	pkg, sec := newConnPackage(f, NameAlias, nil, SuiteX25519)
	e, _ := alice.NewEstablishment(pkg, "alice", "invite", time.Now())
	ct, _ := SealRequest(context.Background(), pkg, e)
	f.Add(ct)
	f.Add(ct[:40])
	pp, _ := newProofPackage(f, NameAlias, nil, 4)
	if pct, err := SealRequest(context.Background(), pp, e); err == nil {
		f.Add(pct)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = RequestKeyID(b)
		_, _ = sec.OpenRequest(b)
	})
}

func FuzzOpenBlob(f *testing.F) {
	n, _ := ParseAlias("bob")
	f.Add(n.SealBlob([]byte("package")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = n.OpenBlob(b)
	})
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"bob", "Bob.Smith", "rsyh-febx-eggx-wxaj-nli2-iyqu-7jhh-vzjg", "", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		again, err := ParseName(n.Canonical)
		if err != nil || again != n {
			t.Fatalf("canonical form %q does not parse to itself: %+v %v", n.Canonical, again, err)
		}
	})
}

// BenchmarkOpenRequest is a responder's cost per request that reaches it
// (what a flood that passes the host's limits costs).
func BenchmarkOpenRequest(b *testing.B) {
	alice := newID(b, SuiteX25519)
	pkg, sec := newConnPackage(b, NameAlias, nil, SuiteX25519)
	e, _ := alice.NewEstablishment(pkg, "alice", "meshnode-invite-v1.x", time.Now())
	ct, _ := SealRequest(context.Background(), pkg, e)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sec.OpenRequest(ct); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseConnSecretRejects: what the member database holds of a package
// secret is checked before use.
func TestParseConnSecretRejects(t *testing.T) {
	_, sec := newConnPackage(t, NameAlias, nil, SuiteX25519)
	good, err := sec.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseConnSecret(good); err != nil || got.KeyID() != sec.KeyID() {
		t.Fatalf("round trip: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"short":     good[:len(good)-1],
		"long":      append(bytes.Clone(good), 0),
		"bad suite": append([]byte{0x7f}, good[1:]...),
	} {
		if _, err := ParseConnSecret(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParseConnSecret: the package secret read back from the member
// database decodes or is ErrMalformed, and what decodes re-encodes the
// same.
func FuzzParseConnSecret(f *testing.F) {
	for _, s := range []Suite{SuiteX25519, SuitePQ} {
		_, sec := newConnPackage(f, NameAlias, nil, s)
		b, err := sec.MarshalPrivate()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sec, err := ParseConnSecret(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		again, err := sec.MarshalPrivate()
		if err != nil {
			t.Fatal(err)
		}
		if sec2, err := ParseConnSecret(again); err != nil || sec2.KeyID() != sec.KeyID() {
			t.Fatalf("re-encoded secret: %v", err)
		}
	})
}
