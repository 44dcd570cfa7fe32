package keymgmt

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Directory name labels (ARCHITECTURE §8). A host stores connection
// packages under H = SHA-256(label ‖ canonical name); each kind of name
// has its own label, so an alias can never collide with a user ID.
const (
	// LabelNameAlias prefixes an alias when hashing it.
	LabelNameAlias = "meshnode/v1/directory/alias"
	// LabelNameUserID prefixes a user ID (a canonical fingerprint).
	LabelNameUserID = "meshnode/v1/directory/user-id"
	// LabelDirectoryBlobKey is the HKDF info of the key that encrypts the
	// packages stored under a name, so a host that does not know the name
	// cannot read them.
	LabelDirectoryBlobKey = "meshnode/v1/directory/blob-key"
	// LabelDirectoryOwnerKey is the HKDF info prefix of the per-name owner
	// key that authenticates publishes and removals.
	LabelDirectoryOwnerKey = "meshnode/v1/directory/owner-key"
)

// Alias limits. Aliases are ASCII so that look-alike Unicode names cannot
// pass for each other.
const (
	MinAliasLen = 3
	MaxAliasLen = 64
)

// NameKind says what a directory name is.
type NameKind uint8

const (
	// NameAlias is a chosen alias; its packages are unsigned.
	NameAlias NameKind = 1
	// NameUserID is the fingerprint of an identity; its packages are
	// signed by that identity.
	NameUserID NameKind = 2
)

func (k NameKind) String() string {
	switch k {
	case NameAlias:
		return "alias"
	case NameUserID:
		return "user-id"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k NameKind) label() string {
	if k == NameUserID {
		return LabelNameUserID
	}
	return LabelNameAlias
}

// Name is a normalised directory name: an alias or a user ID.
type Name struct {
	Kind NameKind
	// Canonical is the normalised text: lower-case alias, or the canonical
	// grouped fingerprint.
	Canonical string
}

// String returns the canonical text.
func (n Name) String() string { return n.Canonical }

// ParseName reads what a user typed after `contact request`: a fingerprint
// (any case, with or without separators) is a user ID, anything else must
// be a valid alias.
func ParseName(s string) (Name, error) {
	if fp, err := ParseFingerprint(s); err == nil {
		return Name{Kind: NameUserID, Canonical: fp}, nil
	}
	return ParseAlias(s)
}

// UserIDName is the directory name of an identity.
func UserIDName(signPub ed25519.PublicKey) Name {
	return Name{Kind: NameUserID, Canonical: Fingerprint(signPub)}
}

// ParseAlias normalises an alias: surrounding blanks are dropped and ASCII
// letters lower-cased; the result must be MinAliasLen..MaxAliasLen
// characters of a-z, 0-9, '.', '_' and '-', start with a letter or digit,
// and must not read as a fingerprint (that would make NAME|USERID
// ambiguous).
func ParseAlias(s string) (Name, error) {
	a := strings.ToLower(strings.TrimSpace(s))
	if len(a) < MinAliasLen || len(a) > MaxAliasLen {
		return Name{}, fmt.Errorf("%w: alias must be %d to %d characters, got %d", ErrInvalidParams, MinAliasLen, MaxAliasLen, len(a))
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return Name{}, fmt.Errorf("%w: alias must start with a letter or digit", ErrInvalidParams)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return Name{}, fmt.Errorf("%w: alias may contain only a-z, 0-9, '.', '_' and '-' (found %q)", ErrInvalidParams, c)
		}
	}
	if _, err := ParseFingerprint(a); err == nil {
		return Name{}, fmt.Errorf("%w: alias %q reads as a user ID (fingerprint); choose another", ErrInvalidParams, a)
	}
	return Name{Kind: NameAlias, Canonical: a}, nil
}

// NameHash is the 32-byte key a directory host stores a name's packages
// under.
type NameHash [32]byte

// Hash returns H = SHA-256(label ‖ canonical name). The label is fixed per
// kind, so the concatenation is unambiguous.
func (n Name) Hash() NameHash {
	h := sha256.New()
	h.Write([]byte(n.Kind.label()))
	h.Write([]byte(n.Canonical))
	var out NameHash
	h.Sum(out[:0])
	return out
}

// blobKey is HKDF-SHA256(label ‖ name, info = LabelDirectoryBlobKey). The
// name is the whole secret: a host that guesses it can derive the key, as
// it could recompute H. The point is that H alone opens nothing.
func (n Name) blobKey() []byte {
	k, err := hkdf.Key(sha256.New, []byte(n.Kind.label()+n.Canonical), nil, LabelDirectoryBlobKey, chacha20poly1305.KeySize)
	if err != nil {
		panic("keymgmt: hkdf: " + err.Error()) // only for an over-long output length
	}
	return k
}

// BlobOverhead is how much longer SealBlob's output is than its input.
const BlobOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// SealBlob encrypts a connection package for storage under the name:
// nonce(24) ‖ XChaCha20-Poly1305(blob key, nonce, pkg, AAD = H). The key is
// the same for every blob of the name, so the nonce is random: 192 bits
// make a repeat negligible however many packages are published.
func (n Name) SealBlob(pkg []byte) []byte {
	aead, err := chacha20poly1305.NewX(n.blobKey())
	if err != nil {
		panic("keymgmt: xchacha20poly1305: " + err.Error()) // the key size is fixed
	}
	out := make([]byte, chacha20poly1305.NonceSizeX, BlobOverhead+len(pkg))
	rand.Read(out)
	h := n.Hash()
	return aead.Seal(out, out, pkg, h[:])
}

// OpenBlob decrypts a blob fetched under the name. A blob stored under
// another name, tampered with or truncated is ErrDecrypt.
func (n Name) OpenBlob(blob []byte) ([]byte, error) {
	if len(blob) < BlobOverhead {
		return nil, fmt.Errorf("%w: directory blob of %d bytes, shorter than its %d-byte overhead", ErrDecrypt, len(blob), BlobOverhead)
	}
	aead, err := chacha20poly1305.NewX(n.blobKey())
	if err != nil {
		panic("keymgmt: xchacha20poly1305: " + err.Error())
	}
	h := n.Hash()
	nonce := blob[:chacha20poly1305.NonceSizeX]
	pt, err := aead.Open(nil, nonce, blob[chacha20poly1305.NonceSizeX:], h[:])
	if err != nil {
		return nil, fmt.Errorf("%w: directory blob was not stored under %s %q, or was tampered with", ErrDecrypt, n.Kind, n.Canonical)
	}
	return pt, nil
}

// DirectoryOwnerKey derives the Ed25519 key that owns a name on directory
// hosts: seed = HKDF-SHA256(identity signing seed, info =
// LabelDirectoryOwnerKey ‖ H). It is stable across restarts (nothing to
// store), and the keys of two names are unrelated to anyone without the
// identity's secret, so a host cannot link a member's names through them.
func (id *Identity) DirectoryOwnerKey(h NameHash) ed25519.PrivateKey {
	seed, err := hkdf.Key(sha256.New, id.sign.Seed(), nil, LabelDirectoryOwnerKey+string(h[:]), ed25519.SeedSize)
	if err != nil {
		panic("keymgmt: hkdf: " + err.Error())
	}
	return ed25519.NewKeyFromSeed(seed)
}
