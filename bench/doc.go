// Package bench measures the hosting core end to end — real nodes, real
// libp2p over TCP loopback, Badger on disk — and compares each rate with a
// limit measured in the same run on the same machine, so a figure says how
// close the system comes to what its unavoidable work allows rather than
// how fast the machine happens to be. `meshnode bench ingest|fetch`
// print the results (one JSON object with --json).
//
// # Ingest
//
//	writer 1 (member node) ─┐  direct relay protocol: one session per
//	writer 2 (member node) ─┼─ writer, InFlight requests pipelined on it
//	   ...                  │
//	writer W (member node) ─┘──► host node: open (verify) ─► store.Put ─► answer
//	                                          group commit, fsync before answering
//
// N envelopes of Size bytes (the whole encoding) are signed beforehand,
// split evenly over W writers, one mailbox per writer. Each writer is its
// own node and libp2p host (TCP, Noise, yamux, node's resource manager)
// and keeps InFlight requests outstanding on one relay.Session stream to
// the host (protocol /meshnode/relay/1.2.0: requests pipelined, each
// answered after its durable store, in order; the next request goes out
// as soon as an answer comes back). With IngestParams.StreamPerEnvelope it
// opens a stream per envelope instead (relay.Send via node.Remote,
// protocol 1.0.0), which costs the host and the writers about twice the
// CPU per envelope. The host runs node.DefaultParams(RoleHost) with an
// open hosting policy, per-peer rate limits off (they cap peers by policy;
// this measures capacity), and the on-disk store defaults without
// retention, value-log GC and quotas (background jobs at arbitrary points
// of the measured window; quotas that a large N would hit). After the
// run the host is closed and its store reopened from disk: it must hold
// exactly the N envelopes. Runs (default 5) pairs are made: the limit
// measured alone, then the network run into a fresh host store, so both
// sides of each pair's ratio sample the same stretch of the machine's
// time. Rate, Limit and Ratio are the medians of the runs, and Spread says
// how their ratios spread (min, max, interquartile range): on a shared
// machine single runs swing by ±20%.
//
// limit = N / (verify_seconds + store_seconds), the host's two unavoidable
// costs per envelope measured alone and added up:
//
//   - verify: envelope.Open (structure, ID and mailbox hashes, Ed25519) of
//     every envelope's bytes on all cores;
//   - store: store.Put of every envelope into a fresh on-disk store with
//     the host's parameters, from W×InFlight goroutines.
//
// The store bound uses store.Put, not a raw Badger WriteBatch: Put is the
// least the host must do for an envelope to be durable and servable (ID
// index, arrival record, mailbox state, dedupe, one fsync per group
// commit), so it is what the network path should be compared with. A raw
// WriteBatch would measure a different schema and acknowledge nothing per
// envelope. It runs with as many concurrent callers as the network run
// has requests outstanding, because group commit batches what is queued:
// more callers would flatter the bound with batches the network run
// cannot form. For comparison, local_pipeline_rate runs Open then Put per
// envelope from the same number of goroutines, with no network.
//
// # Fetch
//
// N envelopes of Size bytes are stored in one mailbox on a host node
// (store on disk, filled by concurrent Puts). A member node fetches all
// of them with fetch.Client.CatchUp (protocol /meshnode/fetch/1.1.0: one
// request, then the host sends page after page on one stream; default
// page bounds), Runs times with signature verification off (a member),
// then once with it on (a host that will re-serve what it fetches: Host). Bytes counts what the
// host sent: each page's header frame and its envelope frames. Each
// catch-up must return every envelope once, in the host's arrival order
// (read locally beforehand). The limit is a transfer of the same number
// of bytes over one raw libp2p stream between the same
// two hosts (the benchmark's own protocol, 32 KiB writes), in
// envelopes/s. Runs (default 5) pairs of a catch-up and a raw transfer
// are made, alternating which goes first (C R, R C, C R, ...), so both
// sides of each pair's ratio sample the same stretch of the machine's
// time; Rate, Limit and Ratio are the medians, Spread the spread of the
// ratios. Every run starts from a collected heap (runtime.GC, as before
// each run of a Go benchmark), so none pays for the garbage of the one
// before, and the benchmark's own copies of the envelopes are garbage by
// then (the decode and verify breakdown is measured before the runs):
// each run's allocations cost the collections they would cost in a node.
// CPU profiles (FetchParams.CPUProfile, RawCPUProfile) come from three
// more runs of each kind after the measured ones.
//
// # Sync
//
// Two libp2p hosts on TCP loopback, each with a hostsync service over its
// own store (in memory, or on disk with the host's durable parameters),
// for every n, d and store kind: both stores are filled afresh with n - d
// common envelopes of one mailbox and half of d others each, and one
// session runs from the first host. Reported per case: reconciliation
// bytes (hello, status and reconcile messages, both ways) and rounds,
// transfer bytes, the session's time (and its reconciliation part), and
// the peak Go heap during the session over the heap before it (both
// hosts share the process). Both stores must hold all n envelopes after.
// SyncResult.Goals checks the targets on reconciliation.
//
// Measured (meshnode bench sync --json --both --n 100000; 2-core VM shared
// with other sessions, load average 16–20; 1 KiB envelopes; seconds are
// the whole session and include scheduling delays of that load):
//
//	store   d       reconcile B  B/diff  rounds  transfer B   seconds
//	memory  0             1,128       –       1           7     0.030
//	memory  1             1,158   1,158       2       1,034     0.003
//	memory  10            1,402     140       2      10,277     0.059
//	memory  1,000        61,384    61.4       3   1,027,007     1.37
//	memory  10,000      602,020    60.2       2  10,270,007     9.97
//	disk    0             1,128       –       1           7     0.32
//	disk    1,000        61,384    61.4       3   1,027,007    11.0
//	disk    10,000      602,020    60.2       2  10,270,007    80.1
//
// Every case met its byte and round targets (the first version of the
// protocol spent 842,366 bytes in 4 rounds at d = 1,000).
//
// # Attack
//
// The four attacks of issue 14, and two on the sync protocol and on
// gossip, against an open host, each while members
// keep being served. The host's store is seeded first (Mailboxes
// mailboxes of one 256-byte envelope, and one established mailbox per
// member with History envelopes of 1 KiB, all stored two days earlier);
// then the host node starts in a process of its own (this executable
// again, RunChild), so that the RSS and goroutines it reports every 100 ms
// are the host's alone; its start on the seeded store is the restart
// figure. It runs node.DefaultParams(RoleHost) with an open policy, a
// store quota of GlobalQuota (64 MiB, so store-full is reachable in
// seconds), a pressure window of 5 s, and loopback counted like any
// network: members connect from 127.0.1.0/24, and the attackers of each
// attack from a network of their own (127.0.10.0/24 for the first,
// 127.0.11.0/24 for the next, …), one address per throwaway peer ID, so
// what one attack spent of its network's allowances does not hold back
// the next.
//
//	slowloris   17 peer IDs × 4 idle fetch 1.1.0 streams, 9 × 32 idle relay
//	            1.2.0 streams, reopened as soon as the host resets them
//	sync        16 peer IDs × 2 idle sync 2.0.0 streams and 2 slow sessions
//	            (a hello, then nothing), reopened as soon as the host resets them
//	subscriptions 24 peer IDs, gossipsub peers of the host, announcing new
//	            mailbox topics, 500 per RPC, as fast as the host reads them
//	mailboxes   10 peer IDs creating new write keys as fast as they can
//	flood       10 peer IDs relaying valid envelopes as fast as they can
//	            (stored_per_second: what the network's rate lets through)
//	store-full  10 peer IDs filling new mailboxes with 32 KiB envelopes
//	            (it runs after flood: it leaves the store past the share
//	            open to new mailboxes)
//
// During each attack (Duration) every member catches up on its whole
// mailbox (fetch 1.1.0) and sends one envelope (relay 1.0.0, as
// node.Remote does), over and over; the ratios count successes (a
// catch-up must return at least everything acknowledged so far). After
// each attack the harness times how soon a member is served again and
// how soon the host has refused nothing for its pressure window. At the
// end the host restarts on everything the attackers left, and every
// envelope acknowledged to a member must still be served (else
// ErrMismatch).
//
// # Soak
//
// Soak (meshnode bench soak) measures memory, not speed: a host and two
// members, each a `meshnode run` process of its own with the
// configuration init writes for its role, one member sending a steady
// rate to a group the host keeps. Each process's RSS, and its anonymous
// and file-backed parts, are read from /proc at every sample; the result
// gives the slope of the second half of the run, which a bounded process
// brings to about zero (soak.go).
//
// # Breakdowns
//
// Each result says where the time went, with what can be measured
// honestly: group commits (count, mean size, time in Commit) from the
// host store's metrics, request latency percentiles, the process's CPU
// time over the run (host and clients share the process), and the parts
// of a fetch measured alone (store pages, decode, verify, raw transfer).
package bench
