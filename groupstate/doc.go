// Package groupstate holds what a member knows about its groups and the
// formats only members can read: the Group record, invites, the encrypted
// message payload with its padding, and per-author sequence tracking. It is
// pure: no networking and no files (enforced by a layering test); the only
// outside inputs are crypto/rand and, for a new group's creation time
// unless WithCreated is given, the clock. Hosts never see anything this package produces except
// through an envelope.
//
// # Sending and receiving
//
//	send:    Payload ─SignPayload(author key)─▶ MarshalPayload ─pad─▶
//	         XChaCha20-Poly1305(K_n, random nonce, AAD = envelope header) ─▶
//	         envelope.Seal(WPriv_n)                         (SealMessage)
//	receive: envelope ─mailbox = T_n? write signature?─▶ bucket size? ─▶
//	         decrypt(K_n, AAD = header) ─unpad─▶ ParsePayload ─▶
//	         author signature ─▶ group and epoch match?      (OpenMessage)
//	         then SeqTracker.Observe(author, seq): new, duplicate, gaps.
//
// # Payload (inside the ciphertext, version 1, big-endian)
//
//	0    1   version (0x01)
//	1    16  group ID
//	17   8   epoch
//	25   32  state head (zero without a state chain)
//	57   32  author Ed25519 identity public key
//	89   8   author sequence number (from 1, per author per group)
//	97   1   parent count P (0..8)
//	98   32P parent envelope IDs (distinct)
//	     8   sent, Unix milliseconds
//	     1   kind: 1 text, 2 direct, 3 profile, 4 key_update, 5 state_event,
//	         6 request
//	     1   nick length N (0..64), N bytes UTF-8
//	     4   body length B, B bytes (text: UTF-8; profile: see below)
//	     64  Ed25519 signature by the author's identity key over
//	         len(ctx) ‖ ctx ‖ all preceding bytes, ctx = "meshnode/v1/payload-signature"
//	         (keymgmt's signature layout, so keymgmt.Identity signs payloads)
//
// Profile body: 1 version ‖ 2 HPKE KEM ID ‖ 2 key length K ‖ K key bytes.
//
// # Padding
//
//	padded = uint32be(len(payload)) ‖ payload ‖ zeros
//
// to the smallest of the buckets 512, 2048, 8192, 32768 and 65395 bytes (the
// largest plaintext that fits a 64 KiB envelope after its 125-byte overhead
// and the 16-byte tag). A receiver rejects any other size, a larger bucket
// than needed, or a non-zero padding byte.
//
// # Invite
//
//	"meshnode-invite-v1." ‖ base64url-nopad(binary ‖ SHA-256(label ‖ binary)[:4])
//	binary = 1 version ‖ 1 flags (bit 0: W_n present) ‖ 16 group ID ‖
//	         1+N name ‖ 8 epoch ‖ 1 history ‖ 32 R_n ‖ [32 W_n] ‖ 32 WPub_n ‖
//	         1 host count (≤16) ‖ per host 2+len (≤256) multiaddr string
//
// An invite is a bearer secret: the checksum catches truncation and typos,
// not forgery. It carries no identity key of the inviter.
//
// # Group record (stored by the node in its encrypted database)
//
//	1 version ‖ 16 ID ‖ 1+N name ‖ 8 epoch ‖ 1 history ‖ 8 created seconds ‖
//	4 created nanoseconds ‖ hosts as in the invite ‖ 4 epoch count ‖
//	per epoch ascending: 8 epoch ‖ 1 flags ‖ 32 R ‖ [32 W] ‖ 32 WPub
//
// # Sequence tracker
//
//	1 version ‖ 4 author count ‖ per author ascending: 32 key ‖ 4 range
//	count ‖ ranges of seen sequence numbers (8 first ‖ 8 last), disjoint,
//	not adjacent, ascending
//
// Every decoder accepts only the canonical encoding, checks each length
// before slicing, and is fuzzed.
package groupstate
