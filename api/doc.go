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
// # Errors
//
// Every error, whatever the endpoint, is a JSON object with a proper HTTP
// status:
//
//	{"error": "human readable message", "code": "unauthorized"}
//
// The codes (Code... constants) are stable; the messages are not. The client
// returns them as *Error, which matches the package's sentinels with
// errors.Is (ErrUnauthorized, ErrNotFound, ...).
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
