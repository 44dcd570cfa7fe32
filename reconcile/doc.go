// Package reconcile is range-based set reconciliation of envelope-ID sets:
// two hosts of a mailbox find the IDs one has and the other lacks at a
// cost that grows with the difference, not with the history
// (ARCHITECTURE §6). It is pure computation; the sync protocol carries its
// messages over streams and moves the envelopes.
//
// The design follows Aljoscha Meyer's range-based set reconciliation and
// the Negentropy protocol, without timestamps: IDs are ordered by their
// bytes, and IDs are SHA-256 values, so they are spread uniformly.
//
// # Flow
//
// Each side wraps its Set (the IDs it holds for the mailbox). The initiator
// sends Initiate(); then the sides alternate Reconcile calls, each turning
// the peer's message into a reply:
//
//	a := NewInitiator(setA, p)           b := NewResponder(setB, p)
//	msg := a.Initiate()           ──▶    reply, have, need, done := b.Reconcile(msg)
//	msg, have, need, done :=      ◀──    reply
//	    a.Reconcile(reply)        ──▶    ...
//
// A message is a list of ranges [lo, hi) covering the ID space in order.
// For each range of the peer's message a side answers:
//
//   - Skip: nothing (the range is settled).
//   - Fingerprint: compare with its own fingerprint of the range. Equal:
//     Skip. Different: if it holds fewer than IDListThreshold IDs there,
//     its IDList; else Branching sub-ranges of about equal counts, each
//     with its fingerprint.
//   - IDList (all the peer's IDs in the range): an IDDiff, which says which
//     of the listed IDs it lacks (a bitmap) and lists the IDs it has that
//     were not listed. Both sides learn the difference of the range from
//     this pair; if there is none, Skip.
//   - IDDiff: read it (the range is settled).
//
// Every have/need a side returns was learnt from an IDList/IDDiff pair, so
// both sides learn the same symmetric difference (mirrored). A side is done
// once its message carries no Fingerprint or IDList: the peer then has
// nothing to ask. Reconcile returns a nil reply when the peer expects none.
//
// With n IDs on each side and d differences, the differing ranges are
// found in about log_B(n/d) round trips, and a round costs about
// d·(B fingerprints + one ID list) bytes.
//
// # Limits
//
// No message exceeds Params.MaxMessageSize, MaxRanges or MaxIDs. A side
// with more to say answers some ranges with its own fingerprint instead
// (deferring them: the peer sees the difference and takes the next step)
// or, when even that would crowd the message, with fingerprints of runs of
// ranges, which the peer splits again. Both peers must use the same limits.
// A session accepts at most MaxRounds messages. Per message, a side does
// one fingerprint per range, reads each stored ID at most about once
// (ranges never overlap), splits only the ranges that fit in its reply
// (2·Branching look-ups and Branching fingerprints each, or one scan of the
// range for a Set without Nth) and keeps at most MaxIDs of its own IDs for
// differences; it reports at most 2·MaxIDs learnt IDs per round.
//
// # Byte layout (version 1)
//
//	message = version:u8 (=1) ‖ range*
//	range   = upper:bound ‖ mode:u8 ‖ payload
//	bound   = 0xff                                infinity
//	        | L:u8 (0..32) ‖ prefix[L]            prefix ‖ zeros; prefix[L-1] ≠ 0
//	payload by mode:
//	  0 Skip         (none)
//	  1 Fingerprint  fp[16]
//	  2 IDList       uvarint(n) ‖ id[32]·n
//	  3 IDDiff       uvarint(k) ‖ bitmap[⌈k/8⌉] ‖ uvarint(m) ‖ id[32]·m
//
// The first range starts at the lowest bound (all zeros), each next one at
// the upper bound of the range before; upper bounds ascend strictly and
// nothing may follow infinity. Ranges after the last are Skip. A bound is
// the shortest prefix that separates two neighbouring IDs, so it usually
// takes 2–4 bytes. IDs ascend strictly and lie in their range. In an
// IDDiff, bit i (byte i/8, bit i%8 from the least significant) set means
// the sender lacks the receiver's i-th listed ID in the range (k must equal
// their number; padding bits are zero), and the m IDs are the sender's IDs
// in the range that were not listed. Varints are minimal. Anything else is
// ErrMalformed or ErrProtocol.
//
// # Fingerprints
//
// A range's fingerprint is SHA-256(FingerprintLabel ‖ sum ‖ count)[:16],
// where sum is the sum of its IDs as little-endian 256-bit integers mod
// 2^256 and count a big-endian uint64 (as Negentropy, plus a label). The
// sum is additive, so a store can keep running sums and answer for any
// range in O(log n) (MemSet keeps prefix sums) and update them on insert
// and delete.
//
// Why this is acceptable. A fingerprint collision would make two different
// ranges look equal and the difference would stay unsynchronised. For sets
// that are not chosen adversarially the chance is 2^-128 per comparison.
// An adversary must produce two different sets of IDs with the same count
// and sum (hashing makes a collision of the truncated hash alone a 2^64
// search, and it would still have to be realised by sets of IDs). With
// freely chosen 256-bit items such sets are easy to build (linear algebra,
// or Wagner's generalised birthday attack on modular sums). Here items are
// envelope IDs, SHA-256 outputs of envelopes signed by the mailbox's write
// key: to pick an ID one needs a preimage, and the generalised birthday
// attack needs a write key and millions of signed envelopes per attempt,
// with the colliding sets also falling in the same ranges whose bounds
// depend on everyone else's envelopes. The gain would be a partition
// between hosts of envelopes the attacker could withhold anyway, which
// members detect by their per-author sequence numbers and fetch elsewhere.
// A peer can always lie in the protocol (answer Skip to everything); the
// protocol defends against such peers only by bounding their cost to us.
//
// So a Set must hold only IDs the node computed itself, as SHA-256 of
// envelopes it stored: with freely chosen IDs, sums collide trivially
// ({x+1, x+4} and {x+2, x+3}; FuzzReconcile found that within seconds).
// Likewise what a session reports is the peer's word: "need" IDs are to be
// fetched and checked against the SHA-256 of what arrives, and "have" IDs
// (which the peer claims to lack) cost at most MaxIDs uploads per round.
package reconcile
