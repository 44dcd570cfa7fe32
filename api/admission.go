package api

// Admission states of AdmissionStatus.State.
const (
	AdmissionNormal        = "normal"
	AdmissionUnderPressure = "under_pressure"
)

// AdmissionStatus is the admission part of GET /v1/status: whether the
// host is refusing things now, and why.
type AdmissionStatus struct {
	// State is "normal" or "under_pressure": something was refused within
	// the pressure window, or the store is past the share open to new
	// mailboxes.
	State string `json:"state"`
	// Refusals are the reasons anything was refused since start, the most
	// recent first (then the most frequent). Never null.
	Refusals []RefusalCount `json:"refusals"`
	// JoinedTopics is the number of gossip topics joined now;
	// MaxJoinedTopics bounds those joined for active hosted mailboxes.
	JoinedTopics    int `json:"joined_topics"`
	MaxJoinedTopics int `json:"max_joined_topics"`
	// NewMailboxLimitBytes is the store size past which new mailboxes are
	// refused (0: no global quota); NewMailboxesRefused says the store is
	// past it now.
	NewMailboxLimitBytes int64 `json:"new_mailbox_limit_bytes"`
	NewMailboxesRefused  bool  `json:"new_mailboxes_refused"`
	// RelayStreams, FetchStreams and SyncStreams are the services'
	// inbound streams now.
	RelayStreams StreamUsage `json:"relay_streams"`
	FetchStreams StreamUsage `json:"fetch_streams"`
	SyncStreams  StreamUsage `json:"sync_streams"`
}

// RefusalCount is one refusal reason (meshnode_admission_refusals_total's
// label): refusals within the pressure window and since start.
type RefusalCount struct {
	Reason string `json:"reason"`
	Recent uint64 `json:"recent"`
	Total  uint64 `json:"total"`
}

// StreamUsage is a service's inbound streams: pending (no request or
// sync hello yet)
// and active, of which general (not for an established mailbox).
type StreamUsage struct {
	Pending int `json:"pending"`
	Active  int `json:"active"`
	General int `json:"general"`
}
