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
	// Have and BHave are what each side learnt it holds and the other
	// lacks, ascending.
	Have, BHave []envelope.ID
	// Elapsed is the wall time of the whole session, both sides included.
	Elapsed time.Duration
}

// Bytes returns the bytes sent both ways.
func (s Stats) Bytes() int { return s.BytesAToB + s.BytesBToA }

// Simulate runs a session between a (initiator) and b (responder) in
// memory and returns what it cost and what each side learnt. It fails
// with ErrProtocol if a side's haves are not exactly what the other side
// expects to receive (Take), as the sync protocol checks every transfer.
func Simulate(a, b Set, p Params) (Stats, error) {
	start := time.Now()
	var st Stats
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
	for msg != nil {
		st.Messages++
		st.BytesAToB += len(msg)
		reply, _, err := res.Reconcile(msg)
		if err != nil {
			return st, fmt.Errorf("reconcile: b, message %d: %w", st.Messages, err)
		}
		if reply == nil {
			break
		}
		st.Messages++
		st.BytesBToA += len(reply)
		msg, _, err = ini.Reconcile(reply)
		if err != nil {
			return st, fmt.Errorf("reconcile: a, message %d: %w", st.Messages, err)
		}
	}
	st.Rounds = (st.Messages + 1) / 2
	if !ini.finished || !res.finished {
		return st, fmt.Errorf("%w: the exchange stopped before both sides were done", ErrProtocol)
	}
	st.Have = slices.SortedFunc(slices.Values(ini.Have()), compareIDs)
	st.BHave = slices.SortedFunc(slices.Values(res.Have()), compareIDs)
	if ini.Truncated() || res.Truncated() {
		st.Elapsed = time.Since(start)
		return st, nil
	}
	if len(st.Have) != res.NeedCount() || len(st.BHave) != ini.NeedCount() {
		return st, fmt.Errorf("%w: a has %d for b, which expects %d; b has %d for a, which expects %d",
			ErrProtocol, len(st.Have), res.NeedCount(), len(st.BHave), ini.NeedCount())
	}
	for _, id := range st.Have {
		if !res.Take(id) {
			return st, fmt.Errorf("%w: b does not expect %s, which a has for it", ErrProtocol, id.Short())
		}
	}
	for _, id := range st.BHave {
		if !ini.Take(id) {
			return st, fmt.Errorf("%w: a does not expect %s, which b has for it", ErrProtocol, id.Short())
		}
	}
	st.Elapsed = time.Since(start)
	return st, nil
}
