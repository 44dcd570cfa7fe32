// Package keymgmt owns every key of a meshnode member: the profile identity
// (Ed25519 signing key and HPKE key), the keystore at rest, epoch secrets and
// the keys derived from them, sealing and opening key updates, and
// fingerprints. It does no network I/O (enforced by a layering test).
//
// # Flow
//
// A member creates a Keystore (NewKeystore: identity + DataKey) and writes
// it with CreateKeystore; the node loads it at start with LoadKeystore and
// uses DataKey as the Badger encryption key of its private database. The
// member shares a KeyPackage (text "mnkp1.…") so a manager can add them; the
// manager parses it, checks the fingerprint out of band if it wants to, and
// seals the group's EpochSecrets to the member's PublicIdentity with
// SealEpochSecrets. On every rotation the manager seals the new epoch's
// secrets to each remaining member the same way (read-only members get R_n
// and WPub_n, never W_n). Direct messages use SealTo / Identity.Open. Sealing
// is HPKE base mode: it hides the plaintext but does not say who sealed it,
// so the message that carries a sealed blob is signed with Identity.Sign.
//
// # Epoch keys
//
// Each epoch n of a group has a read secret R_n and a write secret W_n, 32
// random bytes each. By HKDF-SHA256 (no salt: the secrets are uniformly
// random and used for nothing else):
//
//	K_n     = HKDF(R_n, info=LabelReadKey, 32)        XChaCha20-Poly1305 key
//	seed_n  = HKDF(W_n, info=LabelWriteKey, 32)       Ed25519 seed
//	WPub_n  = Ed25519 public key of seed_n
//	T_n     = SHA-256("meshnode/v1/mailbox" ‖ WPub_n)  mailbox tag
//
// Read-only members hold R_n and WPub_n but not W_n.
//
// # Identity
//
// Suites: SuiteX25519 (1) is DHKEM(X25519, HKDF-SHA256); SuitePQ (2) is
// MLKEM768-X25519 (X-Wing). Both use HKDF-SHA256 and ChaCha20Poly1305.
// New profiles are X-Wing (DefaultSuite) unless the user opts out (`init
// --classic`); a group may mix both, since every HPKE seal is made to the
// recipient's suite and everything symmetric (epoch keys, key tree wraps)
// is the same for all.
//
// Public identity (Marshal / ParsePublicIdentity), exact length per suite:
//
//	offset  size  field
//	0       1     version (0x01)
//	1       1     suite (0x01 X25519: N=32; 0x02 X-Wing: N=1216)
//	2       32    Ed25519 signing public key
//	34      N     HPKE public key (RFC 9180 SerializePublicKey)
//
// Private identity (MarshalPrivate / ParsePrivateIdentity), only ever stored
// inside the keystore:
//
//	0       1     version (0x01)
//	1       1     suite
//	2       32    Ed25519 seed
//	34      32    HPKE private key (X25519 scalar, or the X-Wing seed)
//
// Signatures (Identity.Sign / VerifySignature) are Ed25519 over
//
//	len(context) (1 byte) ‖ context ‖ msg
//
// where context is a named constant of the caller (1..255 bytes, e.g.
// SigContextKeyPackage). The length byte makes the prefix unambiguous, so a
// signature for one purpose never verifies for another.
//
// # Fingerprints
//
// Fingerprint(SignPub) = base32(SHA-256(FingerprintLabel ‖ SignPub)[:20]),
// lower case without padding: 32 characters shown as 8 groups of 4, e.g.
// "rsyh-febx-eggx-wxaj-nli2-iyqu-7jhh-vzjg". ParseFingerprint accepts any
// case and separators. Impersonating a given key needs a second preimage of
// the 160-bit digest (about 2^160 work); a collision (about 2^80) only yields
// two look-alike keys that both belong to the attacker.
//
// # Sealing
//
// SealTo is single-shot HPKE base mode with the recipient's suite; the output
// is enc ‖ ciphertext (enc is 32 bytes for X25519 and 1120 for X-Wing, the
// ciphertext carries a 16-byte tag). The HPKE info is
//
//	len(label) (1 byte) ‖ label ‖ caller info
//
// with label LabelSeal for SealTo and LabelSealEpochSecrets for
// SealEpochSecrets, so the two never open as each other. The caller's info
// binds the context (group ID, epoch, state head).
//
// Epoch secrets (MarshalEpochSecrets / ParseEpochSecrets):
//
//	0       1     version (0x01)
//	1       1     flags (bit 0: write secret present; other bits zero)
//	2       32    R_n
//	34      32    WPub_n
//	66      32    W_n (only if bit 0 is set)
//
// A writer's WPub_n must be the key derived from its W_n.
//
// # Rotation
//
// WrapEpochSecrets seals one epoch's secrets to every remaining member and
// returns a list of (slot, sealed) pairs, sorted by slot; this list is the
// interface a key tree could later fill instead of per-member seals:
//
//	slot   = SHA-256(LabelRotationSlot ‖ uint16be(len(scope)) ‖ scope ‖ SignPub)[:8]
//	sealed = HPKE base seal to the member's HPKE key, info =
//	         len(LabelWrapEpochSecrets) ‖ LabelWrapEpochSecrets ‖ info ‖ SignPub,
//	         plaintext = epoch secrets (layout above; no W_n for read-only members)
//
// groupstate passes scope = group ID ‖ new epoch and info = group ID ‖ new
// epoch ‖ state head. A member computes its own slot, opens the entries
// that carry it (a collision only costs another open) and gets
// ErrNotRecipient if there is none. An X25519 copy is 8 + 114 bytes for a
// reader and 8 + 146 for a writer (WrappedSecretsSize).
//
// # Key tree
//
// A managed group's managers hold a logical key hierarchy (LKH) per group:
// two binary trees, the writers' (write and manage roles) and the
// readers'. Each member holds the keys on the path from its leaf to its
// tree's root (TreePath); the writers' root key wraps the epoch's writer
// secrets (R, WPub, W) and the readers' root key the reader secrets (R,
// WPub), so a reader never receives W. groupstate places members and says
// which nodes a rotation replaces; this package has the arithmetic, the
// keys, the wraps and the seals.
//
// Nodes are numbered in order as in MLS (RFC 9420 appendix C): leaf i is
// node 2i, a node's level is its number of trailing one bits, the root of
// a tree of depth d (2^d leaves, d ≤ MaxTreeDepth = 16) is 2^d − 1.
// Growing a tree keeps every index (the old root becomes the new root's
// left child).
//
// Keys. The managers share a 32-byte TreeSeed (random, drawn by the
// group's creator or by a rotation that sets the tree up afresh); every
// key derives from it with HKDF-SHA256 (no salt; the seed is uniform):
//
//	leaf key  = HKDF(seed, info = labelled(LabelTreeLeafKey, membership))
//	node key  = HKDF(seed, info = labelled(LabelTreeNodeKey, tree ‖ uint32be(node) ‖ version))
//	labelled(label, x) = len(label) (1 byte) ‖ label ‖ x
//
// membership is the 32-byte hash naming the member and the event that
// added it; version is the 32-byte ID of the rotate event that last
// replaced the node. Derived keys let several managers rotate one tree and
// hand it over as 32 bytes; a member, or a removed member, knows some HKDF
// outputs and nothing about the others (HKDF is a PRF keyed by the seed).
//
// Wraps. A node key wrapped under a child's key, and epoch secrets under a
// root key, are XChaCha20-Poly1305 (x/crypto) with the node key as the
// AEAD key and a random 24-byte nonce:
//
//	wrap = nonce (24) ‖ ciphertext ‖ tag (16)   (72 bytes for a key;
//	       24+98+16 for writer secrets, 24+66+16 for reader secrets)
//	AAD  = labelled(LabelTreeWrapKey or LabelTreeWrapSecrets, ctx)
//
// where ctx (chosen by groupstate) binds group, epoch, rotation, tree and
// node. Random nonces because a counter or a derived nonce could repeat
// when a manager crashes between making and posting a rotation, or two
// managers rotate on one head; a 192-bit random nonce needs no state. A
// node key wraps its parent at each of the parent's refreshes, a few
// thousand times at most: far below the nonce bound.
//
// Seals. When the seed is new, each member's new leaf key is sealed to it
// with HPKE (SealTreeLeaf, LabelSealTreeLeaf); the seed itself is sealed
// to managers (SealTreeSeed, LabelSealTreeSeed: a new seed, or a handover
// to a new manager). The HPKE info is the caller's ‖ the recipient's
// SignPub, as for WrapEpochSecrets.
//
// Encodings (secret; inside the member's encrypted group record, sealed
// welcomes and seals):
//
//	TreeSeed = 1 version (0x01) ‖ 32 seed ‖ 8 epoch (the rotation that drew it)
//	TreePath = 1 version (0x01) ‖ 1 tree (0 writers, 1 readers) ‖ 1 depth d ‖
//	           4 leaf node ‖ (d+1) × 32 keys, leaf first, root last
//
// Decoders check the depth (≤ MaxTreeDepth) before allocating, that the
// leaf is a leaf of that tree, and exact lengths.
//
// # Key packages
//
// Binary (KeyPackage.Marshal / ParseKeyPackageBinary):
//
//	0       1     version (0x02)
//	1       2     L: length of the public identity, big-endian
//	3       L     public identity (layout above)
//	3+L     1     N: nick length (at most 64)
//	4+L     N     nick, UTF-8 without control characters
//	4+L+N   8     created, Unix seconds, big-endian
//	12+L+N  8     expires, Unix seconds, big-endian (after created)
//	20+L+N  16    nonce, random
//	36+L+N  64    Ed25519 signature by the identity key, context
//	              SigContextKeyPackage, over bytes [0, 36+L+N)
//
// The nonce makes every key package unique, and with it the welcome
// mailbox derived from it (groupstate.WelcomeMailbox): without it two
// packages of one identity and nick made in the same second were
// byte-identical, so two managers' welcomes landed in one mailbox and the
// member joined only one group. Version 0x01 (the same layout without the
// nonce) is still parsed, for packages saved before, and never written.
//
// Text: "mnkp1." ‖ base64url without padding of (binary ‖ SHA-256(binary)[:4]).
// The checksum turns typos and truncated copies into ErrChecksum before the
// signature is even looked at.
//
// # Connections (ARCHITECTURE §8)
//
// Directory names: an alias (ParseAlias: 3..64 of a-z 0-9 . _ -, lower
// case, never fingerprint-shaped) or a user ID (a canonical fingerprint).
// Hosts store a name's packages under H = SHA-256(LabelNameAlias or
// LabelNameUserID ‖ name), each encrypted as nonce(24) ‖
// XChaCha20-Poly1305(HKDF(label ‖ name, LabelDirectoryBlobKey), nonce,
// package, AAD = H) (Name.SealBlob), and accept publishes for H only if
// signed by the owner key HKDF(identity seed, LabelDirectoryOwnerKey ‖ H)
// (Identity.DirectoryOwnerKey): one unrelated key per name.
//
// A ConnPackage holds a fresh HPKE key, its validity and the seed of the
// request mailbox write key; under a user ID it also holds the identity
// and its signature (SigContextConnPackage). An initiator signs an
// Establishment (its identity, nick, an invite, time, nonce;
// SigContextConnRequest over the encoding ‖ the package key ID) and seals
// it with SealRequest (HPKE, LabelSealConnRequest, padded to 4096 bytes);
// the publisher opens it with ConnSecret.OpenRequest. A package may ask
// for a proof of work (ConnPackage.ProofBits, package version 2): the
// request then carries a nonce (request version 2) such that SHA-256(
// LabelConnProof ‖ mailbox ‖ SHA-256(request) ‖ nonce) has that many
// leading zero bits, checked with CheckRequestProof before opening.
// Layouts are in connpkg.go, connreq.go and connpow.go.
//
// # Keystore file
//
// Encrypted (mode 0x01):
//
//	0       8     magic "MNKSTORE"
//	8       1     version (0x01)
//	9       1     mode (0x01: Argon2id + XChaCha20-Poly1305)
//	10      16    Argon2id salt (random per write)
//	26      4     Argon2id time, big-endian
//	30      4     Argon2id memory in KiB, big-endian
//	34      1     Argon2id threads
//	35      24    XChaCha20-Poly1305 nonce (random per write)
//	59      4     L: ciphertext length, big-endian
//	63      L     XChaCha20-Poly1305(key, nonce, secrets, AAD = bytes[0:63])
//
// key = Argon2id(passphrase, salt, time, memory, threads, 32). The whole
// header is authenticated, so changed parameters fail like a wrong
// passphrase (ErrWrongPassphrase: AEAD cannot tell the two apart).
//
// Unencrypted (mode 0x00, only when KeystoreOptions.Unencrypted; loads with
// Keystore.Unencrypted set so the caller warns):
//
//	0       10    magic, version, mode 0x00
//	10      4     L: secrets length, big-endian
//	14      L     secrets
//	14+L    32    SHA-256(bytes[0:14+L]) (detects corruption, not tampering)
//
// Secrets (at most 64 KiB):
//
//	0       1     version (0x01)
//	1       2     P: private identity length, big-endian
//	3       P     private identity (layout above)
//	3+P     32    DataKey
//	35+P    2     M: metadata entry count (at most 256)
//	37+P    …     M × (key length (1 byte, ≥1) ‖ key ‖ value length
//	              (2 bytes, ≤4096) ‖ value), keys strictly ascending
//
// Files are written to a temporary file in the same directory (mode 0600),
// fsynced, then linked (no overwrite) or renamed (overwrite) into place,
// and the directory is fsynced.
package keymgmt
