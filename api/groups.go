package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Paths of the group and message endpoints. In the per-group paths,
// {group} is the group's ID or unique name, path-escaped (see GroupPath).
const (
	PathGroups        = "/" + Version + "/groups"
	PathJoin          = "/" + Version + "/join"
	PathGroup         = PathGroups + "/{group}"
	PathGroupInvite   = PathGroup + "/invite"
	PathGroupMembers  = PathGroup + "/members"
	PathGroupMessages = PathGroup + "/messages"
	PathGroupStream   = PathGroup + "/messages/stream"
	PathGroupCatchUp  = PathGroup + "/catchup"
)

// GroupPath fills the {group} of a per-group path with a group ID or
// name, escaped so that any name (spaces, slashes) stays one segment.
func GroupPath(pattern, group string) string {
	return strings.Replace(pattern, "{group}", url.PathEscape(group), 1)
}

// GroupInfo describes one of the member's groups. The JSON names are a
// contract of `meshnode group list --json`.
type GroupInfo struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Epoch uint64   `json:"epoch"`
	Hosts []string `json:"hosts"`
	// CanWrite is false for members who joined with a read-only invite.
	CanWrite bool   `json:"can_write"`
	History  string `json:"history"`
	// Members counts the members known from their profile messages.
	Members int `json:"members"`
	// Nick is this member's nickname in the group.
	Nick     string `json:"nick"`
	Messages int    `json:"messages"`
	// Unread counts what others wrote (texts, replies, directs, split
	// warnings) after this member's read marker, at most 1,000.
	Unread int `json:"unread"`
	// Managed groups only: this member's role, the policy, detected
	// splits, and whether this member was removed.
	Managed bool   `json:"managed,omitempty"`
	Role    string `json:"role,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Splits  int    `json:"splits,omitempty"`
	Removed bool   `json:"removed,omitempty"`
}

// MemberInfo is a member of a group known from its profile message.
type MemberInfo struct {
	Fingerprint string `json:"fingerprint"`
	Nick        string `json:"nick"`
	// Self marks this node's own profile.
	Self bool `json:"self"`
	// Managed groups only: the member's role and whether it is a bot.
	Role string `json:"role,omitempty"`
	Bot  bool   `json:"bot,omitempty"`
}

// Message is a verified, decrypted message. The JSON names are a contract
// of `meshnode messages --json`.
type Message struct {
	ID        string `json:"id"`
	Group     string `json:"group"`
	GroupName string `json:"group_name"`
	// Author is the fingerprint of the author's identity key.
	Author   string    `json:"author"`
	Nick     string    `json:"nick"`
	Text     string    `json:"text"`
	Sent     time.Time `json:"sent"`
	Received time.Time `json:"received"`
	// Kind is KindText, KindDirect or KindGap.
	Kind string `json:"kind"`
	// Verified is true for every message whose author signature was
	// checked; gap notices are written by the node itself and are not.
	Verified bool   `json:"verified"`
	Seq      uint64 `json:"seq"`
	Epoch    uint64 `json:"epoch"`
	// To is the recipient's fingerprint of a direct message.
	To string `json:"to,omitempty"`
	// Own marks messages this member sent.
	Own bool `json:"own"`
	// Flags mark a message shown with a reservation (FlagSentInFuture,
	// FlagSentBeforeJoin, FlagUnseenByRemover, FlagNotDelivered).
	Flags []string `json:"flags,omitempty"`
	// Delivery, for an own message (Own), is DeliveryPending (no host
	// has stored it yet; the node keeps trying), DeliveryStored
	// (StoredByCount hosts, or members of a group without hosts, have) or
	// DeliveryFailed (DeliveryError says why).
	Delivery      string `json:"delivery,omitempty"`
	StoredByCount int    `json:"stored_by_count,omitempty"`
	DeliveryError string `json:"delivery_error,omitempty"`
	// ReplyTo is the ID of the message a reply (KindReply) answers, and
	// Quote what this member knows of it.
	ReplyTo string `json:"reply_to,omitempty"`
	// File describes a file message (kind "file"): download it with
	// PathMessageDownload, then PathMessageFile.
	File  *FileInfo `json:"file,omitempty"`
	Quote *Quote    `json:"quote,omitempty"`
	// Edited: Text is the author's latest edit, made at EditedAt. Edits
	// lists every version, oldest first (GET PathMessage only).
	Edited   bool      `json:"edited,omitempty"`
	EditedAt time.Time `json:"edited_at,omitzero"`
	Edits    []Edit    `json:"edits,omitempty"`
	// Deleted: a tombstone; Text is empty and DeletedBy is the
	// fingerprint of who deleted it (its author, or a manager of a
	// managed group). Hosts keep the ciphertext until their retention
	// drops it.
	Deleted   bool   `json:"deleted,omitempty"`
	DeletedBy string `json:"deleted_by,omitempty"`
	// Reactions count, per emoji, the members whose latest reaction with
	// it is an add.
	Reactions []Reaction `json:"reactions,omitempty"`
	// Updated marks a message a stream sends again because an edit, a
	// delete or a reaction changed it.
	Updated bool `json:"updated,omitempty"`
}

// Delivery states of own messages and envelopes.
const (
	DeliveryPending = "pending"
	DeliveryStored  = "stored"
	DeliveryFailed  = "failed"
)

// Message flags.
const (
	// FlagSentInFuture: the claimed sent time is more than ten minutes
	// after the message arrived; it is placed by its arrival.
	FlagSentInFuture = "sent_in_future"
	// FlagSentBeforeJoin: the claimed sent time is before its author
	// joined (or the group was created); it is placed after its parents.
	FlagSentBeforeJoin = "sent_before_join"
	// FlagUnseenByRemover: shown before its author's removal was known,
	// and the manager had not seen it: members who learnt of the removal
	// first refuse it.
	FlagUnseenByRemover = "unseen_by_remover"
	// FlagNotDelivered: an own message the group refuses: you were
	// removed before the manager saw it.
	FlagNotDelivered = "not_delivered_removed"
)

// Message kinds.
const (
	KindText   = "text"
	KindDirect = "direct"
	// KindGap is a notice that messages of an author are missing and no
	// known host could supply them.
	KindGap = "gap"
	// KindReply is a text that answers another message (ReplyTo).
	KindReply = "reply"
)

// SendResult says where a sent message went.
type SendResult struct {
	// ID is the envelope ID of the message.
	ID string `json:"id"`
	// StoredBy lists the group hosts (peer IDs) that acknowledged durable
	// storage. Empty: only this node holds the message for now.
	StoredBy []string `json:"stored_by"`
	// Failed maps hosts that did not to the reason.
	Failed map[string]string `json:"failed,omitempty"`
	// Gossiped is the number of peers on the group's mailbox topic.
	Gossiped int `json:"gossiped"`
	// State is DeliveryStored (StoredBy has stored it), DeliveryPending
	// (no host yet: the node keeps it and tries again, with backoff, until
	// one does; Failed says why the attempts so far failed) or
	// DeliveryFailed (refused as invalid by every host).
	State string `json:"state"`
}

// CatchUpResult reports one catch-up of a group. The JSON names are a
// contract of `meshnode fetch --json`.
type CatchUpResult struct {
	Group string `json:"group"`
	// Hosts is the number of nodes asked (group hosts and peers met on
	// the group's topics).
	Hosts int `json:"hosts"`
	// Fetched counts the envelopes fetched.
	Fetched int               `json:"fetched"`
	Failed  map[string]string `json:"failed,omitempty"`
	// Gaps lists messages still missing after asking every host.
	Gaps []Gap `json:"gaps,omitempty"`
}

// Gap is a run of an author's messages nobody could supply.
type Gap struct {
	Author string `json:"author"`
	Nick   string `json:"nick"`
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
}

// CreateGroupRequest is the body of POST /v1/groups.
type CreateGroupRequest struct {
	Name string `json:"name"`
	// Hosts are multiaddrs ending in /p2p/PEERID of the nodes that keep
	// the group's history.
	Hosts []string `json:"hosts"`
}

// CreatedGroup is the answer of POST /v1/groups.
type CreatedGroup struct {
	Group GroupInfo `json:"group"`
	// Invite lets whoever holds it read and write in the group.
	Invite string `json:"invite"`
}

// JoinRequest is the body of POST /v1/join.
type JoinRequest struct {
	Invite string `json:"invite"`
	// Nick is the nickname in this group ("": the profile's).
	Nick string `json:"nick,omitempty"`
}

// InviteAnswer is the answer of GET /v1/groups/{group}/invite.
type InviteAnswer struct {
	Invite string `json:"invite"`
}

// SendRequest is the body of POST /v1/groups/{group}/messages.
type SendRequest struct {
	Text string `json:"text"`
	// To makes a direct message readable only by the member with this
	// fingerprint.
	To string `json:"to,omitempty"`
	// ReplyTo makes the message a reply to the message with this ID (or
	// a unique start of it, at least 8 hex characters) of the group.
	ReplyTo string `json:"reply_to,omitempty"`
}

// Groups calls GET /v1/groups: the member's groups by name.
func (c *Client) Groups(ctx context.Context) ([]GroupInfo, error) {
	var out []GroupInfo
	if err := c.Do(ctx, http.MethodGet, PathGroups, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateGroup calls POST /v1/groups.
func (c *Client) CreateGroup(ctx context.Context, name string, hosts []string) (*CreatedGroup, error) {
	var out CreatedGroup
	if err := c.Do(ctx, http.MethodPost, PathGroups, &CreateGroupRequest{Name: name, Hosts: hosts}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JoinGroup calls POST /v1/join. The daemon catches the group up in the
// background afterwards.
func (c *Client) JoinGroup(ctx context.Context, invite, nick string) (*GroupInfo, error) {
	var out GroupInfo
	if err := c.Do(ctx, http.MethodPost, PathJoin, &JoinRequest{Invite: invite, Nick: nick}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Group calls GET /v1/groups/{group}.
func (c *Client) Group(ctx context.Context, group string) (*GroupInfo, error) {
	var out GroupInfo
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroup, group), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Invite calls GET /v1/groups/{group}/invite: a write invite, or a
// read-only one if this member may only read.
func (c *Client) Invite(ctx context.Context, group string) (string, error) {
	var out InviteAnswer
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupInvite, group), nil, &out); err != nil {
		return "", err
	}
	return out.Invite, nil
}

// Members calls GET /v1/groups/{group}/members.
func (c *Client) Members(ctx context.Context, group string) ([]MemberInfo, error) {
	var out []MemberInfo
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupMembers, group), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Messages calls GET /v1/groups/{group}/messages: the latest limit
// messages (0: all), oldest first. For long histories use MessageStream,
// which is not bounded by MaxResponseBody.
func (c *Client) Messages(ctx context.Context, group string, limit int) ([]Message, error) {
	return c.MessagesWith(ctx, group, MessageQuery{Limit: limit})
}

// MessageQuery selects messages: the latest Limit (0: all) and, with
// All, also the messages nodes exchange in connection groups (key package
// offers, welcome frames), which are left out by default. Follow applies
// to streams only.
type MessageQuery struct {
	Limit  int
	Follow bool
	All    bool
}

func (q MessageQuery) encode() string {
	v := url.Values{}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	if q.All {
		v.Set("all", "true")
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// MessagesWith is Messages with every query option.
func (c *Client) MessagesWith(ctx context.Context, group string, q MessageQuery) ([]Message, error) {
	q.Follow = false
	var out []Message
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupMessages, group)+q.encode(), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// MessageStreamWith is MessageStream with every query option.
func (c *Client) MessageStreamWith(ctx context.Context, group string, q MessageQuery) (*Stream[Message], error) {
	return OpenStream[Message](ctx, c, GroupPath(PathGroupStream, group)+q.encode())
}

// MessageStream opens GET /v1/groups/{group}/messages/stream: the latest
// limit messages (0: all), oldest first, then, with follow, every new
// message of the group exactly once until ctx ends or the stream is
// closed. Without follow the stream ends (io.EOF) after the listing.
func (c *Client) MessageStream(ctx context.Context, group string, limit int, follow bool) (*Stream[Message], error) {
	return c.MessageStreamWith(ctx, group, MessageQuery{Limit: limit, Follow: follow})
}

// Send calls POST /v1/groups/{group}/messages with a text for everyone in
// the group.
func (c *Client) Send(ctx context.Context, group, text string) (*SendResult, error) {
	return c.send1(ctx, group, &SendRequest{Text: text})
}

// SendDirect calls POST /v1/groups/{group}/messages with a text only the
// member with fingerprint to can read.
func (c *Client) SendDirect(ctx context.Context, group, to, text string) (*SendResult, error) {
	return c.send1(ctx, group, &SendRequest{Text: text, To: to})
}

func (c *Client) send1(ctx context.Context, group string, req *SendRequest) (*SendResult, error) {
	var out SendResult
	if err := c.Do(ctx, http.MethodPost, GroupPath(PathGroupMessages, group), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CatchUp calls POST /v1/groups/{group}/catchup: fetch what the group's
// hosts hold now instead of waiting for the periodic catch-up.
func (c *Client) CatchUp(ctx context.Context, group string) (*CatchUpResult, error) {
	var out CatchUpResult
	if err := c.Do(ctx, http.MethodPost, GroupPath(PathGroupCatchUp, group), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
