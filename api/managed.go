package api

import (
	"context"
	"net/http"
	"time"
)

// Paths of the managed-group endpoints (ARCHITECTURE §7). {group} is a
// group ID or unique name and {fingerprint} a member's fingerprint, both
// path-escaped (GroupPath, MemberPath).
const (
	PathManagedGroups   = "/" + Version + "/managed-groups"
	PathKeyPackages     = "/" + Version + "/keypackages"
	PathGroupAdd        = PathGroup + "/add"
	PathGroupMember     = PathGroupMembers + "/{fingerprint}"
	PathGroupMemberRole = PathGroupMember + "/role"
	PathGroupRotate     = PathGroup + "/rotate"
	PathGroupPolicy     = PathGroup + "/policy"
	PathGroupSplits     = PathGroup + "/splits"
	PathGroupManagers   = PathGroup + "/managers"
	PathGroupTransfer   = PathGroup + "/transfer-manager"
	PathGroupHosts      = PathGroup + "/hosts"
	PathGroupLeave      = PathGroup + "/leave"
)

// Error codes of the managed-group endpoints.
const (
	CodeNotManaged    = "not_managed"     // 409: a management operation on an open group
	CodeNotManager    = "not_manager"     // 403: this member does not have the manage role
	CodeRemoved       = "removed"         // 403: this member was removed from the group
	CodeNoBot         = "no_bot"          // 409: --via-bot in a group without a bot manager
	CodeBadKeyPackage = "bad_key_package" // 400: a key package that does not parse, verify or has expired
	CodeNoInvite      = "no_invite"       // 409: an invite asked for a managed group
	CodeRefused       = "refused"         // 409: the state chain refuses the operation (last manager, not applicable)
	CodeUndelivered   = "undelivered"     // 503: leaving: no group host stored the removal; the group is kept
)

// Message kinds of managed groups.
const (
	// KindEvent is an accepted state event or rotation, in words.
	KindEvent = "event"
	// KindSplit is a warning written by the node: the group's manager
	// showed members different states or keys (two events it signed on
	// one parent).
	KindSplit = "split"
	// KindEquivocation is a warning written by the node: a member signed
	// two different messages with one sequence number.
	KindEquivocation = "equivocation"
)

// MemberPath fills the {group} and {fingerprint} of a per-member path.
func MemberPath(pattern, group, fingerprint string) string {
	return pathWith(GroupPath(pattern, group), "fingerprint", fingerprint)
}

// CreateManagedRequest is the body of POST /v1/managed-groups.
type CreateManagedRequest struct {
	Name  string   `json:"name"`
	Hosts []string `json:"hosts"`
	// History is "shared" (default) or "from-join".
	History string `json:"history,omitempty"`
	// RotateEvery is a Go duration ("24h"; empty: never), at least 1m.
	RotateEvery string `json:"rotate_every,omitempty"`
	// RotateAfter rotates after this many messages in an epoch (0: never).
	RotateAfter uint64 `json:"rotate_after,omitempty"`
}

// AddMemberRequest is the body of POST /v1/groups/{group}/add.
type AddMemberRequest struct {
	KeyPackage string `json:"key_package"`
	// Role is read, write or manage.
	Role string `json:"role"`
	// Bot marks the member as an always-on manager.
	Bot bool `json:"bot,omitempty"`
	// ViaBot asks the group's bot to do it.
	ViaBot bool `json:"via_bot,omitempty"`
}

// SetRoleRequest is the body of PUT /v1/groups/{group}/members/{fingerprint}/role.
type SetRoleRequest struct {
	Role   string `json:"role"`
	ViaBot bool   `json:"via_bot,omitempty"`
}

// ManageRequest is the body of the management calls without other
// parameters (remove, rotate).
type ManageRequest struct {
	ViaBot bool `json:"via_bot,omitempty"`
}

