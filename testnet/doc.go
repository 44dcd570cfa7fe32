// Package testnet is the simulator researchers run to compare how groups
// should be hosted: by an always-on server, by a bot, by members' own
// nodes, or by a mix. It runs N real meshnode nodes (package node: the
// real relay, fetch, hostsync, stores and member code, never a model of
// them) in one process over libp2p's in-memory mocknet, drives a seeded
// schedule of traffic, churn and partitions through them in wall-clock
// time, and measures what members see.
//
// # Flow
//
//	Scenario (JSON or YAML, strict) ──Validate──▶ NewSchedule(seed) ──▶ for each strategy:
//	  setup:   mocknet hosts → simHost wrappers → node.New (in-memory stores)
//	           → links between nodes that share a group → CreateGroup/JoinGroup
//	             (managed: CreateGroup(Managed) at the manager, then per member
//	             NewKeyPackage → manager's AddMember → welcome via the hosts)
//	           → Follow on every member, baseline gossipsub on every node
//	  warmup:  meshes form
//	  traffic: events at their offsets: send (per-member queue, Node.Send),
//	           offline/online (links down/up; on return the member redials its
//	           groups' hosts), partition/heal (links across sides down/up),
//	           remove/rotate (per-group queue at the manager: RemoveMember,
//	           Rotate)
//	  final:   everyone online, partitions healed, every member CatchUp()s
//	           each group until all is delivered or the catch-up limit
//	  measure: collector → StrategyResult; Write → results.json, report.html
//
// Strategies differ only in which nodes a group names as hosts
// (groupstate Hosts): server = the "hosts" community hosts (RoleHost,
// PolicyOpen) shared by every group; bot = one bot (RoleBot) per group,
// round-robin over "bots"; peers = the first "peer_hosts" members of the
// group; hybrid = the community hosts plus those members. Every member
// node also hosts its own groups' mailboxes, as in production.
//
// # Scenario files
//
// Load reads JSON (Parse) or, for names ending in .yaml or .yml, YAML
// (ParseYAML): the same keys (the struct tags name both), over
// DefaultScenario, with durations as strings ("1.5s"). Both refuse
// unknown keys, trailing data and wrong types, naming the key (YAML: and
// its line); Validate then checks the values and the memory estimate.
// The command-line flags give lists in short text forms: ParseGroups
// ("10x20,1x100"), ParsePartitions ("5s/10s/0.5,20s/5s"), ParseManageOps
// ("8s,20s/1": at 20 s in group 1) and Every (a periodic operation).
//
// # Managed groups
//
// With "managed", "removals" or "rotations", every group is a managed
// group (groupstate.DefaultPolicy: shared history, no periodic rotation).
// Its manager is its creator, or under the bot strategy its bot, which
// then runs with an identity. Removals pick a member that is neither the
// creator nor one of the first peer_hosts members (the same schedule
// serves every strategy, and those members host the group under peers and
// hybrid); the removed member sends nothing to the group afterwards. An
// operation due while the creator is offline waits for its return.
//
// # What the network models
//
//   - Latency and bandwidth: mocknet's per-link options. Every link has the
//     same latency (one way, added to each write) and bandwidth (bytes per
//     second per link, shared by both directions and every stream on it).
//     A node's own access-link capacity is not modelled: a host with 200
//     links has 200 times the bandwidth of one.
//   - Jitter: each write on a stream gets a uniform extra delay in
//     [0, jitter]; writes keep their order (a write is never delivered
//     before the previous one), as over TCP or a QUIC stream.
//   - Loss: streams stay reliable and ordered, as over TCP/QUIC. Each
//     1,400-byte segment of a write is lost with probability "loss"; each
//     loss delays the write by a retransmission timeout, max(200 ms,
//     3 × latency), doubling while the same segment keeps being lost.
//     Head-of-line blocking follows from the ordering. Connections never
//     break because of loss, and congestion control is not modelled.
//   - Partitions: links between the two sides are removed and their
//     connections closed; infrastructure nodes are always on side 0 and a
//     "split" fraction of the members (drawn from the seed) with them. On
//     heal, links come back and every member redials its groups' hosts.
//   - Churn: a member going offline loses every link (its connections
//     close; dials fail) but its node keeps running with its state, like
//     a laptop that lost its network. Closing and restarting the node
//     would lose its in-memory stores, which no real member does. On
//     return it redials its groups' hosts (what an application does on a
//     network change; the node alone would redial only at its next
//     background catch-up) and the node's own catch-up does the rest.
//   - Limits: the nodes run on mocknet hosts, which have no resource
//     manager and no connection manager, so the node's MemoryLimit,
//     FDLimit and connection watermarks do not apply; a server with a
//     thousand members keeps a thousand connections. The node's own
//     protocol limits (relay and fetch rate limits, sizes) do apply.
//   - Not modelled: NAT, connection setup cost (mocknet has no security
//     or stream multiplexer handshakes, so bytes are application bytes:
//     gossipsub, relay, fetch and hostsync frames), CPU limits of distinct
//     machines (all nodes share this process's cores, so a loaded machine
//     shows as latency), clock skew, disk.
//
// # Reproducibility
//
// NewSchedule is a pure function of the scenario: groups, churned members,
// churn periods, removed members, every send (time, group, author) and
// partition sides come from PCG streams of the seed, one stream per aspect, so changing the
// churn does not move the groups or the traffic. Timing inside the run is
// wall-clock and therefore not reproducible to the millisecond; the same
// seed gives the same schedule, not the same latencies.
//
// # Metrics
//
// A pair is (message, member of its group other than the author).
// delivery_ratio counts pairs whose member stayed online from the send to
// the deadline, delivered if shown (node.Follow) within it;
// eventual_delivery_ratio counts every pair against the members' message
// databases after the final catch-up. latency_ms is send → shown for pairs
// delivered within the deadline. catchup_ms measures, for every return of
// a member during traffic, the time until it showed every message of its
// groups sent before its return that it had not shown yet. Gaps are seen
// per (member, group, author): detected when a message is shown while an
// earlier one of the same author is missing, filled when a message is
// shown after a later one. duplicates.stored sums the nodes'
// meshnode_node_envelopes_duplicate_total. bytes are counted on every
// stream the node or the baseline opens (libp2p's identify is excluded).
// storage is store.Usage of each node a group names as host.
//
// In managed groups the recipients of a message are the members not
// removed at or before its send (schedule offsets). managed.key_catchup_ms
// is, per removal or rotation, the time from the manager's operation
// returning (for a member offline then, from its coming back online)
// until the last remaining member's node was seen in the new
// epoch (it showed the key update's event and GroupInfo reported the
// epoch). forward_secrecy.violations counts messages of a removal's epoch
// or later that the removed member showed (Follow) or holds (its message
// database at the end); it must be 0. Messages sent after the removal by
// a member still in the old epoch (its node had not received the key
// update) are readable by the removed member by design and counted as
// old_epoch_shown.
//
// The baseline is plain gossipsub over the same nodes, links and
// connections (baseline.go): a second gossipsub router on every host,
// subscribed to one topic per group on the group's members and hosts; each
// send also publishes the same text there. The nodes a group names as
// hosts keep every topic peer in their mesh (meshnode's hosts publish
// what they are relayed as originators, which floods it to every
// subscriber); with gossipsub's default degree the star a group's
// connections form left most members to IHAVE gossip. Loss-free and
// churn-free it delivers everything; the difference in latency is
// meshnode's own cost (sealing, relaying to hosts, storing, processing).
//
// # Real processes and Shadow
//
// RunProcesses runs the same scenario as real daemons: per node a home
// (daemon.Init), one `meshnode run` process per online period (churn stops
// it with SIGTERM and starts it again on the same home) and one
// `meshnode testnet agent` process (agent.go) that drives the daemon
// through its control API along the schedule, which it draws itself from
// the plan's scenario and seed, and logs events as JSON lines; agents
// exchange hosts' addresses and invites through files (plan.go). Collect
// (replay.go) feeds those logs to the same collector as the in-memory
// simulator. ExportShadow (shadow.go) writes the same plan as shadow.yaml
// and network.gml for the Shadow simulator; its test runs the exported
// commands as plain processes on loopback. Not in processes mode:
// partitions (refused), the link model (loopback TCP), the gossipsub
// baseline, bytes and duplicate counts (not_measured), managed groups
// (refused for now).
//
// # Repetitions and comparisons
//
// WithRuns(n) runs the scenario on n seeds derived from its own
// (DeriveSeed) and summarises every figure as an Estimate: mean and 95%
// confidence interval from Student's t (aggregate.go). Compare tests the
// difference of two results' figures with Welch's t-test (compare.go).
//
// # Memory and scale
//
// Each node has its own in-memory Badger host store and member database
// (1 MiB memtables; store.InMemoryParams, node.Params.MemberMemTableSize),
// gossipsub, relay, fetch and hostsync. Measured on the 2-core, 24 GiB
// development machine (Go heap and stacks after setup, divided by nodes):
// see the Simulator section of README.md for the figures and the largest
// N reached. Validate refuses a scenario whose estimate (memPerNode per
// node plus every stored copy of every message) exceeds MemAvailable minus
// 1 GiB.
package testnet
