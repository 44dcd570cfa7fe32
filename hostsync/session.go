package hostsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/ratelimit"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/reconcile"
	"github.com/meshnode/meshnode/store"
)

// DeliverFunc durably stores a verified envelope received from a peer
// (the node's Deliver). duplicate reports an envelope already held.
type DeliverFunc func(ctx context.Context, env *envelope.Envelope, from peer.ID) (duplicate bool, err error)

// Stats describe one session, as seen by the side that ran it.
type Stats struct {
	// Rounds is the number of reconcile round trips: reconcile messages
	// both ways / 2, rounded up. The hello travels with the first message;
	// the transfer adds one round trip when anything moves, counted in
	// TransferRounds.
	Rounds         int
	TransferRounds int
	// BytesSent and BytesReceived count every frame (length prefixes
	// included) each way; ReconcileBytesSent and ReconcileBytesReceived the
	// part before the transfer (hello, status and reconcile messages).
	BytesSent, BytesReceived                   int64
	ReconcileBytesSent, ReconcileBytesReceived int64
	// Have and Need are the differences learnt: IDs this side holds that
	// the peer lacks, and the number of the peer's IDs this side lacks
	// (tombstones included).
	Have, Need int
	// Received counts new envelopes stored from the peer, Duplicates those
	// already held (they arrived meanwhile), Rejected valid envelopes the
	// store refused (quota, expired).
	Received, Duplicates, Rejected int
	// Sent counts envelopes pushed to the peer.
	Sent int
	// Missing counts IDs the peer lacks that this side could not push: it
	// holds them only as tombstones (removed by retention), or removed
	// them since the session began.
	Missing int
	// Truncated reports that a session limit (MaxEnvelopes, MaxBytes,
	// Reconcile.MaxLearnt, the peer's byte budget) cut the transfer short;
	// the next session continues. Throttled reports that it was the byte
	// budget (Params.PeerRate).
	Truncated, Throttled bool
	// ReconcileElapsed is the time from the start of the session to the
	// end of reconciliation; Elapsed the whole session.
	ReconcileElapsed time.Duration
	Elapsed          time.Duration
}

// session is the state shared by both sides of one session.
type session struct {
	ctx     context.Context
	c       *conn
	st      *store.Store
	deliver DeliverFunc
	p       Params
	m       envelope.MailboxID
	peer    peer.ID
	stats   Stats
	msgs    int // reconcile messages both ways
	start   time.Time
	budget  *ratelimit.Limiter[peer.ID] // envelope bytes moved per peer

	// beforeAck, if set, runs when the responder has stored everything
	// and is about to send its final status: the session no longer
	// counts as running for its (peer, mailbox).
	beforeAck func()
}

