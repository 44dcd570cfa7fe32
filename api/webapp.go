package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Paths the web app needs beyond the CLI's (they serve any client):
// paged history, read markers, verified fingerprints, the network view,
// one event stream for all groups, and the web app's login.
const (
	// PathGroupHistory pages a group's messages:
	// GET ?limit=N&before=CURSOR or &after=CURSOR -> MessagePage.
	PathGroupHistory = PathGroup + "/history"
	// PathGroupRead is a group's read marker: GET -> ReadState,
	// PUT ReadRequest -> ReadState.
	PathGroupRead = PathGroup + "/read"
	// PathGroupInviteQR is a group's invite as a QR code (GET, image/png).
	PathGroupInviteQR = PathGroupInvite + "/qr"
	// PathInbox lists every group with its unread count and latest
	// message (GET -> []InboxEntry).
	PathInbox = "/" + Version + "/inbox"
	// PathVerified lists the verified fingerprints (GET ->
	// []VerifiedIdentity); PathVerifiedOne marks one (PUT ->
	// VerifiedIdentity) or clears its mark (DELETE).
	PathVerified    = "/" + Version + "/verified"
	PathVerifiedOne = PathVerified + "/{fingerprint}"
	// PathNetwork is the node's view of the network (GET -> Network).
	PathNetwork = "/" + Version + "/network"
	// PathEvents is the stream of Event for every group: Server-Sent
	// Events when the request accepts text/event-stream, newline-delimited
	// JSON otherwise.
	PathEvents = "/" + Version + "/events"
	// PathUILogin makes a one-time login URL for the web app (POST ->
	// LoginURL). Only the API token may call it.
	PathUILogin = "/" + Version + "/ui/login"
	// PathUISession is the web app's own session: GET -> Session (with
	// its CSRF token), DELETE logs out. Only a browser session may call it.
	PathUISession = "/" + Version + "/ui/session"
)

// MaxHistoryPage is the largest page of PathGroupHistory.
const MaxHistoryPage = 500

// ContentTypeEventStream is the content type of Server-Sent Events.
const ContentTypeEventStream = "text/event-stream"

// Error code of the web app's session checks.
const (
	// CodeBadOrigin: a browser request from another origin, or for a
	// host name the daemon does not answer to (DNS rebinding), or a
	// state-changing request without the session's CSRF token.
	CodeBadOrigin = "bad_origin" // 403
	// CodeBadCursor: a malformed message position or page request.
	CodeBadCursor = "bad_cursor" // 400
)

// PagedMessage is a message with its position in the group's listing.
type PagedMessage struct {
	Message
	// Cursor is the message's position: opaque, ordered like the listing
	// (as strings too). Pass it as before/after or to the read marker.
	Cursor string `json:"cursor"`
}

// MessagePage is one page of a group's messages, oldest first.
type MessagePage struct {
	Messages []PagedMessage `json:"messages"`
	// More says that messages exist beyond the page in the direction
	// read: older for the latest page and before, newer for after.
	More bool `json:"more"`
}

// HistoryQuery selects a page: the latest Limit, or the Limit just
// before or after a position (at most one of them).
type HistoryQuery struct {
	Limit         int
	Before, After string
	// All also lists the messages nodes exchange in connection groups.
	All bool
}

// ReadState is how far a group was read.
type ReadState struct {
	Group string `json:"group"`
	// Cursor is the position of the latest message read ("": none).
	Cursor string `json:"cursor"`
	// Unread counts what others wrote after it (text, direct messages
	// and split warnings), at most MaxUnread; UnreadMore says there may
	// be more.
	Unread     int  `json:"unread"`
	UnreadMore bool `json:"unread_more,omitempty"`
	// Last is the group's latest message.
	Last *PagedMessage `json:"last,omitempty"`
}

// ReadRequest is the body of PUT /v1/groups/{group}/read: the position
// of the latest message read. The marker never moves back.
type ReadRequest struct {
	Cursor string `json:"cursor"`
}

// InboxEntry is a group as a chat list shows it.
type InboxEntry struct {
	Group GroupInfo `json:"group"`
	Read  ReadState `json:"read"`
}

// VerifiedIdentity is a fingerprint this person compared out of band
// and marked as verified. The mark is local and per identity key.
type VerifiedIdentity struct {
	Fingerprint string    `json:"fingerprint"`
	Since       time.Time `json:"since"`
}

// Network is what the node sees of the network.
type Network struct {
	Peers  []Peer         `json:"peers"`
	Groups []GroupNetwork `json:"groups"`
}

// Peer is a connected peer.
type Peer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	// LatencyMS is the smoothed round trip (0: not measured yet).
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// GroupNetwork is a group's hosts and catch-up.
type GroupNetwork struct {
	Group string `json:"group"`
	Name  string `json:"name"`
	// Hosts are the hosts the group names; none means its members host
	// each other.
	Hosts []HostReach `json:"hosts"`
	// CatchUp is the latest catch-up since the daemon started.
	CatchUp *CatchUpProgress `json:"catchup,omitempty"`
}

