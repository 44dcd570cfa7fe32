package keymgmt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// testProofBits keeps tests fast (about 1 ms to solve) while a proof that
// was not solved for its request still passes only once in 4096 tries.
const testProofBits = 12

func newProofPackage(t testing.TB, kind NameKind, signer *Identity, bits uint8) (*ConnPackage, *ConnSecret) {
	t.Helper()
	now := time.Now()
	pkg, sec, err := NewConnPackage(kind, signer, SuiteX25519, testSeed(), bits, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return pkg, sec
}

func TestConnPackageProofVersions(t *testing.T) {
	id := newID(t, SuiteX25519)
	for _, tc := range []struct {
		name    string
		kind    NameKind
		signer  *Identity
		bits    uint8
		version byte
	}{
		{"alias without proof", NameAlias, nil, 0, 1},
		{"alias with proof", NameAlias, nil, testProofBits, 2},
		{"user ID without proof", NameUserID, id, 0, 1},
		{"user ID with proof", NameUserID, id, MaxProofBits, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkg, _ := newProofPackage(t, tc.kind, tc.signer, tc.bits)
			b := pkg.Marshal()
			if b[0] != tc.version {
				t.Fatalf("version %d, want %d", b[0], tc.version)
			}
			got, err := ParseConnPackage(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.ProofBits != tc.bits || !bytes.Equal(got.Marshal(), b) {
				t.Fatalf("round trip: %d bits", got.ProofBits)
			}
		})
	}
	// A version-1 package (as every node wrote before proofs existed)
	// still parses, and asks for no proof.
	old, _ := newProofPackage(t, NameAlias, nil, 0)
	b := old.Marshal()
	if want := 3 + 32 + 16 + MailboxSeedSize; len(b) != want {
		t.Fatalf("version-1 alias package of %d bytes, want %d", len(b), want)
	}

	// The difficulty is signed in user ID packages: a host cannot lower it.
	user, _ := newProofPackage(t, NameUserID, id, testProofBits)
	ub := user.Marshal()
	at := 3 + 32 + 16 + MailboxSeedSize
	lowered := bytes.Clone(ub)
	lowered[at] = 1
	if _, err := ParseConnPackage(lowered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("user ID package with a lowered difficulty: %v", err)
	}

	alias, _ := newProofPackage(t, NameAlias, nil, testProofBits)
	ab := alias.Marshal()
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	for name, in := range map[string][]byte{
		"v2 with zero bits":   mod(ab, func(b []byte) []byte { b[at] = 0; return b }),
		"v2 too hard":         mod(ab, func(b []byte) []byte { b[at] = MaxProofBits + 1; return b }),
		"v2 without the byte": ab[:at],
		"v1 with the byte":    mod(ab, func(b []byte) []byte { b[0] = 1; return b }),
		"v3":                  mod(ab, func(b []byte) []byte { b[0] = 3; return b }),
	} {
		if _, err := ParseConnPackage(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestRequestProof(t *testing.T) {
	alice := newID(t, SuiteX25519)
	ctx := context.Background()
	pkg, sec := newProofPackage(t, NameAlias, nil, testProofBits)
	mb := pkg.Mailbox()
	e, err := alice.NewEstablishment(pkg, "alice", "invite", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seal := func(p *ConnPackage) []byte {
		t.Helper()
		ct, err := SealRequest(ctx, p, e)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	ct := seal(pkg)
	if ct[0] != connRequestVersionProof || len(ct) != requestProofHead+SuiteX25519.SealOverhead()+requestPadSize {
		t.Fatalf("request version %d of %d bytes", ct[0], len(ct))
	}
	d, err := CheckRequestProof(ct, mb, testProofBits)
	if err != nil {
		t.Fatal(err)
	}
	if d == ([32]byte{}) {
		t.Fatal("no digest")
	}
	if got, err := sec.OpenRequest(ct); err != nil || got.Nonce != e.Nonce {
		t.Fatalf("open a request with a proof: %v", err)
	}
	if id, err := RequestKeyID(ct); err != nil || id != pkg.KeyID() {
		t.Fatalf("key ID of a request with a proof: %v", err)
	}
	// A package that asks for nothing accepts any request.
	if _, err := CheckRequestProof(ct[:1+ConnKeyIDSize], mb, 0); err == nil {
		t.Fatal("a truncated request passed")
	}
	if _, err := CheckRequestProof(ct, mb, 0); err != nil {
		t.Fatal(err)
	}

	// The same establishment sealed without a proof (as an old node, or a
	// sender that skips the work, would).
	free := *pkg
	free.ProofBits = 0
	noProof := seal(&free)
	if noProof[0] != connRequestVersion {
		t.Fatal("a request without a proof is not version 1")
	}
	if _, err := sec.OpenRequest(noProof); err != nil {
		t.Fatalf("a version-1 request does not open: %v", err)
	}

	// A proof lifted from one request onto another: the nonce is bound to
	// the sealed establishment (each seal is fresh, so retry in the rare
	// case the lifted nonce happens to work).
	moved := func(from []byte, p *ConnPackage) []byte {
		for {
			to := seal(p)
			copy(to[requestCiphertextHead:requestProofHead], from[requestCiphertextHead:requestProofHead])
			if _, err := CheckRequestProof(to, p.Mailbox(), testProofBits); err != nil {
				return to
			}
		}
	}
	other, _ := newProofPackage(t, NameAlias, nil, testProofBits)
	// Another mailbox: the package of another name (or a fresh mailbox of
	// the same name).
	otherMailbox := func() envelope.MailboxID {
		if _, err := CheckRequestProof(ct, other.Mailbox(), testProofBits); err != nil {
			return other.Mailbox()
		}
		return RequestMailbox(testSeed())
	}()
	// A nonce that fails for this request.
	wrong := bytes.Clone(ct)
	for n := uint64(1); ; n++ {
		binary.BigEndian.PutUint64(wrong[requestCiphertextHead:], binary.BigEndian.Uint64(ct[requestCiphertextHead:])+n)
		if _, err := CheckRequestProof(wrong, mb, testProofBits); err != nil {
			break
		}
	}
	tampered := bytes.Clone(ct)
	tampered[len(tampered)-1] ^= 1

	for _, tc := range []struct {
		name string
		ct   []byte
		mb   envelope.MailboxID
		want error
	}{
		{"missing proof", noProof, mb, ErrNoProof},
		{"wrong proof", wrong, mb, ErrBadProof},
		{"proof of another request", moved(ct, pkg), mb, ErrBadProof},
		{"proof for another package", moved(seal(other), pkg), mb, ErrBadProof},
		{"proof checked in another mailbox", ct, otherMailbox, ErrBadProof},
		{"sealed part changed after solving", tampered, mb, ErrBadProof},
		{"harder than solved", ct, mb, nil},
		{"unknown version", append([]byte{9}, ct[1:]...), mb, ErrMalformed},
		{"empty", nil, mb, ErrMalformed},
		{"header only", ct[:requestProofHead-1], mb, ErrMalformed},
	} {
		want := uint8(testProofBits)
		if tc.name == "harder than solved" {
			// Raise the bar above what this proof happens to have.
			d, _ := CheckRequestProof(ct, mb, testProofBits)
			want, tc.want = uint8(leadingZeros(&d)+1), ErrBadProof
		}
		if _, err := CheckRequestProof(tc.ct, tc.mb, want); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestSealRequestProofCancelled(t *testing.T) {
	alice := newID(t, SuiteX25519)
	pkg, _ := newProofPackage(t, NameAlias, nil, MaxProofBits)
	e, _ := alice.NewEstablishment(pkg, "alice", "invite", time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := SealRequest(ctx, pkg, e); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled solve: %v", err)
	}
}

func FuzzCheckRequestProof(f *testing.F) {
	alice := newID(f, SuiteX25519)
	pkg, _ := newProofPackage(f, NameAlias, nil, 4)
	e, _ := alice.NewEstablishment(pkg, "alice", "invite", time.Now())
	ct, _ := SealRequest(context.Background(), pkg, e)
	free := *pkg
	free.ProofBits = 0
	ct1, _ := SealRequest(context.Background(), &free, e)
	f.Add(ct, uint8(4))
	f.Add(ct1, uint8(4))
	f.Add(ct[:requestProofHead], uint8(1))
	f.Add([]byte{2}, uint8(0))
	mb := pkg.Mailbox()
	f.Fuzz(func(t *testing.T, b []byte, want uint8) {
		d, err := CheckRequestProof(b, mb, want)
		if err != nil || want == 0 {
			return
		}
		if leadingZeros(&d) < int(want) || b[0] != connRequestVersionProof {
			t.Fatalf("accepted a %d-bit proof for %d bits", leadingZeros(&d), want)
		}
	})
}

// BenchmarkSolveRequestProof is what an initiator pays for one request to
// an alias with the default difficulty (solving dominates: the HPKE seal
// is about 0.1 ms). The figure varies a lot between runs: the number of
// digests is geometric with mean 2^bits.
func BenchmarkSolveRequestProof(b *testing.B) {
	alice := newID(b, SuiteX25519)
	pkg, _ := newProofPackage(b, NameAlias, nil, DefaultAliasProofBits)
	e, _ := alice.NewEstablishment(pkg, "alice", "meshnode-invite-v1.x", time.Now())
	for b.Loop() {
		if _, err := SealRequest(context.Background(), pkg, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProofDigest is the cost of one attempt; a proof of k bits
// takes 2^k of them on average.
func BenchmarkProofDigest(b *testing.B) {
	in := make([]byte, len(LabelConnProof)+32+sha256.Size+ProofNonceSize)
	var n uint64
	for b.Loop() {
		n++
		binary.BigEndian.PutUint64(in[len(in)-ProofNonceSize:], n)
		sha256.Sum256(in)
	}
}

// BenchmarkCheckRequestProof is the responder's cost to drop a request
// without a valid proof (compare BenchmarkOpenRequest, which it saves).
func BenchmarkCheckRequestProof(b *testing.B) {
	alice := newID(b, SuiteX25519)
	pkg, _ := newProofPackage(b, NameAlias, nil, testProofBits)
	e, _ := alice.NewEstablishment(pkg, "alice", "meshnode-invite-v1.x", time.Now())
	ct, _ := SealRequest(context.Background(), pkg, e)
	mb := pkg.Mailbox()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CheckRequestProof(ct, mb, testProofBits); err != nil {
			b.Fatal(err)
		}
	}
}
