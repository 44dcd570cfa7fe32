// Package hostsync is anti-entropy between the hosts of a mailbox
// (ARCHITECTURE §6, "Sync"): two nodes that host the same mailbox find the
// envelopes one has and the other lacks with range-based set
// reconciliation (package reconcile), at a cost that grows with the
// difference rather than the history, and move them both ways in the same
// stream. It never decrypts anything; it sees envelopes and their IDs.
//
// # What is reconciled
//
// Each side reconciles the set of envelope IDs its store knows for the
// mailbox: live envelopes and the tombstones of envelopes its retention
// removed (store.SyncView). Every ID was computed by the store as SHA-256
// of an envelope it stored, as reconcile requires. Tombstones are in the
// set so that a host that expired an envelope and a peer that still holds
// it see no difference: the peer does not push it back (the store would
// refuse it with store.ErrExpired anyway) and nothing is re-sent on every
// session. If a peer lacks an ID we hold only as a tombstone, we have
// nothing to push and count it Missing; that costs a few bytes of
// reconciliation per session until the tombstone is purged
// (store.Params.TombstoneTTL), never a loop.
//
// The reconcile.Set of a session is a store.SyncView: a read snapshot of
// the mailbox whose node sums come from the store's sync index, which the
// store updates in the same transaction as every Put and every purge. A
// session reads only the nodes it compares and the IDs of the few nodes
// it lists, never the whole mailbox, and holds nothing of it in memory: a
// session of two equal 1,000,000-envelope mailboxes reads 256 index
// records on each side. The snapshot is released before the transfer.
//
// # Flow (ProtocolID = /meshnode/sync/2.0.0)
//
// One session per stream. I is the initiator, R the responder:
//
//	I ── hello, reconcile(Initiate) ─────────────────▶ R  checks ban, rate, policy,
//	I ◀──────────────── status(OK), reconcile(reply) ── R  gate, sessions; refusal:
//	I ── reconcile ──▶ R ── reconcile ──▶ …               status(code) and close
//	   (until a side's message opens nothing: reconcile's own rule; both
//	    sides learn the difference: each the IDs it holds that the other
//	    lacks, and the keys of those it lacks)
//	I ── envelope × (I's haves), done ───────────────▶ R  verifies and stores each
//	I ◀────────────── envelope × (R's haves), status(OK) ── R
//	   then both close
//
// The first reconcile message travels with the hello, so an accepted
// session costs no extra round trip, and the transfer costs one more:
// each side pushes what the other lacks, I first. The transfer is
// half-duplex (R reads all of I's pushes before it writes its own), so
// the stream cannot deadlock on flow control. The final status tells I
// that R has stored every push (R stores each before it reads the next
// frame). When SyncWith returns nil, both stores hold the union (up to
// the session limits).
//
// # Verification and strikes
//
// Every received envelope is opened with envelope.Open(b, max, &mailbox)
// (structure, mailbox tag, write signature), and reconciliation must have
// found its ID missing here (reconcile's Take: by its salted key), once;
// past Reconcile.MaxLearnt any verified envelope of the mailbox is taken.
// Anything else (an envelope that fails to open or was not announced, a
// frame of the wrong type or shape, a reconcile message that breaks
// reconcile's rules: endless deferrals past MaxRounds, counts larger than
// the message, answers that contradict our fingerprints) is a protocol
// violation: the stream is reset, nothing of it is stored, and the peer
// gets a strike. StrikesBeforeBan strikes within StrikeWindow ban the
// peer for BanFor, both ways (its sessions are refused with
// status.RateLimited; SyncWith to it fails with ErrBanned). Timeouts,
// resets and refusals are not strikes.
//
// # Bounds
//
// Everything a peer can make us do is bounded: each frame by the reader's
// limit for the frame due (reconcile messages by Reconcile.MaxMessageSize,
// envelopes by MaxEnvelopeSize); rounds by Reconcile.MaxRounds; the IDs
// read by reconcile's scan budget; the learnt difference by
// Reconcile.MaxLearnt each way; the envelopes and bytes moved each way by
// MaxEnvelopes and MaxBytes per session (past them a side stops pushing,
// a receiver cuts off a peer that pushes more, and the session reports
// Stats.Truncated so the scheduler runs another one); the whole session
// by SessionTimeout, the wait for an incoming session's hello by
// HelloTimeout and every later wait for a frame by IdleTimeout (deadlines
// set right after open/accept); sessions by MaxOutgoing, one per (peer,
// mailbox) at a time, SessionRate per peer, and incoming ones by the
// sync gate of package admission (WithAdmission: pending until the
// hello, then active within limits per peer, per network prefix and in
// all, with a share reserved for established mailboxes and trusted
// peers; refused with status.Busy beyond them) or, without it, by
// MaxIncoming and MaxIncomingPerPeer; memory by a reservation with the
// libp2p resource manager under ServiceName (at low priority for a
// general session, so the rest is kept for established mailboxes). The
// responder accepts the initiator's
// reconcile limits (sent in the hello) only if neither exceeds its own.
//
// # Scheduling
//
// Watch(m) marks a mailbox this node hosts. The scheduler (one goroutine
// owning its state) then syncs m with each known host (WithHosts,
// PeerJoined): at once, whenever a host appears in WithHosts' answer or a
// known host connects, every Interval ±Jitter, and on Trigger(m). At most
// one session per (peer, mailbox) runs at a time, at most MaxOutgoing in
// total; requests for a pair that is running or backing off are
// coalesced. A failed session backs the pair off exponentially from
// BackoffMin to BackoffMax (jittered); a truncated one is followed by
// another. When two hosts start a session with each other for the same
// mailbox at once, the one initiated by the lower peer ID proceeds and the
// other is refused as busy (the surviving session syncs both ways).
//
// # Measured
//
// See package bench (`meshnode bench sync --json`) for reconcile bytes,
// rounds, transfer bytes, time and peak memory at n = 100,000 and
// 1,000,000 and d = 0 to 10,000, on disk and in memory.
//
// # Byte layout (version 2)
//
// Every frame is a varint-delimited frame (package internal/wire) whose
// first byte is its type. Integers are big-endian; varints are minimal
// unsigned LEB128.
//
//	hello     = 0x01 ‖ version:u8 (=2) ‖ mailbox[32] ‖ MaxMessageSize:u32 ‖ MaxRounds:u32   42 bytes
//	status    = 0x02 ‖ code:u8 ‖ len:u16 ‖ message[len]             len ≤ 512
//	reconcile = 0x03 ‖ reconcile message (package reconcile's layout, version 2)
//	envelope  = 0x05 ‖ envelope encoding (package envelope's layout)
//	done      = 0x07
//
// Status codes are those of package internal/status. A hello of another
// version is refused with status.Version. Version 1 of this protocol
// (/meshnode/sync/1.0.0: reconciliation by ID ranges with 16-byte
// fingerprints and 32-byte ID lists, then batches of wanted IDs) is no
// longer served: one version of each protocol.
package hostsync
