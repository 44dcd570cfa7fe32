// Package reconcile is set reconciliation of envelope-ID sets: two holders
// of a mailbox find the IDs one has and the other lacks at a cost that
// grows with the difference, not with the history (ARCHITECTURE §6). It
// is pure computation; the sync protocol (package hostsync) carries its
// messages over streams and moves the envelopes.
//
// It is range-based reconciliation (Meyer; Negentropy) over fixed ranges
// with better leaves: the ID space is a trie of fan-out 16 that both sides
// cut the same way, so messages name nodes by their order and carry no
// bounds; fingerprints, and the keys of the leaves, are salted per
// session, so they can be short; and a node with about one difference is
// settled by a one-cell invertible Bloom lookup table (IBLT) instead of a
// list of its IDs.
//
// # Flow
//
// Each side wraps its Set (a read snapshot of the mailbox's IDs). The
// initiator sends Initiate(); then the sides alternate Reconcile calls,
// each turning the peer's message into a reply:
//
//	a := NewInitiator(setA, p)           b := NewResponder(setB, p)
//	msg := a.Initiate()           ──▶    reply, done := b.Reconcile(msg)
//	msg, done := a.Reconcile(reply) ◀──  reply
//	...                                  ...
//
// The first message carries a random 16-byte salt and the fingerprints of
// all 16^l nodes of a starting level l (0, 1 or 2: nodes of about 64 IDs
// or more, at most 256 of them, so at most 1 KiB). Every later message
// answers the nodes the peer's last message put to it (its entries), in
// their order:
//
//   - a fingerprint: one bit of the leading bitmap says whether ours
//     differs; for each that does, an action follows:
//   - Split: the fingerprints of the node's 16 children (or 256
//     grandchildren), each a new entry;
//   - Cells: a table of c cells (c = 1 in practice) over the node's IDs;
//   - List: the node's IDs as 6-byte keys;
//   - a cell table is answered by Result (the keys each side lacks, when
//     the difference decodes) or, when it does not (two or more
//     differences), by an action on the node;
//   - a list is answered by IDDiff (which listed keys the sender lacks, and
//     its keys that were not listed), or by a split of a node too large to
//     list;
//   - any answer may instead be the sender's fingerprint of the node
//     (Deferral), when its message is full: the peer then acts on it.
//
// A side chooses an action from its count c of IDs in the node and the
// expected number e of differences in it, estimated from how many of the
// fingerprints compared at that level differed (Poisson): a list when the
// node is small (c ≤ 16) or dense in differences (16·e ≥ c), one cell when
// e ≤ 1.3, a split otherwise (two levels when e ≥ 48). A side is done when
// its message opens no entries; a side that receives such a message sends
// nothing back.
//
// A key of an ID is the first 8 bytes of SHA-256(ItemLabel ‖ salt ‖ id).
// Results carry keys whole, lists their top 6 bytes. Each side learns the
// full IDs it holds that the peer lacks (Have: it sends them) and the keys
// of those it lacks (NeedCount; Take checks every envelope that arrives
// against them and crosses it off).
//
// Measured (TestReconcileCost, in memory): n = 100,000, d = 1,000: 60.9
// bytes per difference in 3 round trips; n = 1,000,000, d = 1: 1,103 bytes
// in 2 round trips; d = 0: 1,075 bytes in one.
//
// # Limits
//
// No message exceeds Params.MaxMessageSize, and none opens more than
// MaxMessageSize/8 entries, so the answers to all of them fit (a
// deferral costs 5 bytes): a side with more to say defers the rest. A
// session accepts at most MaxRounds messages. A side reads at most
// MaxScanNode IDs for one node's table or list (it splits larger nodes),
// and at most ScanPerID·n + ScanBudget IDs in a session (its set holds
// n): a peer cannot make it read more. It records at most MaxLearnt
// differences each way (then Truncated). Counts, lengths and cell counts
// are checked against what the message can hold before anything is
// allocated.
//
// A peer's answers must agree with our fingerprints: a split of a node
// that differs must have a child that differs; a deferral must differ
// from our fingerprint; a result or an ID difference must show a
// difference, and the keys a result says we hold must be ours. Anything
// else is ErrProtocol ("inconsistent"). Because sets are read snapshots,
// an honest peer never trips these checks (but for 4-byte fingerprint
// collisions, about 2^-32 per split).
//
// # Byte layout (version 2)
//
//	first   = version:u8 (=2) ‖ salt[16] ‖ level:u8 (≤ 3) ‖ fp[4]·16^level
//	reply   = version:u8 (=2) ‖ bitmap ‖ item*
//	bitmap  = one bit per fingerprint entry of the receiver's last message,
//	          bit i at byte i/8, bit i%8 from the least significant; set
//	          when the sender's fingerprint differs; padding bits zero
//	item    = mode:u8 ‖ payload, one per entry the receiver must have
//	          answered: its fingerprints whose bit is set, its tables and
//	          its lists, in the order of its message
//	  1 Split1   fp[4]·16            the children, in ID order
//	  2 Split2   fp[4]·256           the grandchildren
//	  3 Cells    c:u8 (1..64) ‖ cell·c
//	             cell = count:varint (signed, |count| ≤ 2^40) ‖ keysum:u64 ‖ check:u32
//	  4 List     n:uvarint ‖ key[6]·n          keys ascending (equal allowed)
//	  5 Result   a:uvarint ‖ key[8]·a ‖ b:uvarint ‖ key[8]·b
//	             a: the receiver's keys the sender lacks; b: the sender's
//	             keys the receiver lacks
//	  6 IDDiff   bits[⌈n/8⌉] ‖ m:uvarint ‖ key[6]·m
//	             bit i: the sender lacks the receiver's i-th listed key (n:
//	             the keys listed); then the sender's keys not listed, ascending
//	  7 Deferral fp[4]
//
// A node at level l is the IDs whose first 4·l bits equal its prefix
// (levels 0 to 16). Integers are big-endian; varints are minimal. What
// each mode may answer: a fingerprint: 1, 2, 3, 4, 7; cells: 5, 1, 2, 4,
// 7; a list: 6, 1, 2, 7. A split below level 16 is refused. Anything else
// is ErrMalformed or ErrProtocol.
//
// # Hashes and why they are safe
//
// A node's accumulator is the sum of its IDs, each read as a
// little-endian 256-bit integer, modulo 2^256, and their count: additive,
// so a store keeps one per node of the top levels and updates it as
// envelopes arrive and expire (store's sync index). A fingerprint is
// SHA-256(FingerprintLabel ‖ salt ‖ sum ‖ uint64be(count))[:4]. A cell
// holds the count of the keys in it, the XOR of the keys and the XOR of
// their checks, check(k) = SHA-256(CheckLabel ‖ salt ‖ uint64be(k))[0:4];
// bytes 4–15 of that hash place a key in min(3, c) distinct cells. A cell
// with count ±1 whose check matches its key sum holds one key; peeling
// such cells decodes the table.
//
// The salt is drawn by the initiator for each session, after every
// envelope of the mailbox was written, so nobody who writes envelopes can
// choose IDs that collide in a 4-byte fingerprint or a 6-byte key: a
// collision is a chance event (2^-32 per fingerprint compared), and it
// only hides a difference until the next session, which draws a new
// salt. Sums themselves are unsalted: two different sets with the same
// sum and count would look equal in every session. Such sets are hard to
// find when items are SHA-256 outputs of envelopes signed by the
// mailbox's write key (a generalised birthday attack needs a write key
// and millions of signed envelopes, all in one node of the trie), and
// the gain would be a partition of envelopes their writer could withhold
// anyway, which members detect by their per-author sequence numbers. So a
// Set must hold only IDs the node computed itself, as SHA-256 of
// envelopes it stored (with freely chosen IDs, sums collide trivially).
// What a session reports is the peer's word: the keys of IDs we lack are
// to be checked against what arrives (Take), and our IDs the peer claims
// to lack cost at most MaxLearnt uploads.
package reconcile
