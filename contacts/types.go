package contacts

import "time"

// What contacts show: the control API (package api) owns their wire form.

// AliasInfo describes a published name.
type AliasInfo struct {
	Name      string
	Kind      string
	Hosts     []string
	Published int // hosts that accepted the packages
	Created   time.Time
	// ProofBits is the proof of work requests through the alias must
	// carry (0: none); DroppedNoProof counts the requests dropped since
	// the node started for want of a valid one.
	ProofBits      int
	DroppedNoProof uint64
}

// AliasOption changes how an alias is published.
type AliasOption func(*AliasConfig)

// AliasConfig is what AliasOptions set.
type AliasConfig struct {
	ProofBits int
}

// WithProofBits makes requests through the alias carry a proof of work of
// bits leading zero bits (0..keymgmt.MaxProofBits; 0 asks for none). The
// default is Params.AliasProofBits.
func WithProofBits(bits int) AliasOption { return func(c *AliasConfig) { c.ProofBits = bits } }

// ContactRequest is a request in quarantine: all that is shown of it.
type ContactRequest struct {
	ID          string
	Nick        string
	Fingerprint string
	Via         string // the alias or user ID it came through
	Sent        time.Time
	Received    time.Time
}

// Contact is an established (or requested) connection.
type Contact struct {
	Group       string // the connection group's ID
	Fingerprint string
	Nick        string
	Via         string
	// State: "pending" (requested, not accepted yet), "connected", or
	// "mismatch" (someone other than the user ID asked for joined).
	State     string
	Initiated bool
	Since     time.Time
}

// MaxQueuedAdds bounds the queued adds of contacts to groups of a member.
const MaxQueuedAdds = 256

// States of a queued add.
const (
	AddWaiting = "waiting" // for the contact's key package
	AddFailed  = "failed"  // cannot complete (see LastError); cancel it
)

// PendingContactAdd is an add waiting for the contact's key package (or
// failed, with the reason).
type PendingContactAdd struct {
	ID          string
	Group       string
	GroupName   string
	Contact     string // the connection group
	Fingerprint string
	Nick        string
	Role        string
	State       string // AddWaiting or AddFailed
	Queued      time.Time
	LastError   string
}
