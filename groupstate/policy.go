package groupstate

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// Role is a member's permission in a managed group. Each role includes the
// ones below it: write includes read, manage includes write.
type Role uint8

const (
	// RoleRead: the member holds R_n and WPub_n, reads but cannot post
	// (hosts refuse envelopes not signed with the epoch write key).
	RoleRead Role = 1
	// RoleWrite: the member also holds W_n and can post.
	RoleWrite Role = 2
	// RoleManage: the member can also author state events (add, remove,
	// roles, policy, hosts, rotate).
	RoleManage Role = 3
)

func (r Role) valid() bool { return r >= RoleRead && r <= RoleManage }

// CanWrite reports whether the role holds the write secret.
func (r Role) CanWrite() bool { return r >= RoleWrite && r.valid() }

// CanManage reports whether the role may author state events.
func (r Role) CanManage() bool { return r == RoleManage }

// String returns "read", "write" or "manage".
func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	case RoleManage:
		return "manage"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ParseRole parses "read", "write" or "manage" (any case).
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read":
		return RoleRead, nil
	case "write":
		return RoleWrite, nil
	case "manage":
		return RoleManage, nil
	}
	return 0, fmt.Errorf("%w: role %q; use read, write or manage", ErrInvalidEvent, s)
}

// ParseHistoryMode parses "shared" or "from-join" (any case).
func ParseHistoryMode(s string) (HistoryMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "shared":
		return HistoryShared, nil
	case "from-join":
		return HistoryFromJoin, nil
	}
	return 0, fmt.Errorf("%w: history %q; use shared or from-join", ErrInvalidPolicy, s)
}

// Policy limits.
const (
	// MinRotateEvery is the shortest periodic rotation a policy accepts: a
	// rotation costs every member an HPKE open and moves the group to a new
	// mailbox, so more often than this is a mistake.
	MinRotateEvery = time.Minute
	// MaxRotateEvery is the longest period (about ten years).
	MaxRotateEvery = 10 * 365 * 24 * time.Hour
)

// Policy is a managed group's key rotation and history policy. Rotation on
// remove is not a setting: it is always due. Rotation on add is due when
// History is HistoryFromJoin (the newcomer must not read the epoch it joins
// in). Rotation on demand is a manager request.
type Policy struct {
	History HistoryMode
	// RotateEvery rotates periodically (0: never). Whole seconds, at
	// least MinRotateEvery.
	RotateEvery time.Duration
	// RotateAfter rotates after this many messages in an epoch (0: never).
	RotateAfter uint64
}

// DefaultPolicy is shared history and no periodic rotation.
func DefaultPolicy() Policy { return Policy{History: HistoryShared} }

func (p Policy) validate() error {
	switch {
	case !p.History.valid():
		return fmt.Errorf("%w: history mode %d", ErrInvalidPolicy, p.History)
	case p.RotateEvery < 0:
		return fmt.Errorf("%w: negative rotation period %v", ErrInvalidPolicy, p.RotateEvery)
	case p.RotateEvery != 0 && p.RotateEvery < MinRotateEvery:
		return fmt.Errorf("%w: rotation period %v is shorter than %v", ErrInvalidPolicy, p.RotateEvery, MinRotateEvery)
	case p.RotateEvery > MaxRotateEvery:
		return fmt.Errorf("%w: rotation period %v is longer than %v", ErrInvalidPolicy, p.RotateEvery, MaxRotateEvery)
	case p.RotateEvery%time.Second != 0:
		return fmt.Errorf("%w: rotation period %v is not whole seconds", ErrInvalidPolicy, p.RotateEvery)
	}
	return nil
}

// policySize is the encoded size: 1 history ‖ 8 period in seconds ‖ 8
// message count.
const policySize = 1 + 8 + 8

func appendPolicy(b []byte, p Policy) []byte {
	b = append(b, byte(p.History))
	b = binary.BigEndian.AppendUint64(b, uint64(p.RotateEvery/time.Second))
	return binary.BigEndian.AppendUint64(b, p.RotateAfter)
}