// ManagerRequest is the body of POST /v1/groups/{group}/managers (make a
// member a manager) and POST /v1/groups/{group}/transfer-manager (hand
// this member's management to a member, who becomes a manager while this
// one becomes a writer).
type ManagerRequest struct {
	// Fingerprint is the member's fingerprint.
	Fingerprint string `json:"fingerprint"`
	ViaBot      bool   `json:"via_bot,omitempty"`
}

// SetHostsRequest is the body of PUT /v1/groups/{group}/hosts.
type SetHostsRequest struct {
	// Hosts are multiaddrs ending in /p2p/PEERID, in order of preference;
	// empty: the members' own nodes only.
	Hosts  []string `json:"hosts"`
	ViaBot bool     `json:"via_bot,omitempty"`
}

// GroupHosts is the answer of GET /v1/groups/{group}/hosts: the hosts this
// node relays the group's messages to and fetches them from.
type GroupHosts struct {
	Hosts []string `json:"hosts"`
}

// PolicyRequest is the body of PUT /v1/groups/{group}/policy: only the
// fields set change.
type PolicyRequest struct {
	History     *string `json:"history,omitempty"`
	RotateEvery *string `json:"rotate_every,omitempty"` // Go duration, "0" for never
	RotateAfter *uint64 `json:"rotate_after,omitempty"`
	ViaBot      bool    `json:"via_bot,omitempty"`
}

// Policy is a managed group's policy.
type Policy struct {
	History string `json:"history"`
	// RotateEvery is a Go duration, "" for never.
	RotateEvery string `json:"rotate_every,omitempty"`
	RotateAfter uint64 `json:"rotate_after,omitempty"`
}

// ManageResult reports a management operation.
type ManageResult struct {
	Group string `json:"group"`
	// Epoch and Head are the group's epoch and state head afterwards.
	Epoch  uint64   `json:"epoch"`
	Head   string   `json:"head"`
	Events []string `json:"events"`
	// Rotated is set when the operation started a new epoch.
	Rotated bool `json:"rotated"`
	// Requested is set when the group's bot was asked to do it.
	Requested bool              `json:"requested,omitempty"`
	Delivered int               `json:"delivered"`
	Failed    map[string]string `json:"failed,omitempty"`
}

// Split is a detected split: the group's manager showed members
// different states or keys.
type Split struct {
	Group  string `json:"group"`
	Epoch  uint64 `json:"epoch"`
	Head   string `json:"head,omitempty"`
	Author string `json:"author,omitempty"`
	// Signers are the fingerprints of who signed the two events.
	Signers []string `json:"signers,omitempty"`
	Reason  string   `json:"reason"`
	// Evidence is the hex of two signed events extending one head, when
	// both are known: anyone can verify it.
	Evidence string    `json:"evidence,omitempty"`
	Detected time.Time `json:"detected"`
}

// NewKeyPackageRequest is the body of POST /v1/keypackages.
type NewKeyPackageRequest struct {
	// TTL is a Go duration (empty: the node's default, a week).
	TTL string `json:"ttl,omitempty"`
	// Hosts are where to look for the welcome (multiaddrs with /p2p/),
	// usually the hosts of the group to join.
	Hosts []string `json:"hosts,omitempty"`
}

// KeyPackage is an own key package awaiting its welcome.
type KeyPackage struct {
	KeyPackage  string    `json:"key_package"`
	Fingerprint string    `json:"fingerprint"`
	Nick        string    `json:"nick"`
	Expires     time.Time `json:"expires"`
	Hosts       []string  `json:"hosts"`
}

