package api

import "time"

// Version is the prefix of every path of this API.
const Version = "v1"

// Paths of the endpoints.
const (
	PathStatus   = "/" + Version + "/status"
	PathID       = "/" + Version + "/id"
	PathArrivals = "/" + Version + "/arrivals"
)

// Limits shared by the server and the client.
const (
	// MaxRequestBody is the default limit of a request body.
	MaxRequestBody = 1 << 20
	// MaxResponseBody bounds what the client reads of a non-streaming
	// response.
	MaxResponseBody = 8 << 20
	// MaxStreamLine bounds one line of a stream.
	MaxStreamLine = 1 << 20
	// TokenSize is the number of random bytes of an API token (it is
	// written as twice as many hex characters).
	TokenSize = 32
)

// ContentTypeJSON and ContentTypeNDJSON are the response content types.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeNDJSON = "application/x-ndjson"
)

// Status is the answer of GET /v1/status.
type Status struct {
	PeerID     string `json:"peer_id"`
	Role       string `json:"role"`
	HostPolicy string `json:"host_policy"`
	// Addrs are full multiaddrs, ending in /p2p/<peer_id>.
	Addrs           []string   `json:"addrs"`
	UptimeSeconds   int64      `json:"uptime_seconds"`
	ConnectedPeers  int        `json:"connected_peers"`
	HostedMailboxes int        `json:"hosted_mailboxes"`
	Store           StoreUsage `json:"store"`
	Version         string     `json:"version"`
	// Admission is what the node takes from whom now (admission.go).
	Admission AdmissionStatus `json:"admission"`
	// Outbox sums up the own envelopes no host has stored yet and those
	// given up (GET /v1/outbox lists them); absent for a node without a
	// member identity.
	Outbox *OutboxStatus `json:"outbox,omitempty"`
}

// OutboxStatus counts the outbox's envelopes by state.
type OutboxStatus struct {
	// Pending: no host (or member, in a group without hosts) has stored
	// them yet; the node keeps trying.
	Pending int `json:"pending"`
	// Failed: given up (refused by every host, or too old); their reason
	// is in GET /v1/outbox.
	Failed int `json:"failed"`
	// OldestPendingSeconds is the age of the oldest pending envelope (0
	// when none is pending).
	OldestPendingSeconds int64 `json:"oldest_pending_seconds"`
}

// StoreUsage is the envelope store's total.
type StoreUsage struct {
	Envelopes int64 `json:"envelopes"`
	Bytes     int64 `json:"bytes"`
	// DiskFreeBytes is the free space of the store's filesystem at the
	// last check, and DiskFull is set while the store refuses writes for
	// lack of it (below its watermark); both are zero for a store in
	// memory.
	DiskFreeBytes int64 `json:"disk_free_bytes"`
	DiskFull      bool  `json:"disk_full"`
}

// Identity is the answer of GET /v1/id.
type Identity struct {
	// PeerID is the transport identity (members draw a new one at each
	// start). It is never linked to Fingerprint in anything a host sees.
	PeerID string `json:"peer_id"`
	// Addrs are full multiaddrs, ending in /p2p/<peer_id>.
	Addrs []string `json:"addrs"`
	Role  string   `json:"role"`
	// Fingerprint is the profile identity's fingerprint, for comparing
	// out of band.
	Fingerprint string `json:"fingerprint"`
}

// Arrival is one item of the GET /v1/arrivals stream: an envelope newly
// stored by the node. It carries only what a host sees anyway.
type Arrival struct {
	Mailbox    string    `json:"mailbox"`
	EnvelopeID string    `json:"envelope_id"`
	Size       int       `json:"size"`
	From       string    `json:"from"`
	Time       time.Time `json:"time"`
}