func readPolicy(d *decoder) (Policy, error) {
	h := HistoryMode(d.u8())
	secs := d.u64()
	after := d.u64()
	if !d.ok {
		return Policy{}, fmt.Errorf("truncated policy")
	}
	if secs > uint64(MaxRotateEvery/time.Second) {
		return Policy{}, fmt.Errorf("rotation period of %d seconds is too long", secs)
	}
	p := Policy{History: h, RotateEvery: time.Duration(secs) * time.Second, RotateAfter: after}
	return p, p.validate()
}

// RotationReason says why a rotation is due.
type RotationReason uint8

const (
	// RotateNotDue: no rotation is due.
	RotateNotDue RotationReason = 0
	// RotateRemoved: a member was removed (or left) since the last
	// rotation; it still holds the current secrets.
	RotateRemoved RotationReason = 1
	// RotateDemoted: a member lost the write role since the last rotation;
	// it still holds the current write secret.
	RotateDemoted RotationReason = 2
	// RotateAdded: a member was added under from-join history; it must not
	// read the epoch it was added in.
	RotateAdded RotationReason = 3
	// RotatePeriodic: the policy's RotateEvery has passed.
	RotatePeriodic RotationReason = 4
	// RotateMessages: the policy's RotateAfter messages were sent.
	RotateMessages RotationReason = 5
)

// String names the reason.
func (r RotationReason) String() string {
	switch r {
	case RotateNotDue:
		return "not due"
	case RotateRemoved:
		return "member removed"
	case RotateDemoted:
		return "member lost write access"
	case RotateAdded:
		return "member added under from-join history"
	case RotatePeriodic:
		return "rotation period elapsed"
	case RotateMessages:
		return "message count reached"
	}
	return fmt.Sprintf("RotationReason(%d)", uint8(r))
}

// AutoRotateGrace is how long a group's automatic manager leaves a
// rotation that another manager's event made due to that manager, which
// rotates in the same operation (a removal, a demotion or an add under
// from-join history and its rotation are committed together): the two
// envelopes may arrive a moment apart, and a second rotation on the same
// head would fork the chain.
const AutoRotateGrace = 10 * time.Second

// AutoRotationDue is NeedsRotation for a group's automatic manager self:
// a membership reason another manager caused — one still a manager, which
// rotates itself — waits AutoRotateGrace from its event's time (an event
// dated more than AutoRotateGrace ahead gets no wait at all, so a
// manager's clock cannot hold a rotation off).
// A reason caused by the automatic manager itself, or by a manager gone
// since (one that removed itself), is due at once. The policy's reasons
// (period, message count) are NeedsRotation's.
func AutoRotationDue(st *State, self [32]byte, messagesSinceRotation uint64, now time.Time) (bool, RotationReason) {
	due, why := NeedsRotation(st, st.RotatedAt, messagesSinceRotation, now)
	if !due || st.RotationDue == RotateNotDue || st.DueBy == self {
		return due, why
	}
	if by, ok := st.Members[st.DueBy]; !ok || !by.Role.CanManage() {
		return due, why
	}
	at := time.UnixMilli(st.DueAt)
	if at.After(now.Add(AutoRotateGrace)) {
		return due, why // no credit for a clock far ahead
	}
	if now.Before(at.Add(AutoRotateGrace)) {
		return false, RotateNotDue
	}
	return due, why
}

// NeedsRotation says whether a manager (the bot) should rotate now, and
// why. Membership reasons come first: they are recorded in the state by the
// events that caused them (State.RotationDue) and cleared by the next
// rotate event. Then the policy's period (since lastRotation, which the
// caller takes from State.RotatedAt or its own record) and message count.
func NeedsRotation(st *State, lastRotation time.Time, messagesSinceRotation uint64, now time.Time) (bool, RotationReason) {
	if st == nil {
		return false, RotateNotDue
	}
	if st.RotationDue != RotateNotDue {
		return true, st.RotationDue
	}
	if p := st.Policy.RotateEvery; p > 0 && !now.Before(lastRotation.Add(p)) {
		return true, RotatePeriodic
	}
	if n := st.Policy.RotateAfter; n > 0 && messagesSinceRotation >= n {
		return true, RotateMessages
	}
	return false, RotateNotDue
}