// CreateManagedGroup calls POST /v1/managed-groups.
func (c *Client) CreateManagedGroup(ctx context.Context, req *CreateManagedRequest) (*CreatedGroup, error) {
	var out CreatedGroup
	if err := c.Do(ctx, http.MethodPost, PathManagedGroups, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// NewKeyPackage calls POST /v1/keypackages: a key package to give a
// group's manager; the daemon watches for its welcome.
func (c *Client) NewKeyPackage(ctx context.Context, req *NewKeyPackageRequest) (*KeyPackage, error) {
	var out KeyPackage
	if err := c.Do(ctx, http.MethodPost, PathKeyPackages, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// KeyPackages calls GET /v1/keypackages: the key packages awaiting a
// welcome.
func (c *Client) KeyPackages(ctx context.Context) ([]KeyPackage, error) {
	var out []KeyPackage
	if err := c.Do(ctx, http.MethodGet, PathKeyPackages, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// AddMember calls POST /v1/groups/{group}/add.
func (c *Client) AddMember(ctx context.Context, group string, req *AddMemberRequest) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPost, GroupPath(PathGroupAdd, group), req)
}

// RemoveMember calls DELETE /v1/groups/{group}/members/{fingerprint}.
func (c *Client) RemoveMember(ctx context.Context, group, fingerprint string, viaBot bool) (*ManageResult, error) {
	return c.manage(ctx, http.MethodDelete, MemberPath(PathGroupMember, group, fingerprint), &ManageRequest{ViaBot: viaBot})
}

// SetRole calls PUT /v1/groups/{group}/members/{fingerprint}/role.
func (c *Client) SetRole(ctx context.Context, group, fingerprint string, req *SetRoleRequest) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPut, MemberPath(PathGroupMemberRole, group, fingerprint), req)
}

// Rotate calls POST /v1/groups/{group}/rotate.
func (c *Client) Rotate(ctx context.Context, group string, viaBot bool) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPost, GroupPath(PathGroupRotate, group), &ManageRequest{ViaBot: viaBot})
}

// SetPolicy calls PUT /v1/groups/{group}/policy.
func (c *Client) SetPolicy(ctx context.Context, group string, req *PolicyRequest) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPut, GroupPath(PathGroupPolicy, group), req)
}

// Policy calls GET /v1/groups/{group}/policy.
func (c *Client) Policy(ctx context.Context, group string) (*Policy, error) {
	var out Policy
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupPolicy, group), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Splits calls GET /v1/groups/{group}/splits.
func (c *Client) Splits(ctx context.Context, group string) ([]Split, error) {
	var out []Split
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupSplits, group), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// AddManager calls POST /v1/groups/{group}/managers.
func (c *Client) AddManager(ctx context.Context, group, fingerprint string, viaBot bool) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPost, GroupPath(PathGroupManagers, group), &ManagerRequest{Fingerprint: fingerprint, ViaBot: viaBot})
}

// TransferManager calls POST /v1/groups/{group}/transfer-manager.
func (c *Client) TransferManager(ctx context.Context, group, fingerprint string, viaBot bool) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPost, GroupPath(PathGroupTransfer, group), &ManagerRequest{Fingerprint: fingerprint, ViaBot: viaBot})
}

// GroupHosts calls GET /v1/groups/{group}/hosts.
func (c *Client) GroupHosts(ctx context.Context, group string) (*GroupHosts, error) {
	var out GroupHosts
	if err := c.Do(ctx, http.MethodGet, GroupPath(PathGroupHosts, group), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetHosts calls PUT /v1/groups/{group}/hosts.
func (c *Client) SetHosts(ctx context.Context, group string, req *SetHostsRequest) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPut, GroupPath(PathGroupHosts, group), req)
}

// LeaveGroup calls POST /v1/groups/{group}/leave: this member leaves the
// group (in a managed group, the manager removes it and rotates) and the
// node forgets it.
func (c *Client) LeaveGroup(ctx context.Context, group string) (*ManageResult, error) {
	return c.manage(ctx, http.MethodPost, GroupPath(PathGroupLeave, group), nil)
}

func (c *Client) manage(ctx context.Context, method, path string, req any) (*ManageResult, error) {
	var out ManageResult
	if err := c.Do(ctx, method, path, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
