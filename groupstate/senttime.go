package groupstate

import (
	"fmt"
	"time"
)

// Sent times (ARCHITECTURE §11). A payload's sent time is its author's
// word: a member can write any time it likes under its own signature. It
// is shown as claimed, but it never decides the order alone: a message is
// placed at its claimed time clamped between what it must come after (its
// causal parents, the author's previous message, the author's joining, the
// group's creation) and when this member received it (OrderTime). A
// claimed time more than MaxClockSkew after the reception, or more than
// MaxClockSkew before the author joined or the group was created, is
// flagged (CheckSentTime): the display marks it, and the node records it.

// MaxClockSkew is how far a sent time may lie outside its bounds (in the
// future, before the author's joining) before it is flagged: clocks of
// honest members differ by a few seconds to minutes.
const MaxClockSkew = 10 * time.Minute

// TimeFlag says what is wrong with a claimed sent time.
type TimeFlag uint8

const (
	// TimeOK: within its bounds (up to MaxClockSkew off).
	TimeOK TimeFlag = iota
	// TimeFuture: more than MaxClockSkew after the member received it.
	TimeFuture
	// TimeBeforeJoin: more than MaxClockSkew before the author joined the
	// group (or before the group was created).
	TimeBeforeJoin
)

// String names the flag as the node records it.
func (f TimeFlag) String() string {
	switch f {
	case TimeOK:
		return "ok"
	case TimeFuture:
		return "sent_in_future"
	case TimeBeforeJoin:
		return "sent_before_join"
	}
	return fmt.Sprintf("TimeFlag(%d)", uint8(f))
}

// CheckSentTime judges a claimed sent time against when it was received
// and the earliest time its author could have sent it (the author's
// joining or the group's creation; zero when unknown).
func CheckSentTime(sent, received, notBefore time.Time) TimeFlag {
	switch {
	case sent.After(received.Add(MaxClockSkew)):
		return TimeFuture
	case !notBefore.IsZero() && sent.Before(notBefore.Add(-MaxClockSkew)):
		return TimeBeforeJoin
	}
	return TimeOK
}

// OrderTime is where a message goes in the display order: its claimed
// sent time, but no earlier than lower (the latest of its parents' and
// its author's previous message's order times, the author's joining, the
// group's creation) and no later than received. When lower is after
// received (a parent received later than this message, which a causal
// order cannot have), received wins: the order never moves a message past
// the moment it arrived.
func OrderTime(sent, lower, received time.Time) time.Time {
	t := sent
	if t.Before(lower) {
		t = lower
	}
	if t.After(received) {
		t = received
	}
	return t
}
