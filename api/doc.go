// Package api is the local control API of a meshnode daemon: the JSON types
// exchanged over HTTP and a typed Go client. The server lives in package
// daemon; the meshnode CLI is a thin layer over this client.
//
// # Transport
//
// The daemon listens on a loopback TCP address ("127.0.0.1:PORT") or a Unix
// socket ("unix:/path/to/sock") and writes the address it actually bound to
// the file api.addr in its home directory. Every request carries
//
//	Authorization: Bearer <token>
//
// where the token is the 64 hex characters of the home's api.token file (32
// random bytes, mode 0600). The server compares it in constant time; a
// missing or wrong token gets 401.
//
// # Paths
//
// Every path is versioned (/v1/...) so incompatible changes get a new
// prefix instead of breaking scripts. One area of the API per handler file
// in the daemon, one client method per endpoint here:
//
//	GET /v1/status     Status: what the running node is doing
//	GET /v1/id         Identity: peer ID, full multiaddrs, role, fingerprint
//	GET /v1/arrivals   stream of Arrival: envelopes newly stored by the node
//
// Groups and messages (the member's side; GROUP is a group ID or unique
// name, path-escaped by GroupPath):
//
//	GET  /v1/groups                          []GroupInfo, by name
//	POST /v1/groups                          CreateGroupRequest -> CreatedGroup (201, with the invite)
//	POST /v1/join                            JoinRequest -> GroupInfo
//	GET  /v1/groups/GROUP                    GroupInfo
//	GET  /v1/groups/GROUP/invite             InviteAnswer
//	GET  /v1/groups/GROUP/members            []MemberInfo
//	GET  /v1/groups/GROUP/messages?limit=N   []Message, oldest first (N latest; 0: all)
//	POST /v1/groups/GROUP/messages           SendRequest -> SendResult (direct if "to" is set)
//	GET  /v1/groups/GROUP/messages/stream?limit=N&follow=true
//	                                         stream of Message: the listing, then new ones
//	POST /v1/groups/GROUP/catchup            CatchUpResult: fetch from the hosts now
//	GET  /v1/groups/GROUP/rejections?limit=N []Rejection: what this member refused,
//	                                         flagged or holds aside, and why (N latest)
//	GET  /v1/outbox                          []OutboxEntry: own envelopes no host has stored
//	                                         yet (retried with backoff), and those given up
//
// For the web app (any client may use them):
//
//	GET  /v1/groups/GROUP/history?limit=N&before=C|after=C
//	                                         MessagePage: a page of messages with their
//	                                         positions (cursors), oldest first
//	GET  /v1/groups/GROUP/read               ReadState: read marker, unread count, latest
//	PUT  /v1/groups/GROUP/read               ReadRequest -> ReadState (never moves back)
//	GET  /v1/groups/GROUP/invite/qr          the invite as a PNG QR code
//	GET  /v1/inbox                           []InboxEntry: every group with its ReadState
//	GET  /v1/verified                        []VerifiedIdentity: fingerprints marked verified
//	PUT  /v1/verified/FP                     VerifiedIdentity (DELETE clears the mark)
//	GET  /v1/network                         Network: peers, group hosts reachable, catch-ups
//	GET  /v1/events                          stream of Event for every group (Server-Sent
//	                                         Events if asked for text/event-stream)
//	POST /v1/ui/login                        LoginURL: a one-time login link (API token only)
//	GET  /v1/ui/session                      Session with its CSRF token (browser session
//	                                         only; DELETE logs out)
//
// A browser session (package webui) reaches the same endpoints with its
// cookie instead of the token, after the Host, Origin and CSRF checks
// described there.
//
// A send answers once its first attempt is done: SendResult.State is
// "stored" (StoredBy lists the hosts), "pending" (no host yet; the node
// keeps the message and tries again until one stores it, and Failed says
// what the hosts answered), or "failed". Own messages carry the same state
// (Message.Delivery, StoredByCount, DeliveryError) when listed.
//
// The message stream subscribes before it lists, sends each message at
// most once (by ID) and, should it fall behind the node, re-reads the
// group to send what it missed; without follow it ends after the listing.
//
// # Errors
//
// Every error, whatever the endpoint, is a JSON object with a proper HTTP
// status:
//
//	{"error": "human readable message", "code": "unauthorized"}
//
// The codes (Code... constants) are stable; the messages are not. The client
// returns them as *Error, which matches the package's sentinels with
// errors.Is (ErrUnauthorized, ErrNotFound, ...). The codes of the group
// endpoints are specific (unknown_group, ambiguous_group, already_member,
// unknown_member, read_only, removed, bad_invite) and also match the generic
// sentinel of their status (ErrNotFound, ErrConflict, ErrForbidden,
// ErrBadRequest). disk_full (507) answers a write while the node's disk is
// below its free-space watermark; reads still work.
//
// # Streams
//
// Streaming endpoints answer 200 with Content-Type application/x-ndjson:
// one JSON value per line, flushed as it happens. Blank lines are
// heartbeats (so both ends notice a dead peer) and are skipped by the
// client. A stream that fails after it started ends with one error line of
// the same shape as above; stream item types therefore never have a
// top-level field named "error". A line is at most MaxStreamLine bytes.
//
// # Limits
//
// Request bodies are limited (MaxRequestBody) and the server sets read,
// write and idle timeouts; streaming handlers lift the write timeout for
// their own response only.
package api
