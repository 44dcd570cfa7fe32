// Package groupstate holds what a member knows about its groups and the
// formats only members can read: the Group record, invites, the encrypted
// message payload with its padding, per-author sequence tracking, and for
// managed groups (ARCHITECTURE §7) the state chain, key updates, welcomes
// and manager requests. It is
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
//	         managed groups: Chain.AdmitPayload (membership, role, removal
//	         seen sets, head); then SeqTracker.Observe(membership, seq):
//	         new, duplicate, gaps; a duplicate number with other signed
//	         content (Payload.Digest) is an Equivocation; CheckSentTime
//	         and OrderTime bound the claimed sent time.
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
//	         6 request, 7 reply, 8 reaction, 9 edit, 10 delete (refs.go),
//	         11 file (file.go)
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
//	per epoch ascending: 8 epoch ‖ 1 flags ‖ 32 R ‖ [32 W] ‖ 32 WPub ‖
//	version 2 only: 1 flags ‖ [2+L key tree path] ‖ [41 tree seed]
//
// # Sequence tracker
//
//	1 version ‖ 4 author count ‖ per author ascending: 32 key ‖ 4 range
//	count ‖ ranges of seen sequence numbers (8 first ‖ 8 last), disjoint,
//	not adjacent, ascending
//
// The key is a membership's sequence space: in a managed group
// MembershipKey (SHA-256 of "meshnode/v1/membership" ‖ author ‖ the event
// that added it); in an open group OpenSeqSpace (the same hash over the
// random membership the payload's StateHead carries, or the author's key
// when it is zero). A member removed, or gone, and added or joining again
// starts again from 1, and nothing it sends is taken for a replay of its
// earlier membership.
//
// # Sent time
//
// A sent time is its author's word. CheckSentTime flags one more than
// MaxClockSkew (10 minutes) after its reception or before its author
// joined (the add event's time) or the group was created; OrderTime places
// a message at its claimed time clamped between its causal parents, its
// author's previous message, its joining, and its arrival — so neither a
// message dated 2099 nor one dated 2001 moves to the end or the start.
//
// # Equivocation
//
// Two payloads validly signed by one author, of one membership, with one
// sequence number and different signed contents (Digest: SHA-256 of
// "meshnode/v1/payload-digest" ‖ the signed fields — re-sealing one
// payload in another envelope changes nothing) prove that the author
// showed members different messages:
//
//	evidence = 1 version ‖ 4+LA payload A ‖ 4+LB payload B, A < B bytewise
//
// ParseEquivocation verifies both signatures and refuses anything that
// proves nothing (a bad signature, two copies of one message, two authors,
// numbers or groups); SameMembership tells a rejoiner's two memberships
// apart.
//
// # Managed groups: the state chain
//
// A managed group's membership is a hash chain of signed state events
// (create, add, remove, set-role, set-policy, set-hosts, rotate,
// add-manager, transfer-manager). Each names the head it extends (Parent),
// its height (Seq), time, author and kind; its ID is
// SHA-256("meshnode/v1/state-event-id" ‖ encoding) and the latest ID is the
// state head every payload carries. Apply(state, event) judges the author's
// permission in the state the event extends, like Matrix's auth events: only
// managers add, remove, set roles, policy and hosts and rotate; any member
// may remove itself; the chain's only create is its first event; a removed
// member's later events are refused; the last manager cannot leave or step
// down. Rejected events change nothing. A member's membership is the event
// that added it; the chain indexes, per member, the main-line events that
// changed its membership or role, so AdmitPayload judges a payload at the
// head it names without replaying the chain: 3 to 4 µs in a chain of 1,000
// members, whether the payload names the head, a head 500 events back, or
// is a removed member's judged by its seen set (BenchmarkAdmitPayload, 2
// shared cores under load).
//
//	event = 1 version ‖ 16 group ID ‖ 32 parent ‖ 8 seq ‖ 8 time (Unix ms) ‖
//	        32 author ‖ 1 kind ‖ 4+B body ‖ 64 signature
//	        (keymgmt layout, context "meshnode/v1/state-event")
//	create: 1+N name ‖ policy ‖ hosts ‖ 32 WPub_0 ‖ 2+L creator public identity ‖
//	        1+N nick ‖ 1 flags (bit 0: bot)
//	add:    2+L key package (binary, signed by the newcomer, unexpired at the
//	        event's time) ‖ 1 role (1 read, 2 write, 3 manage) ‖ 1 flags
//	remove: 32 target ‖ v1: [8 sequence limit] ‖ v2: seen set
//	set-role: 32 target ‖ 1 role ‖ v1: [8 sequence limit] ‖ v2: seen set
//	add-manager, transfer-manager: 32 target
//	seen set = 8 upto ‖ 2 N (≤ 128) ‖ N × (8 first ‖ 8 last)
//	set-policy: policy; set-hosts: hosts; rotate: 8 new epoch ‖ 32 WPub
//	policy = 1 history ‖ 8 rotation period (s) ‖ 8 rotate-after (messages)
//
// Version 2 (EventVersionSeen) is used exactly for a remove or a
// demotion from write that carries a seen set: the target's sequence
// numbers its author had seen — 1..upto and the listed ranges, each at
// least two above what precedes it. A payload of the target naming a head
// from before the event is admitted only if its number is in the set
// (Event.Admits), so a removed member can neither post after its removal
// nor back-fill numbers it skipped, whatever head or time it claims; a
// message in flight at the removal is refused by every member that learns
// of the removal first (the node marks it where it was already shown). A
// version-1 sequence limit L admits every number below L; every other
// event is still encoded as version 1.
//
// A Chain keeps every event it accepted. The main line is the first valid
// branch; an authorized event extending anything but the head is a fork: the
// two events on one head are ForkEvidence that any member can check and
// show (1 version ‖ 2+L event ‖ 2+L event). Events whose parent is not yet
// known wait (up to 1024) and apply when it arrives. CheckHead compares the
// head in another member's payload with the chain: a head on a branch we
// hold is a split, with the two signed events as evidence (ErrSplit); a head
// of a closed epoch (one we rotated out of, so we hold all its events) that
// we do not hold is the payload author's word alone — its fault, never a
// split (ErrForeignHead); an unknown head of the current epoch may just be
// an event not yet received (ErrUnknownHead).
// Stored chain: 1 version ‖ 16 group ID ‖ 4 count ‖ count × (2+L event), in
// accepted order; loading re-verifies everything.
//
// Rotation is due after a remove, after a demotion from write, after an add
// under from-join history (State.RotationDue, cleared by rotate), and by
// policy every RotateEvery or RotateAfter messages: NeedsRotation. The
// automatic manager leaves a membership rotation another (still present)
// manager caused to that manager for AutoRotateGrace — it rotates in the
// same operation, and two rotations on one head fork the chain
// (AutoRotationDue; State.DueBy, DueAt).
//
// # Key updates
//
// A rotation to epoch n+1 draws fresh secrets, signs a rotate event and
// distributes the secrets to every member of the resulting state in one
// key_update message posted in epoch n's mailbox, cut into parts that
// each fit a KindKeyUpdate payload in one 64 KiB envelope and each carry
// the rotate event. Removed members are not in the state, so get nothing.
// Chain.RotateTree picks one of three modes (RotationMode):
//
//   - path (ModePath): through the group's key tree (below), replacing
//     the nodes the layout marked: about 2·log2 n symmetric wraps for a
//     removal or a from-join add, two (the roots) for a periodic rotation;
//   - full (ModeFull): a new tree seed, every member's leaf key by HPKE,
//     every node key wrapped: when the rotating manager holds no seed, a
//     direct rotation dropped the tree, or a member who could know the seed
//     (a manager at any time since it was drawn) was removed or made a
//     reader;
//   - direct (ModeDirect, Chain.Rotate): the secrets sealed with HPKE to
//     each member, when the tree must be set up afresh and the group has
//     fewer than TreeMinMembers (4) members, or TreeMinMembersPQ (2) when
//     a member's profile is X-Wing (its seals are over a kilobyte each).
//
// Direct parts (version 1; slot = hash of group ID ‖ n+1 ‖ member key,
// HPKE info = group ID ‖ n+1 ‖ head after the rotate ‖ member key, readers
// get R and WPub only):
//
//	part = 1 version (0x01) ‖ 2 index ‖ 2 count ‖ 2+E rotate event ‖
//	       4 N ‖ N × (8 slot ‖ 2+L wrapped), strictly ascending
//
// # Key tree
//
// A managed group has two key trees (keymgmt's package doc has the
// arithmetic, keys, wraps and seals): the writers' (write and manage
// roles) and the readers'. The writers' root key wraps the epoch's
// secrets with W, the readers' root key without: a reader never receives
// the write secret, not even by a wrap it could open. Every member holds
// its path (Group.Tree); the managers hold the seed every key derives
// from (Group.TreeSeed; the group's creator draws it), so any manager
// rotates, a new manager receives 32 bytes, and a bot restart loses
// nothing (the record is stored encrypted).
//
// The layout — who sits at which leaf, which nodes the next rotation
// replaces — is a pure function of the chain's main line, kept by Chain
// (treelayout.go), so nothing about positions travels: a member is placed
// at the blank leaf with the smallest index of its role's tree (the tree
// doubles when full and its new root is marked); a removal marks the
// ancestors of the vacated leaf; a role change between the trees vacates
// and places, marking both paths; an add under from-join history marks the
// newcomer's path too (it cannot read back: every key on its path is new
// and wrapped nothing before) and its leaf gets no wrap (its welcome,
// made after the rotation, carries the path). A rotate replaces the marked
// nodes: each node's version is the rotate event that last replaced it,
// and its key HKDF(seed, tree ‖ node ‖ version).
//
// A member opens its part by walking its path from the leaf up (its leaf
// and role at the rotation come from its chain): a node wrapped under the
// child below it opens with that child's key, the others keep the key it
// held; the root's key opens the epoch secrets. A removed member holds no
// key under which any new key is wrapped (every node it knew was
// replaced). A manager opening another manager's rotation gets its own
// path the same way, and a seed sealed to its leaf.
//
// Tree parts (version 2). Large rotations (a full one) are split by
// subtree: a part serves the members under its scope node and holds every
// wrap under a node in that subtree or on its path to the root, its
// tree's secrets and the seals of its leaves, so each member needs one
// part. HPKE infos and AAD contexts are group ID ‖ n+1 ‖ rotate event ID
// ‖ tree ‖ node:
//
//	part  = 1 version (0x02) ‖ 2 index ‖ 2 count ‖ 2+E rotate event ‖
//	        1 mode (1 full, 2 path) ‖ 1 writers' depth+1 ‖ 1 readers' depth+1 ‖
//	        1 scope tree (0xff both) ‖ 4 scope node ‖
//	        2 S ‖ S × (4 leaf ‖ 2+L seed sealed to a manager) ‖
//	        4 L ‖ L × (1 tree ‖ 4 leaf ‖ 2+L leaf key sealed to its member) ‖
//	        4 N ‖ N × (1 tree ‖ 4 child ‖ 72 parent key wrapped under the child) ‖
//	        1 flags ‖ [2+L writer secrets] ‖ [2+L reader secrets]
//
// wraps strictly ascending by (tree, level, node), so a member reads them
// bottom-up; depths at most 16 (keymgmt.MaxTreeDepth), checked before
// anything is allocated. Handover: the rotation after a member became a
// manager seals the seed to it (the node rotates on every promotion to
// manager while it holds the seed); a full rotation seals the new seed to
// every manager, the rotating one too, so it recovers the seed from its
// own key update after a crash.
//
// Measured with BenchmarkRotation (a third of members read-only; a path
// update has no HPKE, so the members' suites do not change it; 2 shared
// cores at load average 1.8–2.0), -benchtime=20x:
//
//	members  op        manager  wraps  key update  envelopes    member
//	10       remove    0.31 ms  7      0.87 kB     1 (2 kB)     0.08 ms
//	10       add       0.42 ms  5      0.71 kB     1 (2 kB)     0.07 ms
//	100      remove    0.36 ms  15     1.48 kB     1 (2 kB)     0.08 ms
//	1,000    remove    0.49 ms  21     1.94 kB     1 (8 kB)     0.08 ms
//	10,000   remove    0.41 ms  27     2.41 kB     1 (8 kB)     0.07 ms
//	10,000   add       0.45 ms  25     2.25 kB     1 (8 kB)     0.06 ms
//	10,000   periodic  0.24 ms  2      0.48 kB     1 (2 kB)     0.07 ms
//
// (wraps counts the epoch secrets' wraps under the roots too; add is from
// -join history), against direct seals at 10,000 members: 1.4–2.2 s,
// 1.46 MB in 23 envelopes. BenchmarkRotationCrossover sets
// TreeMinMembers (4 for X25519 members, 2 with an X-Wing member: see
// there). The costliest tree rotation, a new seed after a manager's
// removal (BenchmarkRotationNewSeed, -benchtime=1x, load about 3), seals
// every leaf key with HPKE: at 10,000 members 0.72 s, 2.4 MB in 41
// envelopes with X25519 and 1.5 s, 13.5 MB in 316 envelopes with X-Wing;
// a member finds and opens its part in 3.3 and 14.9 ms (it parses the
// parts before its own).
//
// Post-quantum by default costs (BenchmarkKeyPackageSuites,
// BenchmarkWelcomeSuites, load about 1.8): a key package is 1,358 bytes
// in X-Wing against 174 in X25519 (text 1,822 against 244 characters;
// made in 22 against 18 µs, parsed and verified in 117 against 83 µs);
// the add event carrying it still fits the 2 kB bucket (a 2,189-byte
// envelope either way). A welcome carries the chain's main line, so its
// members' key packages: 18.6 against 4.5 kB at 10 members (one envelope
// each), 156 against 36 kB at 100 (3 envelopes against 1), 1.53 MB
// against 0.35 MB at 1,000 (24 against 6); the manager makes it in 28
// against 9 ms and the newcomer opens it in 0.24 against 0.15 s at 1,000.
//
// # Welcomes
//
// A newcomer shares a key package. WelcomeMailbox derives from it (HKDF,
// labels "meshnode/v1/welcome/read-key" and ".../write-key") a mailbox and
// its write key, so the manager posts and the newcomer fetches through the
// group's hosts, which see an ordinary mailbox. Anyone holding the key
// package can find, watch and post to that mailbox; only the newcomer can
// open the welcome. The welcome (signed by a manager: context
// "meshnode/v1/welcome") is sealed with one HPKE seal to the key package's
// key (info "meshnode/v1/welcome/seal" ‖ SHA-256(key package)) and cut into
// frames, one per envelope:
//
//	welcome = 1 version ‖ 16 group ID ‖ 8 epoch ‖ 32 head ‖ 32 SHA-256(key package) ‖
//	          32 author ‖ 4 S ‖ S × (8 epoch ‖ 1+L epoch secrets) ‖
//	          4 E ‖ E × (2+L event) ‖ [version 2: 1 flags ‖ [2+L tree path] ‖
//	          [41 tree seed]] ‖ 64 signature
//	frame   = 1 version ‖ 16 random tag ‖ 2 index ‖ 2 count ‖ chunk (full but the last)
//
// It carries the whole main line (the newcomer checks every permission from
// the create itself), the current secrets for the newcomer's role and,
// under shared history, read-only secrets of earlier epochs; under from-join
// none, and the rotation the add made due must come first. Version 2 adds
// the newcomer's key tree path (checked against the chain's layout) and,
// for a newcomer with the manage role, the tree seed.
//
// # Manager requests
//
// A manager asks an always-on manager (the bot) to act with a KindRequest
// payload:
//
//	request = 1 version ‖ 16 group ID ‖ 32 author ‖ 8 time (Unix ms) ‖ 1 op ‖
//	          4+B body ‖ 64 signature (context "meshnode/v1/manager-request")
//
// (ops: 1 add, 2 remove, 3 set-role, 4 rotate, 5 set-policy, 6 set-hosts,
// bodies as the events', all version 1; 7 transfer-manager, body 32
// target, version 2 — the only one: each request has one encoding, and a
// bot that predates version 2 refuses a transfer by its version).
// AuthorizeRequest accepts it only from a manager (or a member asking for
// its own removal), recent, and only if the requester could have authored
// the event itself; a transfer is the target's promotion then the
// requester's step down to write, both checked, performed by the bot in
// one operation or not at all.
//
// # Node flow (to wire in)
//
// Manager:
//
//	create:  g, c := NewManagedGroup(...); store g and c.MarshalBinary();
//	         post c.Events()[0] as a KindStateEvent payload.
//	event:   ev := c.Append(&Event{Kind: ...}, id, now); post MarshalEvent(ev)
//	         as KindStateEvent in the current epoch (StateHead = c.Head()).
//	add:     kp := keymgmt.ParseKeyPackage(text, now); append the add; if
//	         NeedsRotation, rotate; w := NewWelcome(c, g, kp, id);
//	         post SealWelcome(w, kp) to the group's hosts.
//	rotate:  rot := c.RotateTree(id, g.TreeSeed, now, params); post each part
//	         in the OLD epoch (Payload.Epoch = n, StateHead = c.HeadOf(n),
//	         Kind KindKeyUpdate, Body MarshalKeyUpdate);
//	         g.EnterRotation(rot.Keys); host and fetch the new mailbox.
//	         Remove is always followed by a rotate; a promotion to manager
//	         too, to hand the tree over.
//	bot:     for each KindRequest: AuthorizeRequest(c.State(), r, now), then
//	         c.Append(r.Event(), bot, now) or c.Rotate; on a timer and per
//	         message, NeedsRotation(c.State(), RotatedAt, count, now).
//
// Member, for each opened payload p:
//
//	KindStateEvent first: c.Add(ParseEvent(body)); ErrReplay is harmless,
//	    ErrUnknownParent is kept, *ForkError is a split to report.
//	c.AdmitPayload(p, JudgedAt(p, ...)): ErrUnknownHead → keep p aside and
//	    retry when the chain grows; a Membership with Split → API event and
//	    CLI warning (the evidence is signed by the manager); ErrRevoked,
//	    ErrNotMember, ErrNotWriter, ErrForeignHead → refuse, and report.
//	SeqTracker.Observe(Membership.Key, p.Seq), Digest, CheckSentTime.
//	KindKeyUpdate: k := c.AcceptRotation(id, g, ParseKeyUpdate(body));
//	    on success g.EnterRotation(k) and move to the new mailbox
//	    (nothing is re-fetched); keymgmt.ErrNotRecipient → the copy is in
//	    another part, or this member was removed (c.Member(own) fails);
//	    ErrUnknownParent → retry after the epoch's state events;
//	    ErrStaleKeyUpdate → ignore (replay).
//	KindRequest (bot only): see above.
//
// Newcomer: fetch WelcomeMailbox(kp).Mailbox from the hosts it was told (or
// its own node), OpenWelcome(id, kp, envelopes) until it returns; store
// Joined.Group and Joined.Chain and show who welcomed it.
//
// Every decoder accepts only the canonical encoding, checks each length
// before slicing, and is fuzzed.
package groupstate
