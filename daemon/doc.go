// Package daemon runs a meshnode node as a long-lived process: it owns the
// home directory, config.json, the node's lifetime, and the local control
// API server (types and client in package api). The meshnode CLI only
// parses flags and calls this package.
//
// # Home directory
//
//	DIR/                0700
//	  config.json       0600  Config: role, listen addrs, API addr, policy, ...
//	  api.token         0600  64 hex characters: 32 random bytes
//	  keystore          0600  profile keystore (keymgmt; Argon2id + XChaCha20-Poly1305)
//	  peer.key          0600  libp2p key, hosts and bots only (written by node)
//	  data/             0700  the host store (Badger): envelopes only
//	  member/           0700  the member's private database (Badger, encrypted with the keystore's DataKey)
//	  daemon.lock       0600  flock(2)ed by the running daemon; holds its pid
//	  api.addr          0600  "127.0.0.1:PORT" or "unix:/path"; exists while it runs
//
// Init creates a home and never overwrites one. config.json is written last,
// so its presence marks a complete home.
//
// # Running
//
// Start takes the home's lock (a second daemon on the same home fails with
// ErrAlreadyRunning), loads the keystore (asking a PassphraseFunc only if it
// is encrypted), starts the node with its store in DIR/data, binds the
// control API, writes the bound address to api.addr and optionally serves
// Prometheus metrics (its own registry: node series, Go and process
// collectors, meshnode_build_info, meshnode_api_requests_total) on
// /metrics. Members draw a fresh transport key at each start; hosts and
// bots keep theirs in peer.key so their address stays stable.
//
// Close undoes it in order: remove api.addr (new clients see "not
// running"), stop the API server (calls in progress get up to the shutdown
// timeout; streams end at once), stop the metrics server, close the node,
// release the lock.
//
// # Control API server
//
// Every request passes through one chain: count (metrics), recover,
// authenticate (bearer token compared in constant time; 401 otherwise),
// limit the body (http.MaxBytesReader, api.MaxRequestBody), route. Each area
// of the API is one handlers_*.go file with a routes method; handlers
// return errors, which become the JSON error shape {"error", "code"} with
// the status of the code. Unknown paths get a JSON 404 and wrong methods a
// JSON 405. Streams (newline-delimited JSON) lift the server's write timeout
// and renew a per-write deadline instead, send heartbeats, and end when the
// client leaves or the daemon shuts down. The server never logs the token,
// the passphrase or anything from the keystore.
package daemon
