// Package contacts is the contacts layer of a member (ARCHITECTURE §2,
// §8): aliases, connection requests and their quarantine, contacts, adds
// of contacts to managed groups, and welcomes over connection groups.
//
// Flow. A member publishes connection packages under its aliases and user
// ID on directory hosts; an initiator fetches one, creates a two-member
// connection group hosted by that directory host and posts a sealed,
// signed establishment with an invite to it to the name's request
// mailbox. The responder's node fetches its request mailboxes, opens and
// checks what it finds and keeps valid requests in quarantine, where only
// the nick and fingerprint are ever shown; accepting joins the connection
// group, rejecting (or nothing) shows nothing more, ever. Once connected,
// each node keeps a key package of its own offered to the contact, and a
// manager adds the contact to a managed group with it, sending the
// welcome inside the connection group as well (frames.go).
//
// What this package holds today: the contact records of the member
// database and their layout (records.go: its own namespace, decoders that
// return ErrCorrupt for anything damaged) and their reads and writes
// (store.go: Store touches that namespace only), the frame format of welcomes
// over connection groups (frames.go), the parameters (params.go), the
// errors (errors.go) and what contacts show (types.go: no JSON names;
// package api owns the wire form). The operations that use them still run in package
// node (node/contacts.go, requests.go, directory.go, contact_*.go) until
// the member layer they call has a package of its own beneath this one;
// they move here then (issue 16).
package contacts
