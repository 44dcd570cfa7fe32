// Package admission decides what an open host takes from whom, when peer
// IDs cost nothing (ARCHITECTURE §11): every limit that matters is per
// network prefix as well as per peer, capacity is reserved for
// established mailboxes, streams that send nothing are dropped first, new
// mailboxes come at a bounded rate, and every refusal has a reason and a
// metric.
//
// A departure from ARCHITECTURE §2: its table has no admission package.
// Admission is shared by relay, fetch, hostsync and node (and the
// resource manager under the host), and belongs to none of them: relay
// and fetch must not import each other, store knows nothing of peers or
// networks, and node only assembles. So it is a package of its own,
// below relay, fetch and hostsync and above store (whose admission
// budgets it applies): it imports store, envelope and internal packages
// only, and sees no plaintext.
//
// # Who counts as whom
//
// A remote is counted by the network prefix of its address (Key): /24 for
// IPv4 and /48 for IPv6 by default (Params.IPv4PrefixBits,
// IPv6PrefixBits). /24 is the network one attacker machine, a small
// office or a NAT sits in; /48 is one IPv6 site (ISPs hand a customer a
// /48 or /56, so a /64 key would let one customer rotate through 65,536
// of them). Loopback is exempt by default (as in libp2p's own limiter);
// per-peer and total limits still apply to exempt remotes. Keys come
// from the node's own transport: without a ResourceManager of the
// controller under the host (the simulator's in-memory network, whose
// addresses mean nothing), every remote is exempt.
//
// A mailbox is unknown (never stored here), new, or established (store:
// it has existed for Store.Admission.EstablishAfter and holds a history of
// EstablishMinEnvelopes envelopes; mailboxes the node hosts for its own
// groups or its allowlist count as established). A stream is privileged
// when its request names an established mailbox, or when its peer has
// recently relayed a valid envelope to one (Trust, for TrustFor):
// members of established groups.
//
// # Layers, outside in
//
//	connection  libp2p's connection limiter: ConnsPerIP per address,
//	            ConnsPerPrefix per prefix (resource manager)
//	stream      ResourceManager: StreamsPerPrefix inbound streams of one
//	            prefix over all protocols, from before protocol negotiation
//	service     Gate (relay, fetch, sync, directory): a stream is pending
//	            from accept until its first request arrives (RequestTimeout
//	            of relay/fetch/directory, HelloTimeout of hostsync), then
//	            active, privileged or general
//	gossip      relay.SubscriptionFilter: other peers' topic subscriptions
//	            pubsub tracks, per peer, per prefix and in all, with a
//	            share kept for established mailboxes (ReasonSubscriptions)
//	rate        per peer (relay, fetch), per prefix (AllowEnvelope,
//	            AllowPage) before verification; the total of envelopes
//	            into mailboxes that are not established (AdmitStore)
//	mailbox     new mailboxes per prefix and in total, or a proof of work
//	            (AdmitStore, Proof)
//	bytes       per prefix into new mailboxes (AdmitStore); per new
//	            mailbox, and the store's share reserved for established
//	            mailboxes (package store)
//
// # Stream gates
//
//	accept ─► pending ──request (≤ RequestTimeout)──► active: privileged | general
//	            │                                      └─ over a limit: Busy
//	            └─ a newer stream over MaxPending, PendingPerPrefix or
//	               PendingPerPeer: the oldest pending stream in that scope
//	               is reset (ReasonIdleEvicted)
//
// Opening never fails: a request arrives within a round trip, so the
// oldest pending streams are the idle ones, and resetting them (rather
// than refusing the newcomer) means idle streams from any number of peer
// IDs cannot lock anyone out. A sync session becomes active with its
// hello, which names its mailbox. Active streams are bounded in all
// (MaxStreams), per peer (PerPeer), per prefix (PerPrefix for general
// streams, PrivilegedPerPrefix for privileged ones), and general streams
// may not use the last ReservedStreams: those are for privileged ones. A
// relay session becomes active with its first request and is upgraded to
// privileged by a later request for an established mailbox. The fetch
// and sync services also reserve a general stream's memory (a page, a
// sync session's frames) at a lower priority than a privileged one's, so
// the resource manager keeps the rest of their memory for established
// mailboxes too.
//
// The resource manager's own service limits are set above what the
// gates admit (GateParams.Inbound), so the gates, not the resource
// manager, decide who waits.
//
// # New mailboxes
//
// The first envelope of a mailbox the host has never stored is admitted
// within NewMailboxRatePerPrefix of its prefix and NewMailboxRate in
// total. Once the total is spent, the host asks for a proof of work
// (status.ProofRequired with NewMailboxProofBits; 0 turns the option off
// and refuses with RateLimited instead): a nonce bound to the host's peer
// ID and the mailbox (Proof). The relay client computes it and sends the
// request again (relay request version 2 carries it), so a member
// creating a new epoch's mailbox on a host under attack pays a fraction
// of a second once, and an attacker pays it for every mailbox. Every
// refusal gives back the prefix's token, so asking for the proof costs
// the sender nothing of its allowance.
//
// # Refusals
//
// Refusals are answered with distinct codes (package internal/status):
// RateLimited (slow down), Busy (no capacity now: retry shortly or
// elsewhere), QuotaExceeded (full: another host, or much later) and
// ProofRequired. Each is counted by Reason in
// meshnode_admission_refusals_total, and the counts of the last
// PressureWindow say whether the host is under pressure (`meshnode
// status`).
package admission