// violation marks err as the peer's fault.
func violation(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// reconcileErr classifies an error of a reconcile session: the peer's
// message broke the protocol, or reading our own set failed.
func reconcileErr(err error) error {
	for _, e := range []error{reconcile.ErrMalformed, reconcile.ErrVersion, reconcile.ErrTooLarge,
		reconcile.ErrProtocol, reconcile.ErrTooManyRounds} {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
	}
	return fmt.Errorf("hostsync: reconciling: %w", err)
}

// isViolation reports whether err is the peer's fault (a strike).
func isViolation(err error) bool {
	return errors.Is(err, ErrProtocol) || errors.Is(err, envelope.ErrBadSignature) ||
		errors.Is(err, envelope.ErrWrongMailbox) || errors.Is(err, envelope.ErrMalformed) ||
		errors.Is(err, envelope.ErrTooLarge) || errors.Is(err, envelope.ErrVersion)
}

// keep hands a verified envelope to the deliver function and counts the
// outcome. Refusals of the store are counted, not fatal; anything else
// (store closed, context ended) ends the session.
func (s *session) keep(e *envelope.Envelope) error {
	dup, err := s.deliver(s.ctx, e, s.peer)
	switch {
	case err == nil && dup:
		s.stats.Duplicates++
	case err == nil:
		s.stats.Received++
	case errors.Is(err, store.ErrExpired), errors.Is(err, store.ErrQuotaExceeded), errors.Is(err, store.ErrTooLarge):
		s.stats.Rejected++
	default:
		return fmt.Errorf("hostsync: storing %s: %w", e.ID().Short(), err)
	}
	return nil
}

// differ is what either side of reconcile tells a session afterwards.
type differ interface {
	Have() []envelope.ID
	NeedCount() int
	Take(envelope.ID) bool
	Truncated() bool
}

func (s *session) finishReconcile(d differ) {
	s.stats.Rounds = (s.msgs + 1) / 2
	s.stats.ReconcileBytesSent, s.stats.ReconcileBytesReceived = s.c.sent, s.c.recv
	s.stats.Have, s.stats.Need = len(d.Have()), d.NeedCount()
	s.stats.Truncated = d.Truncated()
	s.stats.ReconcileElapsed = time.Since(s.start)
}

// openSet opens the store's snapshot of the mailbox's sync set.
func (s *session) openSet() (*store.SyncView, error) {
	v, err := s.st.SyncView(s.m)
	if err != nil {
		return nil, fmt.Errorf("hostsync: sync set of %s: %w", s.m.Short(), err)
	}
	return v, nil
}

// initiate runs the initiator's side over an open stream: hello and the
// first reconcile message, the reconcile exchange, then the transfer:
// the initiator pushes, then the responder.
func (s *session) initiate() error {
	view, err := s.openSet()
	if err != nil {
		return err
	}
	ini, err := s.reconcileInitiator(view)
	view.Close() // the transfer reads envelopes afresh
	if err != nil {
		return err
	}
	s.finishReconcile(ini)
	if err := s.push(ini.Have()); err != nil {
		return err
	}
	if err := s.c.write([]byte{byte(frameDone)}); err != nil {
		return err
	}
	if err := s.c.flush(); err != nil {
		return err
	}
	// The responder's pushes, then its final status.
	if err := s.receive(ini, func(t frameType, b []byte) (bool, error) {
		if t != frameStatus {
			return false, violation("%v frame where a pushed envelope or the status was due", t)
		}
		sf, err := parseStatus(b)
		if err != nil {
			return false, err
		}
		if rerr := sf.code.Err(sf.msg); rerr != nil {
			return false, fmt.Errorf("hostsync: %s refused the transfer: %w", s.peer, rerr)
		}
		return true, nil
	}); err != nil {
		return err
	}
	if s.stats.Sent > 0 || s.stats.Received+s.stats.Duplicates+s.stats.Rejected > 0 {
		s.stats.TransferRounds = 1
	}
	return nil
}

func (s *session) reconcileInitiator(view *store.SyncView) (*reconcile.Initiator, error) {
	rp := s.p.Reconcile
	ini, err := reconcile.NewInitiator(storeSet{view}, rp)
	if err != nil {
		return nil, err
	}
	msg, err := ini.Initiate()
	if err != nil {
		return nil, reconcileErr(err)
	}
	// The first reconcile message travels with the hello: a refusal costs
	// it, an acceptance saves a round trip.
	h := &hello{mailbox: s.m, maxMessage: rp.MaxMessageSize, maxRounds: rp.MaxRounds}
	if err := s.c.write(h.marshal()); err != nil {
		return nil, err
	}
	if err := s.c.write(marshalReconcile(msg)); err != nil {
		return nil, err
	}
	if err := s.c.flush(); err != nil {
		return nil, err
	}
	s.msgs++
	if err := s.readStatus("session"); err != nil {
		return nil, err
	}
	for {
		t, b, err := s.c.read(1 + rp.MaxMessageSize)
		if err != nil {
			return nil, err
		}
		if t != frameReconcile {
			return nil, violation("%v frame during reconciliation", t)
		}
		s.msgs++
		reply, done, err := ini.Reconcile(b[1:])
		if err != nil {
			return nil, reconcileErr(err)
		}
		if reply != nil {
			if err := s.c.write(marshalReconcile(reply)); err != nil {
				return nil, err
			}
			if err := s.c.flush(); err != nil {
				return nil, err
			}
			s.msgs++
		}
		if done {
			return ini, nil
		}
	}
}

// readStatus reads a status frame and turns a refusal into the remote's
// error.
func (s *session) readStatus(what string) error {
	t, b, err := s.c.read(maxStatusSize)
	if err != nil {
		return err
	}
	if t != frameStatus {
		return violation("%v frame where a status was due", t)
	}
	sf, err := parseStatus(b)
	if err != nil {
		return err
	}
	if rerr := sf.code.Err(sf.msg); rerr != nil {
		return fmt.Errorf("hostsync: %s refused the %s: %w", s.peer, what, rerr)
	}
	return nil
}

// push sends the envelopes of have the peer lacks, within the session's
// limits (MaxEnvelopes, MaxBytes), skipping those held only as tombstones.
func (s *session) push(have []envelope.ID) error {
	var sent int64
	for _, id := range have {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		if s.stats.Sent >= s.p.MaxEnvelopes || sent >= s.p.MaxBytes {
			s.stats.Truncated = true
			return nil
		}
		e, err := s.st.Get(s.m, id)
		if errors.Is(err, store.ErrNotFound) {
			s.stats.Missing++ // a tombstone, or removed since
			continue
		}
		if err != nil {
			return fmt.Errorf("hostsync: loading %s to push: %w", id.Short(), err)
		}
		if s.budget != nil && !s.budget.Allow(s.peer, e.Size()) {
			s.stats.Truncated, s.stats.Throttled = true, true
			return nil
		}
		if err := s.c.write(marshalEnvelope(e)); err != nil {
			return err
		}
		s.stats.Sent++
		sent += int64(e.Size())
	}
	return nil
}

// maxTransferFrame is the largest frame read in the transfer.
func (s *session) maxTransferFrame() int {
	return max(1+s.p.MaxEnvelopeSize, maxStatusSize, doneSize)
}

// receive reads pushed envelopes until a frame that is not one, which end
// judges (true: the pushes are over). Every envelope must verify, belong
// to the mailbox and be one reconciliation said this side lacks (each
// once); past the session's limits the peer is cut off.
func (s *session) receive(d differ, end func(frameType, []byte) (bool, error)) error {
	var n int
	var bytes int64
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		t, b, err := s.c.read(s.maxTransferFrame())
		if err != nil {
			return err
		}
		if t != frameEnvelope {
			ok, err := end(t, b)
			if err != nil || ok {
				return err
			}
			continue
		}
		if n >= s.p.MaxEnvelopes || bytes >= s.p.MaxBytes {
			// Not a violation: the peer may run with larger limits.
			s.stats.Truncated = true
			return fmt.Errorf("hostsync: %s pushes past this session's limits (%d envelopes, %d bytes)", s.peer, s.p.MaxEnvelopes, s.p.MaxBytes)
		}
		e, err := openEnvelope(b, s.p.MaxEnvelopeSize, &s.m)
		if err != nil {
			return fmt.Errorf("%w: pushed envelope: %w", ErrProtocol, err)
		}
		if !d.Take(e.ID()) && !d.Truncated() {
			return violation("pushed %s, which reconciliation did not find missing here (or pushed it twice)", e.ID().Short())
		}
		n++
		bytes += int64(e.Size())
		if err := s.keep(e); err != nil {
			return err
		}
		if s.budget != nil && !s.budget.Allow(s.peer, e.Size()) {
			s.stats.Truncated, s.stats.Throttled = true, true
			return fmt.Errorf("%w: %s pushes past this node's sync bandwidth for it", ErrBusy, s.peer)
		}
	}
}

