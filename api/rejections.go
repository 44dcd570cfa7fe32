package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// PathGroupRejections lists what a member refused or flagged in a group.
const PathGroupRejections = PathGroup + "/rejections"

// Rejection kinds.
const (
	// RejectionRefused: not shown, not acted upon.
	RejectionRefused = "refused"
	// RejectionFlagged: shown with a mark (Message.Flags).
	RejectionFlagged = "flagged"
	// RejectionEquivocation: refused, and evidence that its author signed
	// two different messages with one sequence number.
	RejectionEquivocation = "equivocation"
	// RejectionHeld: kept aside until the group's state chain holds the
	// head it names.
	RejectionHeld = "held"
)

// Rejection is one entry of a group's rejection log: an envelope of the
// group's mailboxes that this member refused, showed with a mark, or holds
// aside.
type Rejection struct {
	// At is when it was refused or flagged (for a held entry: the time
	// of the listing).
	At time.Time `json:"time"`
	// Kind is RejectionRefused, RejectionFlagged, RejectionEquivocation or
	// RejectionHeld.
	Kind string `json:"kind"`
	// Reason is a stable code: after_removal, not_member, not_writer,
	// foreign_head, replay, equivocation, bad_signature, undecryptable,
	// malformed, sent_in_future, sent_before_join, unseen_by_remover,
	// not_delivered_removed, unknown_head, ...; Detail says it in words.
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	// Author is the fingerprint of the payload's author, when the
	// envelope opened to a signed payload.
	Author   string `json:"author,omitempty"`
	Envelope string `json:"envelope"`
	Seq      uint64 `json:"seq,omitempty"`
	Epoch    uint64 `json:"epoch"`
}

// Rejections calls GET /v1/groups/{group}/rejections: the latest limit
// entries (0: all), oldest first, then the envelopes held.
func (c *Client) Rejections(ctx context.Context, group string, limit int) ([]Rejection, error) {
	path := GroupPath(PathGroupRejections, group)
	if limit > 0 {
		path += "?" + url.Values{"limit": {strconv.Itoa(limit)}}.Encode()
	}
	var out []Rejection
	if err := c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
