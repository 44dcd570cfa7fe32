package keymgmt

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Labels of the key tree (see the package doc, "Key tree"). Each derived
// key, wrap and seal has its own label, so no two purposes share key
// material and nothing made for one opens as another.
const (
	// LabelTreeNodeKey derives an internal node's key from the managers'
	// tree seed, the tree, the node and its version.
	LabelTreeNodeKey = "meshnode/v1/tree/node-key"
	// LabelTreeLeafKey derives a member's leaf key from the tree seed and
	// the member's membership.
	LabelTreeLeafKey = "meshnode/v1/tree/leaf-key"
	// LabelTreeWrapKey starts the AAD of a node key wrapped under one of
	// its children's keys.
	LabelTreeWrapKey = "meshnode/v1/tree/wrap-key"
	// LabelTreeWrapSecrets starts the AAD of epoch secrets wrapped under a
	// tree's root key.
	LabelTreeWrapSecrets = "meshnode/v1/tree/wrap-epoch-secrets"
	// LabelSealTreeLeaf is the HPKE info label of a leaf key sealed to its
	// member (when the managers draw a new tree seed).
	LabelSealTreeLeaf = "meshnode/v1/seal/tree-leaf"
	// LabelSealTreeSeed is the HPKE info label of the tree seed sealed to a
	// manager (a new seed, or a handover to a new manager).
	LabelSealTreeSeed = "meshnode/v1/seal/tree-seed"
)

// TreeKeySize is the size of every key tree key.
const TreeKeySize = 32

// TreeKey is the key of one node of a key tree.
type TreeKey [TreeKeySize]byte

// TreeWrapOverhead is how much longer a wrap is than what it wraps: the
// XChaCha20-Poly1305 nonce and tag.
const TreeWrapOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// TreeKeyWrapSize is the size of a wrapped node key.
const TreeKeyWrapSize = TreeWrapOverhead + TreeKeySize

// TreeSecretsWrapSize is the size of epoch secrets wrapped under a root:
// writer secrets (with W) unless readOnly.
func TreeSecretsWrapSize(readOnly bool) int {
	if readOnly {
		return TreeWrapOverhead + epochSecretsReadSize
	}
	return TreeWrapOverhead + epochSecretsWriteSize
}

// labelled is len(label) ‖ label ‖ parts…: an unambiguous prefix, as the
// HPKE info of hpkeInfo.
func labelled(label string, parts ...[]byte) []byte {
	n := 1 + len(label)
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	out = append(out, byte(len(label)))
	out = append(out, label...)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// DeriveTreeNodeKey derives the key of an internal node from the managers'
// seed:
//
//	HKDF-SHA256(secret = seed, salt = none,
//	            info = labelled(LabelTreeNodeKey, tree ‖ uint32be(node) ‖ version), 32)
//
// Why derived and not drawn: every manager holding the seed computes the
// same keys, so several managers rotate the same tree and a new manager
// receives the 32-byte seed, not the tree. Why it is safe: HKDF is a PRF
// keyed by the seed, which only managers hold; a member (or a removed
// member) knows some outputs and learns nothing about the others. The
// version is the ID of the rotation that last replaced the node, unique
// per rotation even across forks of the state chain, so a node's keys on
// two branches, or before and after a refresh, are unrelated.
func DeriveTreeNodeKey(seed *[32]byte, tree TreeID, node uint32, version [32]byte) TreeKey {
	ctx := make([]byte, 0, 1+4+32)
	ctx = append(ctx, byte(tree))
	ctx = binary.BigEndian.AppendUint32(ctx, node)
	ctx = append(ctx, version[:]...)
	return treeHKDF(seed, LabelTreeNodeKey, ctx)
}

// DeriveTreeLeafKey derives a member's leaf key from the managers' seed and
// the member's membership (a hash naming the member and the event that
// added it): info = labelled(LabelTreeLeafKey, membership). A leaf key
// belongs to a membership, not a position, so a member moved between trees
// (a role change) keeps it, and a member removed and added again gets
// another. Only a new seed replaces it.
func DeriveTreeLeafKey(seed *[32]byte, membership [32]byte) TreeKey {
	return treeHKDF(seed, LabelTreeLeafKey, membership[:])
}

func treeHKDF(seed *[32]byte, label string, ctx []byte) TreeKey {
	k, err := hkdf.Key(sha256.New, seed[:], nil, string(labelled(label, ctx)), TreeKeySize)
	if err != nil {
		panic("keymgmt: hkdf: " + err.Error()) // 32 bytes of SHA-256 never fail
	}
	return TreeKey(k)
}

// treeAEAD returns XChaCha20-Poly1305 under a node key. The node key is used
// directly: its only use is this AEAD, and the AAD's label tells key wraps
// from epoch secret wraps. A node key wraps its parent once per refresh of
// the parent, a few thousand times in a long life, far below the bound of
// random 192-bit nonces.
func treeAEAD(k *TreeKey) cipher.AEAD {
	a, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		panic("keymgmt: xchacha20poly1305: " + err.Error()) // the key size is fixed
	}
	return a
}

