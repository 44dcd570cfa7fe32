package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Replies, reactions, edits and deletes (issue 18). A reply is sent like
// any message, with SendRequest.ReplyTo. The others name the message by
// its ID alone (or a unique start of it, at least 8 hex characters),
// whatever its group:
//
//	GET    PathMessage          -> Message, with Edits
//	PATCH  PathMessage          EditRequest -> RefResult (only its author)
//	DELETE PathMessage          -> RefResult (its author; a manager of a managed group)
//	POST   PathMessageReactions ReactRequest -> RefResult
const (
	PathMessages         = "/" + Version + "/messages"
	PathMessage          = PathMessages + "/{id}"
	PathMessageReactions = PathMessage + "/reactions"
)

// Reaction operations of ReactRequest.Op.
const (
	ReactToggle = "toggle"
	ReactAdd    = "add"
	ReactRemove = "remove"
)

// MessagePath fills the {id} of a per-message path.
func MessagePath(pattern, id string) string {
	return strings.Replace(pattern, "{id}", url.PathEscape(id), 1)
}

// Quote is what this member knows of the message a reply answers.
type Quote struct {
	ID     string `json:"id"`
	Author string `json:"author,omitempty"`
	Nick   string `json:"nick,omitempty"`
	// Text is the start of its current text (empty when Deleted).
	Text    string `json:"text,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	// Missing: this member does not hold it (not arrived yet, or not a
	// message of this group).
	Missing bool `json:"missing,omitempty"`
}

// Edit is one version of an edited message's text.
type Edit struct {
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Reaction is one emoji's reactions to a message.
type Reaction struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	// Mine: this member reacted with it.
	Mine bool `json:"mine,omitempty"`
	// By are the reacting members' fingerprints.
	By []string `json:"by"`
}

// EditRequest is the body of PATCH PathMessage: the whole new text.
type EditRequest struct {
	Text string `json:"text"`
}

// ReactRequest is the body of POST PathMessageReactions.
type ReactRequest struct {
	Emoji string `json:"emoji"`
	// Op is ReactToggle (the default), ReactAdd or ReactRemove.
	Op string `json:"op,omitempty"`
}

// RefResult answers a reaction, an edit or a delete: the full ID of the
// message it concerns and where the sent envelope went (SendResult's
// fields), or Unchanged when nothing needed sending (a reaction already
// as asked).
type RefResult struct {
	Target    string `json:"target"`
	Unchanged bool   `json:"unchanged,omitempty"`
	SendResult
}

// SendReply calls POST /v1/groups/{group}/messages with a reply.
func (c *Client) SendReply(ctx context.Context, group, replyTo, text string) (*SendResult, error) {
	return c.send1(ctx, group, &SendRequest{Text: text, ReplyTo: replyTo})
}

// Message calls GET PathMessage.
func (c *Client) Message(ctx context.Context, id string) (*Message, error) {
	var out Message
	if err := c.Do(ctx, http.MethodGet, MessagePath(PathMessage, id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// React calls POST PathMessageReactions.
func (c *Client) React(ctx context.Context, id, emoji, op string) (*RefResult, error) {
	var out RefResult
	if err := c.Do(ctx, http.MethodPost, MessagePath(PathMessageReactions, id), &ReactRequest{Emoji: emoji, Op: op}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Edit calls PATCH PathMessage.
func (c *Client) Edit(ctx context.Context, id, text string) (*RefResult, error) {
	var out RefResult
	if err := c.Do(ctx, http.MethodPatch, MessagePath(PathMessage, id), &EditRequest{Text: text}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteMessage calls DELETE PathMessage.
func (c *Client) DeleteMessage(ctx context.Context, id string) (*RefResult, error) {
	var out RefResult
	if err := c.Do(ctx, http.MethodDelete, MessagePath(PathMessage, id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
