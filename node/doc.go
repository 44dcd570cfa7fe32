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
// caller does not care who hosts a mailbox.
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
//     topic peers are catch-up and sync sources too.
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
// # Concurrency
//
// Node.mu guards the hosted set and listeners and is never held while
// calling out. member.mu guards the member's groups and is taken before
// anything the node owns. The member loop (runMember) is the only
// goroutine that processes arrivals; catch-ups run in the background, at
// most one per group.
package node