// respond runs the responder's side after the hello was accepted (the OK
// status is written by the caller): the reconcile exchange, then it takes
// the initiator's pushes and pushes its own.
func (s *session) respond(view *store.SyncView, h *hello) error {
	rp := s.p.Reconcile
	rp.MaxMessageSize, rp.MaxRounds = h.maxMessage, h.maxRounds
	res, err := reconcile.NewResponder(storeSet{view}, rp)
	if err != nil {
		view.Close()
		return err
	}
	err = s.respondReconcile(res, rp)
	view.Close()
	if err != nil {
		return err
	}
	s.finishReconcile(res)
	err = s.receive(res, func(t frameType, b []byte) (bool, error) {
		if t != frameDone || len(b) != doneSize {
			return false, violation("%v frame of %d bytes where a pushed envelope or done was due", t, len(b))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if err := s.push(res.Have()); err != nil {
		return err
	}
	if s.beforeAck != nil {
		s.beforeAck()
	}
	if err := s.c.write((&statusFrame{code: status.OK}).marshal()); err != nil {
		return err
	}
	return s.c.flush()
}

func (s *session) respondReconcile(res *reconcile.Responder, rp reconcile.Params) error {
	for {
		t, b, err := s.c.read(1 + rp.MaxMessageSize)
		if err != nil {
			return err
		}
		if t != frameReconcile {
			return violation("%v frame during reconciliation", t)
		}
		s.msgs++
		reply, done, err := res.Reconcile(b[1:])
		if err != nil {
			return reconcileErr(err)
		}
		if reply != nil {
			if err := s.c.write(marshalReconcile(reply)); err != nil {
				return err
			}
			s.msgs++
		}
		if err := s.c.flush(); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