// HostReach says whether a group host is reachable now.
type HostReach struct {
	Addr      string  `json:"addr"`
	Peer      string  `json:"peer"`
	Self      bool    `json:"self,omitempty"`
	Connected bool    `json:"connected"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// CatchUpProgress is where a group's catch-up stands: Done of Steps
// fetches (one per host and mailbox), Fetched envelopes so far.
type CatchUpProgress struct {
	Group    string    `json:"group"`
	Running  bool      `json:"running"`
	Steps    int       `json:"steps"`
	Done     int       `json:"done"`
	Fetched  int       `json:"fetched"`
	Failed   int       `json:"failed"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

// Event types of the PathEvents stream.
const (
	// EventMessage: a new message in any group (Message set).
	EventMessage = "message"
	// EventRead: a group's read marker moved (Read set).
	EventRead = "read"
	// EventCatchUp: a catch-up started, progressed or ended (CatchUp set).
	EventCatchUp = "catchup"
	// EventGroups: the list of groups changed (created, joined, left).
	EventGroups = "groups"
	// EventResync: the stream fell behind the node and events were lost:
	// re-read what is shown.
	EventResync = "resync"
)

// Event is one item of the PathEvents stream.
type Event struct {
	Type    string           `json:"type"`
	Group   string           `json:"group,omitempty"`
	Message *PagedMessage    `json:"message,omitempty"`
	Read    *ReadState       `json:"read,omitempty"`
	CatchUp *CatchUpProgress `json:"catchup,omitempty"`
}

// LoginURL is a one-time login link to the web app.
type LoginURL struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// Session describes the web app's session (GET /v1/ui/session).
type Session struct {
	// CSRF must be sent as the X-CSRF-Token header of every
	// state-changing request of the session.
	CSRF        string    `json:"csrf"`
	Expires     time.Time `json:"expires"`
	Fingerprint string    `json:"fingerprint"`
	Nick        string    `json:"nick"`
	PeerID      string    `json:"peer_id"`
	// Loopback is false when the app is served beyond this machine.
	Loopback bool `json:"loopback"`
}

// CSRFHeader carries a session's CSRF token.
const CSRFHeader = "X-CSRF-Token"

func (q HistoryQuery) encode() string {
	v := url.Values{}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Before != "" {
		v.Set("before", q.Before)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.All {
		v.Set("all", "true")
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// History calls GET /v1/groups/{group}/history.
func (c *Client) History(ctx context.Context, group string, q HistoryQuery) (*MessagePage, error) {
	var out MessagePage
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupHistory, group)+q.encode(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReadState calls GET /v1/groups/{group}/read.
func (c *Client) ReadState(ctx context.Context, group string) (*ReadState, error) {
	var out ReadState
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupRead, group), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MarkRead calls PUT /v1/groups/{group}/read.
func (c *Client) MarkRead(ctx context.Context, group, cursor string) (*ReadState, error) {
	var out ReadState
	if err := c.Do(ctx, http.MethodPut, GroupPath(PathGroupRead, group), &ReadRequest{Cursor: cursor}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Inbox calls GET /v1/inbox.
func (c *Client) Inbox(ctx context.Context) ([]InboxEntry, error) {
	var out []InboxEntry
	if err := c.Do(ctx, http.MethodGet, PathInbox, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Verified calls GET /v1/verified.
func (c *Client) Verified(ctx context.Context) ([]VerifiedIdentity, error) {
	var out []VerifiedIdentity
	if err := c.Do(ctx, http.MethodGet, PathVerified, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// SetVerified marks a fingerprint as verified (PUT) or clears the mark
// (DELETE; it returns nil then).
func (c *Client) SetVerified(ctx context.Context, fingerprint string, verified bool) (*VerifiedIdentity, error) {
	path := pathWith(PathVerifiedOne, "fingerprint", fingerprint)
	if !verified {
		return nil, c.Do(ctx, http.MethodDelete, path, nil, nil)
	}
	var out VerifiedIdentity
	if err := c.Do(ctx, http.MethodPut, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Network calls GET /v1/network.
func (c *Client) Network(ctx context.Context) (*Network, error) {
	var out Network
	if err := c.Do(ctx, http.MethodGet, PathNetwork, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events opens the GET /v1/events stream (newline-delimited JSON).
func (c *Client) Events(ctx context.Context) (*Stream[Event], error) {
	return OpenStream[Event](ctx, c, PathEvents)
}

// UILogin calls POST /v1/ui/login: a one-time login URL for the web app.
func (c *Client) UILogin(ctx context.Context) (*LoginURL, error) {
	var out LoginURL
	if err := c.Do(ctx, http.MethodPost, PathUILogin, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// InviteQR calls GET /v1/groups/{group}/invite/qr: the invite as a PNG
// QR code.
func (c *Client) InviteQR(ctx context.Context, group string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(ctx, http.MethodGet, GroupPath(PathGroupInviteQR, group), nil, "image/png")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := checkContentType(resp, "image/png"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	if err != nil {
		return nil, fmt.Errorf("api: reading QR code: %w", err)
	}
	return b, nil
}
