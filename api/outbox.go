package api

import (
	"context"
	"net/http"
	"time"
)

// PathOutbox lists the node's own envelopes that no host has stored yet,
// and those it gave up on.
const PathOutbox = "/" + Version + "/outbox"

// OutboxEntry is one item of GET /v1/outbox.
type OutboxEntry struct {
	// ID is the envelope ID (a message's ID, for messages).
	ID        string `json:"id"`
	Group     string `json:"group"`
	GroupName string `json:"group_name"`
	// State is DeliveryPending (the node keeps trying) or DeliveryFailed.
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	// NextAttempt is when the node tries again (pending only).
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	Attempts    int       `json:"attempts"`
	// Reason is what the last attempt met at each host (pending), or why
	// the node gave up (failed).
	Reason string `json:"reason,omitempty"`
}

// Outbox calls GET /v1/outbox: own envelopes not stored by any host yet,
// and those given up, oldest first.
func (c *Client) Outbox(ctx context.Context) ([]OutboxEntry, error) {
	var out []OutboxEntry
	if err := c.Do(ctx, http.MethodGet, PathOutbox, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
