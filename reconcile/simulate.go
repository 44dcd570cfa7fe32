package reconcile

import (
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/envelope"
)

// Stats describe one simulated session.
type Stats struct {
	// Rounds is the number of round trips: messages / 2, rounded up.
	Rounds int
	// Messages is the number of messages sent, both ways.
	Messages int
	// BytesAToB and BytesBToA are the bytes sent by the initiator (a) and
	// by the responder (b).
	BytesAToB, BytesBToA int
	// NaiveBytes is what sending all of a's IDs to b would cost (32 per ID).
	NaiveBytes int
	// Have and Need are what a learnt, ascending: the IDs a has that b
	// lacks, and the IDs b has that a lacks.
	Have, Need []envelope.ID
	// BHave and BNeed are what b learnt, ascending; they equal Need and Have.
	BHave, BNeed []envelope.ID
	// Elapsed is the wall time of the whole session, both sides included.
	Elapsed time.Duration
}

// Bytes returns the bytes sent both ways.
func (s Stats) Bytes() int { return s.BytesAToB + s.BytesBToA }

// Simulate runs a session between a (initiator) and b (responder) in
// memory and returns what it cost and what each side learnt. It fails with
// ErrProtocol if the sides disagree about the difference.
func Simulate(a, b Set, p Params) (Stats, error) {
	start := time.Now()
	var st Stats
	_, na, err := a.Fingerprint(Lowest(), Infinity())
	if err != nil {
		return st, fmt.Errorf("reconcile: size of a: %w", err)
	}
	st.NaiveBytes = IDSize * na
	ini, err := NewInitiator(a, p)
	if err != nil {
		return st, err
	}
	res, err := NewResponder(b, p)
	if err != nil {
		return st, err
	}
	msg, err := ini.Initiate()
	if err != nil {
		return st, fmt.Errorf("reconcile: a: %w", err)
	}
	var aDone, bDone bool
	for msg != nil {
		st.Messages++
		st.BytesAToB += len(msg)
		reply, have, need, done, err := res.Reconcile(msg)
		bDone = done
		if err != nil {
			return st, fmt.Errorf("reconcile: b, message %d: %w", st.Messages, err)
		}
		st.BHave, st.BNeed = append(st.BHave, have...), append(st.BNeed, need...)
		if reply == nil {
			break
		}
		st.Messages++
		st.BytesBToA += len(reply)
		msg, have, need, aDone, err = ini.Reconcile(reply)
		if err != nil {
			return st, fmt.Errorf("reconcile: a, message %d: %w", st.Messages, err)
		}
		st.Have, st.Need = append(st.Have, have...), append(st.Need, need...)
	}
	st.Rounds = (st.Messages + 1) / 2
	if !aDone || !bDone {
		return st, fmt.Errorf("%w: the exchange stopped before both sides were done", ErrProtocol)
	}
	for _, l := range [][]envelope.ID{st.Have, st.Need, st.BHave, st.BNeed} {
		slices.SortFunc(l, compareIDs)
	}
	if !slices.Equal(st.Have, st.BNeed) || !slices.Equal(st.Need, st.BHave) {
		return st, fmt.Errorf("%w: the sides learnt different differences (a: %d have, %d need; b: %d have, %d need)",
			ErrProtocol, len(st.Have), len(st.Need), len(st.BHave), len(st.BNeed))
	}
	st.Elapsed = time.Since(start)
	return st, nil
}
