// Package directory is where people find each other (ARCHITECTURE §8): a
// host-side directory of connection packages stored under name hashes,
// the stream protocol that publishes, fetches and removes them, and its
// client. It never sees a name, an identity or a package in clear: names
// arrive as H = SHA-256(label ‖ name) and packages as blobs encrypted
// under a key derived from the name (keymgmt.Name), so a host learns only
// hashes, opaque blobs, sizes, times and transport peers.
//
// # Flow
//
//	owner:      keymgmt.NewConnPackage × N ─Name.SealBlob─▶ Client.Publish(H,
//	            owner key, expiry, request mailbox, blobs)        ─▶ host stores
//	initiator:  Client.Fetch(H) ─▶ one blob (consumed) ─Name.OpenBlob─▶
//	            ParseConnPackage, CheckFor(name) ─▶ SealRequest ─▶ envelope
//	            signed by the package's request mailbox key ─relay─▶ host
//	owner:      fetch the request mailbox ─ConnSecret.OpenRequest─▶ quarantine
//
// The package's mailbox write key is public to whoever fetched a package,
// so request mailboxes are open to write; hosts check envelope signatures
// as for any mailbox and limit what is written with the relay's per-peer
// rate limits and the store's per-mailbox quotas; a package may also ask
// requests for a proof of work (keymgmt connpow.go), which the owner's
// node checks before opening a request — hosts cannot check it, the proof
// is bound to the package key. The host serves a name's request mailboxes while the name
// lives (MailboxHook), whatever its hosting policy.
//
// # Ownership
//
// The first publish of H registers the owner public key it is signed
// with; while the name lives, later publishes, removals and status
// queries must be signed by the same key, with a timestamp within MaxSkew
// of the host's clock and (for publishes and removals) newer than the last
// one accepted, so a captured request cannot be replayed. Owner keys are
// derived per name from the identity (keymgmt.Identity.DirectoryOwnerKey),
// so they do not link one member's names. A removed name stays as a
// tombstone for MaxSkew; an expired name is free for anyone to register.
// Squatting a name first is possible (first come, first served per host):
// for a user ID it only blocks the name on that host, since initiators
// check the identity signature of user ID packages.
//
// # Consumption
//
// Each fetch hands out the first remaining blob and deletes it, except
// the last one, which is handed out again (a last resort) until the owner
// publishes fresh packages; a publish replaces the whole set. Fetches are
// limited per peer and per name, so draining a name's packages is slow.
//
// # Protocol (ProtocolID = /meshnode/directory/1.0.0)
//
// One request frame and one response frame per stream (varint-delimited,
// package internal/wire). Integers are big-endian.
//
//	request  = version(1) ‖ op(1: 1 publish, 2 fetch, 3 remove, 4 status)
//	           ‖ H(32)
//	           [signed ops: owner Ed25519 key(32) ‖ timestamp ms(8)]
//	           [publish: expires Unix s(8) ‖ M(1) ‖ M × mailbox tag(32)
//	                     ‖ B(1, ≥1) ‖ B × (len(2) ‖ blob)]
//	           [signed ops: Ed25519 signature(64) by the owner key, context
//	            SigContextRequest (keymgmt layout), over all preceding bytes]
//	response = code(1, internal/status) ‖ len(2) ‖ message
//	           [fetch OK: blob] [status OK: remaining(1) ‖ expires Unix s(8)]
//
// Codes: OK; NotFound (ErrUnknownName); BadSignature (ErrNotOwner);
// Expired (ErrStale); RateLimited; QuotaExceeded (ErrFull); TooLarge;
// Malformed; Version; Unavailable. The host reserves the largest request
// its Params admit with the resource manager before reading, sets a
// deadline at once, and resets the stream on any read or write failure.
//
// # Host storage
//
// A small Badger database of its own (in memory with Params.InMemory):
// 'n' ‖ H → owner key, last timestamp, expiry, request mailboxes, blobs
// (layout in db.go). Nothing else: no peer IDs, no times of fetches.
//
// # What a host can still learn
//
// It can test guesses of a name against H (and then open its blobs), so
// an alias is only as private as it is hard to guess. It sees which
// transport peer publishes and fetches what: a member that publishes
// several names to one host from one session lets that host link them by
// peer ID and address, and a fetch followed by a post to the request
// mailbox tells it that someone asked to connect to H (never who, beyond
// the transport peer). Owners publish all their names and poll all their
// request mailboxes from one session, so several names of one member on
// one host are linkable that way: use distinct hosts per alias for
// unlinkable aliases. The initiator's connection group is hosted by the
// directory host it asked through, so that host also sees the
// initiator's and the owner's transport peers use one mailbox.
package directory
