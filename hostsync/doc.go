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
// removed (store.RangeIDs). Every ID was computed by the store as SHA-256
// of an envelope it stored, as reconcile requires. Tombstones are in the
// set so that a host that expired an envelope and a peer that still holds
// it see no difference: the peer does not push it back (the store would
// refuse it with store.ErrExpired anyway) and nothing is re-sent on every
// session. If a peer lacks an ID we hold only as a tombstone, it asks for
// it and is answered "missing"; that costs one 33-byte answer per session
// until the tombstone expires (store.Params.TombstoneTTL), never a loop.
//
// The reconcile.Set of a session is a Snapshot (an in-memory copy of the
// IDs, O(log n) fingerprints), cached per mailbox while the store's
// counters for it (last sequence, floor, tombstones) are unchanged and for
// at most a minute, within Params.SnapshotCacheIDs. A larger mailbox is
// reconciled straight from the store (StoreSet, a scan per fingerprint).
//
// # Flow (ProtocolID = /meshnode/sync/1.0.0)
//
// One session per stream. I is the initiator, R the responder:
//
//	I ── hello, reconcile(Initiate) ─────────────────▶ R  checks ban, rate, policy,
//	I ◀──────────────── status(OK), reconcile(reply) ── R  limits, sessions; refusal:
//	I ── reconcile ──▶ R ── reconcile ──▶ …               status(code) and close
//	   (until both are done: reconcile's own rule; both sides learn the same
//	    difference: I's need = R's have, I's have = R's need)
//	I ── batch(wants[≤256], pushes=k), envelope×k ───▶ R  verifies and stores pushes
//	I ◀──────────── envelope | missing, one per want ── R  serves wants in order
//	   … more batches …
//	I ── done ────────────────────────────────────────▶ R
//	I ◀──────────────────────────────────── status(OK) ── R  then both close
//
// The first reconcile message travels with the hello, so an accepted
// session costs no extra round trip. The transfer is half-duplex: I writes
// a batch and its pushes, R reads all of it, then R writes its answers;
// neither side ever writes while the other does, so the stream cannot
// deadlock on flow control. A batch without wants is not answered; the
// final status tells I that R has read and stored every push (R stores
// each push before it reads the next frame). When SyncWith returns nil,
// both stores hold the union (up to the session limits).
//
// # Verification and strikes
//
// Every received envelope is opened with envelope.Open(b, max, &mailbox)
// (structure, mailbox tag, write signature) and its ID must be one the
// receiver expects: for I, exactly the ID of the want being answered; for
// R, an ID reconciliation announced as R's need (unless more were
// announced than R keeps, Params.MaxLearnt: then any verified envelope of
// the mailbox) and not received before in the session. Anything else
// (an envelope that fails to open or is not the one due, a frame of the
// wrong type or shape, a reconcile message that breaks reconcile's rules,
// a want repeated, more than a batch may carry) is a protocol violation:
// the stream is reset, nothing of it is stored, and the peer gets a
// strike. StrikesBeforeBan strikes within StrikeWindow ban the peer for
// BanFor, both ways (its sessions are refused with status.RateLimited;
// SyncWith to it fails with ErrBanned). Timeouts, resets and refusals are
// not strikes.
//
// # Bounds
//
// Everything a peer can make us do is bounded: each frame by the reader's
// limit for the frame due (reconcile messages by Reconcile.MaxMessageSize;
// a batch by MaxWantPerBatch IDs; envelopes by MaxEnvelopeSize); rounds by
// Reconcile.MaxRounds; the learnt difference by MaxLearnt IDs each way;
// the envelopes and bytes moved each way by MaxEnvelopes and MaxBytes per
// session (past them R answers wants with missing, I stops asking and
// pushing, and the session reports Stats.Truncated so the scheduler runs
// another one); the whole session by SessionTimeout and every wait for a
// frame by IdleTimeout (deadlines set right after open/accept); sessions
// by MaxIncoming, MaxIncomingPerPeer, MaxOutgoing, one per (peer, mailbox)
// at a time, and SessionRate per peer; memory by a reservation with the
// libp2p resource manager under ServiceName. The responder accepts the
// initiator's reconcile limits (sent in the hello) only if none exceeds
// its own.
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
// 2-core VM (AMD Turin-class, shared), go1.26.8, in-memory stores, real
// libp2p over loopback TCP, n = 100,000 envelopes of 1 KiB, d of them on
// one side only (half each), one session; from
// go test -run '^$' -bench Sync -benchtime 1x ./hostsync (the same as
// meshnode bench sync --json):
//
//	d      reconcile bytes  rounds  transfer bytes  seconds  target bytes  target rounds
//	0                  397       1               7    0.078        16,384            2
//	10              14,963       3          10,442    0.057        36,864            8.6
//	1,000          842,366       4       1,043,021    0.163     2,064,384            5.3
//
// against 3,200,000 bytes for exchanging all IDs. Seconds include building
// both sides' snapshots (most of the d = 0 time). Reconciling straight from the
// store (StoreSet, SnapshotCacheIDs = 0) costs the same bytes and rounds
// and 0.09, 0.24 and 0.56 s.
//
// # Byte layout (version 1)
//
// Every frame is a varint-delimited frame (package internal/wire) whose
// first byte is its type. Integers are big-endian; varints are minimal
// unsigned LEB128.
//
//	hello     = 0x01 ‖ version:u8 (=1) ‖ mailbox[32] ‖ limits      58 bytes
//	limits    = Branching ‖ IDListThreshold ‖ MaxMessageSize ‖ MaxRanges ‖
//	            MaxIDs ‖ MaxRounds                                 u32 each
//	status    = 0x02 ‖ code:u8 ‖ len:u16 ‖ message[len]             len ≤ 512
//	reconcile = 0x03 ‖ reconcile message (package reconcile's layout)
//	batch     = 0x04 ‖ pushes:uvarint ‖ n:uvarint ‖ id[32]·n       pushes, n ≤ 256
//	envelope  = 0x05 ‖ envelope encoding (package envelope's layout)
//	missing   = 0x06 ‖ id[32]
//	done      = 0x07
//
// Status codes are those of package internal/status. A batch's IDs are
// distinct; each is answered by exactly one envelope or missing frame, in
// order. A hello of another version is refused with status.Version.
package hostsync