// wrapTree seals pt under k with a random nonce. Why random: a wrap must
// never reuse a (key, nonce) pair, and a counter or a nonce derived from
// the rotation would repeat after a manager crash between making and
// posting a rotation, or when two managers rotate on the same head; a
// 192-bit random nonce needs no state and collides with probability about
// q²/2^193.
func wrapTree(k *TreeKey, pt, aad []byte) []byte {
	out := make([]byte, chacha20poly1305.NonceSizeX, TreeWrapOverhead+len(pt))
	rand.Read(out)
	return treeAEAD(k).Seal(out, out[:chacha20poly1305.NonceSizeX], pt, aad)
}

func unwrapTree(k *TreeKey, wrapped, aad []byte, want int) ([]byte, error) {
	if len(wrapped) != TreeWrapOverhead+want {
		return nil, fmt.Errorf("%w: a tree wrap is %d bytes, want %d", ErrDecrypt, len(wrapped), TreeWrapOverhead+want)
	}
	pt, err := treeAEAD(k).Open(nil, wrapped[:chacha20poly1305.NonceSizeX], wrapped[chacha20poly1305.NonceSizeX:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: tree wrap under another key or context, or tampered", ErrDecrypt)
	}
	return pt, nil
}

// WrapTreeKey wraps a node key under one of its children's keys. ctx must
// bind where the wrap belongs (group, epoch, rotation, tree, node); the
// AAD is labelled(LabelTreeWrapKey, ctx).
func WrapTreeKey(under, key *TreeKey, ctx []byte) []byte {
	return wrapTree(under, key[:], labelled(LabelTreeWrapKey, ctx))
}

// UnwrapTreeKey opens WrapTreeKey's output: exactly TreeKeyWrapSize bytes,
// under the same key and ctx, or ErrDecrypt.
func UnwrapTreeKey(under *TreeKey, wrapped, ctx []byte) (TreeKey, error) {
	pt, err := unwrapTree(under, wrapped, labelled(LabelTreeWrapKey, ctx), TreeKeySize)
	if err != nil {
		return TreeKey{}, err
	}
	return TreeKey(pt), nil
}

// WrapTreeSecrets wraps an epoch's secrets under a tree's root key: the
// writer form (R, WPub, W) or, if readOnly, the reader form without W.
// The AAD is labelled(LabelTreeWrapSecrets, ctx).
func WrapTreeSecrets(root *TreeKey, s *EpochSecrets, readOnly bool, ctx []byte) ([]byte, error) {
	z, err := NewEpochSecretsSealer(s)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	pt := z.reader
	if !readOnly {
		if z.writer == nil {
			return nil, fmt.Errorf("%w: cannot wrap writer secrets without the write secret", ErrInvalidKey)
		}
		pt = z.writer
	}
	return wrapTree(root, pt, labelled(LabelTreeWrapSecrets, ctx)), nil
}

// UnwrapTreeSecrets opens WrapTreeSecrets' output. The size says which
// form it is: readOnly must match it. It returns ErrDecrypt if it does not
// open and ErrMalformed if it opens to something that is not epoch
// secrets of that form.
func UnwrapTreeSecrets(root *TreeKey, wrapped []byte, readOnly bool, ctx []byte) (*EpochSecrets, error) {
	want := epochSecretsWriteSize
	if readOnly {
		want = epochSecretsReadSize
	}
	pt, err := unwrapTree(root, wrapped, labelled(LabelTreeWrapSecrets, ctx), want)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	s, err := ParseEpochSecrets(pt)
	if err != nil {
		return nil, err
	}
	if (s.Write == nil) != readOnly {
		return nil, fmt.Errorf("%w: tree-wrapped epoch secrets of the wrong form", ErrMalformed)
	}
	return s, nil
}

// seal info of the tree seals: caller's info ‖ the recipient's signing
// key, so a copy is bound to the member it was made for.
func treeSealInfo(info []byte, signPub ed25519.PublicKey) []byte {
	out := make([]byte, 0, len(info)+len(signPub))
	return append(append(out, info...), signPub...)
}

// SealTreeLeaf seals a leaf key to its member (HPKE base mode, a fresh
// ephemeral key per seal, LabelSealTreeLeaf, info ‖ recipient SignPub).
func SealTreeLeaf(recipient *PublicIdentity, info []byte, leaf *TreeKey) ([]byte, error) {
	if recipient == nil {
		return nil, fmt.Errorf("%w: nil recipient", ErrInvalidKey)
	}
	return sealLabelled(recipient, LabelSealTreeLeaf, treeSealInfo(info, recipient.SignPub), leaf[:])
}

// OpenTreeLeaf opens SealTreeLeaf's output made with the same info.
func (id *Identity) OpenTreeLeaf(info, sealed []byte) (TreeKey, error) {
	pt, err := id.openLabelled(LabelSealTreeLeaf, treeSealInfo(info, id.pub.SignPub), sealed)
	if err != nil {
		return TreeKey{}, err
	}
	defer clear(pt)
	if len(pt) != TreeKeySize {
		return TreeKey{}, fmt.Errorf("%w: a sealed leaf key of %d bytes", ErrMalformed, len(pt))
	}
	return TreeKey(pt), nil
}

// TreeSeed is the managers' secret of a group's key tree: every node key
// derives from it. Epoch is the epoch whose rotation drew it (the tree was
// delivered whole then; keys not replaced since have that rotation as
// their version).
type TreeSeed struct {
	Seed  [32]byte
	Epoch uint64
}

// NewTreeSeed draws a seed from crypto/rand for the rotation to epoch.
func NewTreeSeed(epoch uint64) *TreeSeed {
	s := &TreeSeed{Epoch: epoch}
	rand.Read(s.Seed[:])
	return s
}

// Tree seed encoding: 1 version (0x01) ‖ 32 seed ‖ 8 epoch.
const (
	treeSeedVersion = 1
	TreeSeedSize    = 1 + 32 + 8
)

// MarshalTreeSeed encodes a seed. The result is secret.
func MarshalTreeSeed(s *TreeSeed) []byte {
	b := make([]byte, 0, TreeSeedSize)
	b = append(b, treeSeedVersion)
	b = append(b, s.Seed[:]...)
	return binary.BigEndian.AppendUint64(b, s.Epoch)
}

// ParseTreeSeed decodes MarshalTreeSeed's output exactly.
func ParseTreeSeed(b []byte) (*TreeSeed, error) {
	if len(b) != TreeSeedSize || b[0] != treeSeedVersion {
		return nil, fmt.Errorf("%w: tree seed of %d bytes (want %d, version %d)", ErrMalformed, len(b), TreeSeedSize, treeSeedVersion)
	}
	s := &TreeSeed{Epoch: binary.BigEndian.Uint64(b[33:])}
	copy(s.Seed[:], b[1:33])
	return s, nil
}

// SealTreeSeed seals the seed to a manager (HPKE base mode,
// LabelSealTreeSeed, info ‖ recipient SignPub).
func SealTreeSeed(recipient *PublicIdentity, info []byte, s *TreeSeed) ([]byte, error) {
	if recipient == nil || s == nil {
		return nil, fmt.Errorf("%w: nil recipient or seed", ErrInvalidKey)
	}
	pt := MarshalTreeSeed(s)
	defer clear(pt)
	return sealLabelled(recipient, LabelSealTreeSeed, treeSealInfo(info, recipient.SignPub), pt)
}

// OpenTreeSeed opens SealTreeSeed's output made with the same info.
func (id *Identity) OpenTreeSeed(info, sealed []byte) (*TreeSeed, error) {
	pt, err := id.openLabelled(LabelSealTreeSeed, treeSealInfo(info, id.pub.SignPub), sealed)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return ParseTreeSeed(pt)
}

// TreePath is what a member holds of a key tree: its leaf and the keys on
// the path from it to the root.
type TreePath struct {
	Tree  TreeID
	Depth int
	// Leaf is the leaf's node index.
	Leaf uint32
	// Keys are the leaf key then each ancestor's, up to the root
	// (Depth+1 keys).
	Keys []TreeKey
}

// Nodes returns the path's nodes, leaf first.
func (p *TreePath) Nodes() []uint32 {
	out, _ := TreePathNodes(p.Leaf, p.Depth)
	return out
}

// Root returns the root's key.
func (p *TreePath) Root() TreeKey { return p.Keys[len(p.Keys)-1] }

// Clone returns a deep copy.
func (p *TreePath) Clone() *TreePath {
	if p == nil {
		return nil
	}
	c := *p
	c.Keys = append([]TreeKey(nil), p.Keys...)
	return &c
}

// Validate checks the path's shape.
func (p *TreePath) Validate() error {
	switch {
	case !p.Tree.Valid():
		return fmt.Errorf("%w: tree path in %s", ErrMalformed, p.Tree)
	case p.Depth < 0 || p.Depth > MaxTreeDepth:
		return fmt.Errorf("%w: tree path of depth %d, at most %d", ErrMalformed, p.Depth, MaxTreeDepth)
	case !IsLeaf(p.Leaf) || !NodeInTree(p.Leaf, p.Depth):
		return fmt.Errorf("%w: node %d is not a leaf of a tree of depth %d", ErrMalformed, p.Leaf, p.Depth)
	case len(p.Keys) != p.Depth+1:
		return fmt.Errorf("%w: %d path keys for depth %d", ErrMalformed, len(p.Keys), p.Depth)
	}
	return nil
}

// Tree path encoding, version 1 (the member's record, inside its encrypted
// group record and in welcomes):
//
//	1 version (0x01) ‖ 1 tree ‖ 1 depth d (≤ MaxTreeDepth) ‖ 4 leaf node ‖
//	(d+1) × 32 keys, leaf first
const treePathVersion = 1

// TreePathSize is the encoded size of a path of the given depth.
func TreePathSize(depth int) int { return 7 + (depth+1)*TreeKeySize }

// MarshalTreePath encodes a valid path. The result is secret.
func MarshalTreePath(p *TreePath) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil tree path", ErrMalformed)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, TreePathSize(p.Depth))
	b = append(b, treePathVersion, byte(p.Tree), byte(p.Depth))
	b = binary.BigEndian.AppendUint32(b, p.Leaf)
	for _, k := range p.Keys {
		b = append(b, k[:]...)
	}
	return b, nil
}

// ParseTreePath decodes MarshalTreePath's output exactly.
func ParseTreePath(b []byte) (*TreePath, error) {
	r := newReader(b)
	if v := r.u8(); !r.ok || v != treePathVersion {
		return nil, fmt.Errorf("%w: tree path version %d, want %d", ErrMalformed, v, treePathVersion)
	}
	p := &TreePath{Tree: TreeID(r.u8()), Depth: int(r.u8()), Leaf: r.u32()}
	if !r.ok {
		return nil, fmt.Errorf("%w: truncated tree path", ErrMalformed)
	}
	if p.Depth > MaxTreeDepth {
		return nil, fmt.Errorf("%w: tree path of depth %d, at most %d", ErrMalformed, p.Depth, MaxTreeDepth)
	}
	p.Keys = make([]TreeKey, p.Depth+1)
	for i := range p.Keys {
		copy(p.Keys[i][:], r.bytes(TreeKeySize))
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: tree path of %d bytes, want %d for depth %d", ErrMalformed, len(b), TreePathSize(p.Depth), p.Depth)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
