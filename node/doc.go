// Package node assembles a meshnode node: a libp2p host, gossipsub, the
// host store (package store), relay, fetch and anti-entropy sync (package
// hostsync), and — when started with a profile identity — the member
// layer: groups, messages, catch-up. Peers, bots and servers run the same
// code; Role only changes defaults.
//
// # The two primitives
//
// GroupHost is RelayMessageToGroup plus FetchNewMessagesForGroup. *Node
// implements it locally and Node.Remote(peer) returns a stub that calls a
// remote node over /meshnode/relay/1.0.0 and /meshnode/fetch/1.0.0, so a
// caller does not care who hosts a mailbox. Catching up on a group
// (CatchUp) asks hosts for /meshnode/fetch/1.1.0 first, which streams the
// pages after a cursor on one stream, and falls back to 1.0.0.
//
// # Flow of a message
//
//	send:    payload → sign (identity) → pad, encrypt (K_n) → envelope (signed by W_n)
//	         → own store → direct relay to every host named by the group
//	         → gossip on the mailbox topic
//	arrive:  gossip / direct relay / catch-up / sync → validate (size, mailbox,
//	         write signature) → host store (durable) → member loop
//	member:  own store, from a saved cursor per mailbox → decrypt, verify the
//	         author, check group, epoch and per-author sequence → member DB
//	         (encrypted at rest) → followers
//
// Hosts go first when sending because a host that receives an envelope by
// direct relay publishes it as its originator, and pubsub floods such
// messages to every subscriber; a gossip-first copy would only reach the
// host's mesh peers, which are still forming when a member has just joined.
//
// The node's own store is the source of truth for the member: a message is
// processed from the store in one member-DB transaction per page that also
// advances the cursor, so nothing is shown twice or skipped across crashes.
//
// # Replies, reactions, edits, deletes, files, search
//
// refs.go keeps references to messages (judged by groupstate's rules on
// arrival, or when a reference that came first finds its message); a
// listing folds them into each message's view. files.go sends a file as
// chunk envelopes in a mailbox of its own plus a manifest message, and
// downloads chunks only on request, into the own store, checking every
// chunk and the whole hash. search.go keeps a word index in the member
// database. offline.go opens a member database without the rest of the
// node, for reading while the daemon is stopped.
//
// # Finding the hosts of a mailbox, and what each way reveals
//
//   - Hosts named by the group (invite, group state): members learn them
//     from the invite; a host learns the transport peer IDs and IP
//     addresses of the members that fetch or relay, and the mailbox tags
//     they use, never the group, its name or the members' identities.
//     Members draw a fresh transport key at each start, so a host cannot
//     link a member's sessions by peer ID (their IP address still shows).
//   - Peers met on the mailbox topic: the topic name is a hash of the
//     mailbox tag (relay.TopicName), announced in pubsub subscriptions to
//     every connected peer. A connected peer that already knows the tag
//     can tell that we read or host that mailbox; one that does not, learns
//     an opaque name. Members' nodes host their own groups' mailboxes, so
//     topic peers are catch-up and sync sources too. A member reconciles
//     each mailbox with the hosts its group names and with the
//     Params.MemberSyncPeers members closest to it (XOR distance of peer-ID
//     hashes), within a byte budget per peer (Params.Sync.PeerRate): what
//     one host dropped or never had, equivocation evidence included,
//     spreads from member to member, and a host that comes back empty is
//     refilled by the members that sync with it.
//   - Hosts federated by bootstrap addresses (community servers that
//     replicate each other): they sync every mailbox they both hold; they
//     learn which mailbox tags the other hosts, nothing more.
//   - A DHT rendezvous on a value derived from the tag is not implemented:
//     it would publish "some peer hosts tag-derived value V" to a public DHT,
//     letting anyone who knows the invite find the hosts, and letting DHT
//     nodes see lookups for V (linkable to the tag by whoever knows it).
//
// Tags change every epoch, so none of these links epochs of one group.
//
// # Hosting for strangers
//
// Under an open or allowlist policy a node stores any mailbox someone
// relays to. Every envelope to store passes DeliverFrom, which admits it
// first (package admission: rates of new traffic and of new mailboxes per
// network and in total, a proof of work past the total, byte budgets per
// network), then the store applies its own budgets of new mailboxes;
// relay and fetch admit their streams through the same controller, which
// the libp2p resource manager feeds with each peer's network
// (hostadmission.go, transport.go). Mailboxes stored for others are
// hosted on disk only: their gossip topics are joined while they are
// active, at most MaxJoinedTopics of them (topics.go), so neither a
// restart with 100,000 of them nor a flood of new ones costs a goroutine
// and a topic each.
//
// # Managed groups
//
// A managed group's membership is a state chain (package groupstate,
// ARCHITECTURE §7) that every member holds next to its group record and
// checks event by event. The flow, file by file:
//
//	create   CreateGroup(Managed(policy)): the create event names this
//	         member its first manager (a bot on a RoleBot node); it is
//	         posted like a message, then the profile (manage.go)
//	join     the newcomer's NewKeyPackage: its node watches the welcome
//	         mailbox derived from the key package, on the key package's
//	         hosts and its bootstrap peers (welcome.go)
//	add      a manager's AddMember: add event (then a rotation under
//	         from-join history), then the welcome — the state chain and
//	         the epoch secrets the newcomer may read, sealed to the key
//	         package — posted through the group's hosts to the welcome
//	         mailbox; the newcomer opens it, stores the group and chain,
//	         announces its profile and catches up (welcome.go)
//	events   every member adds each state event to its chain: the author
//	         must have had the permission at the head the event extends;
//	         orphans wait for their parent, payloads of unknown authors
//	         wait for the chain to grow (managed.go)
//	rotate   removal, demotion, from-join add, promotion, policy or
//	         demand: the manager distributes epoch n+1's secrets through
//	         the group's key tree (a path update of about 2·log2 n wraps,
//	         one envelope; direct HPKE seals in groups of under 4 with no
//	         tree) in a key update posted in epoch n's mailbox; members
//	         open their part with their tree path, host and catch up the
//	         new mailbox; a removed member holds no key that opens
//	         anything (rotation.go, keytree.go)
//	requests a member with the manage role (or any member asking for its
//	         own removal) signs a request; the group's automatic manager
//	         — its bot, else the manager with the smallest key — queues
//	         it, authorizes it again against the current state and
//	         performs it with its own events (manage.go, bot.go)
//	managers AddManager and TransferManager: the keys rotate, which hands
//	         the key tree's seed to the new manager (and the write key to a
//	         reader) (manage_ops.go, keytree.go)
//	hosts    SetHosts posts set-hosts to the old and the new hosts; every
//	         node then relays to, fetches and syncs from the hosts its
//	         chain names (manage_ops.go, followed on each manager-loop
//	         pass)
//	leave    LeaveGroup: a removal request to the automatic manager (or,
//	         on that manager, its own removal; the next one rotates);
//	         the only manager of a group with others must hand over
//	         first; then the node forgets the group (manage_ops.go)
//	admit    every payload names its author's state head and is judged
//	         there (admission.go, groupstate.Chain.AdmitPayload):
//	         membership, role, the seen set of any removal since; its
//	         number in its membership's sequence space (a second payload
//	         with one number and other content is an equivocation: one
//	         notice, evidence passed on, evidence.go); its sent time
//	         bounded; every refusal and flag in the group's rejection log
//	         (rejections.go)
//	splits   a head on another branch is a split, recorded once with its
//	         evidence (two events the manager signed) and shown as a
//	         KindSplit notice; an unknown head of a closed epoch is its
//	         author's fault, never the manager's (managed.go)
//
// Member-database records of managed groups are listed in memberdb.go.
//
// # Concurrency
//
// Node.mu guards the hosted set and listeners and is never held while
// calling out. member.mu guards the member's groups and is taken before
// anything the node owns; the contacts' locks come before it (pollMu,
// then connState.mu, then member.mu: see connState). Envelopes are processed from the
// own store under member.mu by the member loop (runMember), by catch-ups
// (in the background, at most one per group) and by manager operations,
// which first process what the own store holds for their group
// (settleLocked) so they build on the latest state. The member loop's
// first pass, which records own envelopes a crash left stored but
// unrecorded, runs before the manager loop starts, and sends wait for it.
package node
