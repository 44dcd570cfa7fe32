package hostsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
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
	// the transfer adds one round trip per batch that requests envelopes,
	// counted in TransferRounds.
	Rounds         int
	TransferRounds int
	// BytesSent and BytesReceived count every frame (length prefixes
	// included) each way; ReconcileBytesSent and ReconcileBytesReceived the
	// part before the transfer (hello, status and reconcile messages).
	BytesSent, BytesReceived                   int64
	ReconcileBytesSent, ReconcileBytesReceived int64
	// Have and Need are the differences learnt: IDs this side holds that
	// the peer lacks, and the reverse (tombstones included).
	Have, Need int
	// Received counts new envelopes stored from the peer, Duplicates those
	// already held (they arrived meanwhile), Rejected valid envelopes the
	// store refused (quota, expired).
	Received, Duplicates, Rejected int
	// Sent counts envelopes sent to the peer (pushed or served).
	Sent int
	// Missing counts requested IDs that could not be served because the
	// holder removed them by retention (or, for a responder, were past its
	// session limits).
	Missing int
	// Truncated reports that a session limit (MaxEnvelopes, MaxBytes,
	// MaxLearnt) cut the transfer short; the next session continues.
	Truncated bool
	Elapsed   time.Duration
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

// learnt collects IDs reported by reconciliation, up to a limit.
type learnt struct {
	ids      []envelope.ID
	set      map[envelope.ID]struct{} // kept only when index is true
	limit    int
	overflow bool
}

func newLearnt(limit int, index bool) *learnt {
	l := &learnt{limit: limit}
	if index {
		l.set = make(map[envelope.ID]struct{})
	}
	return l
}

func (l *learnt) add(ids []envelope.ID) {
	for _, id := range ids {
		if len(l.ids) == l.limit {
			l.overflow = true
			return
		}
		l.ids = append(l.ids, id)
		if l.set != nil {
			l.set[id] = struct{}{}
		}
	}
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

func (s *session) finishReconcile() {
	s.stats.Rounds = (s.msgs + 1) / 2
	s.stats.ReconcileBytesSent, s.stats.ReconcileBytesReceived = s.c.sent, s.c.recv
}

// initiate runs the initiator's side over an open stream: hello and the
// first reconcile message, the reconcile exchange, then the transfer.
func (s *session) initiate(set reconcile.Set) error {
	ini, err := reconcile.NewInitiator(set, s.p.Reconcile)
	if err != nil {
		return err
	}
	msg, err := ini.Initiate()
	if err != nil {
		return reconcileErr(err)
	}
	// The first reconcile message travels with the hello: a refusal costs
	// it, an acceptance saves a round trip.
	if err := s.c.write((&hello{mailbox: s.m, params: s.p.Reconcile}).marshal()); err != nil {
		return err
	}
	if err := s.c.write(marshalReconcile(msg)); err != nil {
		return err
	}
	if err := s.c.flush(); err != nil {
		return err
	}
	s.msgs++
	if err := s.readStatus("session"); err != nil {
		return err
	}

	have, need := newLearnt(s.p.MaxLearnt, false), newLearnt(s.p.MaxLearnt, false)
	for {
		t, b, err := s.c.read(1 + s.p.Reconcile.MaxMessageSize)
		if err != nil {
			return err
		}
		if t != frameReconcile {
			return violation("%v frame during reconciliation", t)
		}
		s.msgs++
		reply, h, n, done, err := ini.Reconcile(b[1:])
		if err != nil {
			return reconcileErr(err)
		}
		have.add(h)
		need.add(n)
		if reply != nil {
			if err := s.c.write(marshalReconcile(reply)); err != nil {
				return err
			}
			if err := s.c.flush(); err != nil {
				return err
			}
			s.msgs++
		}
		if done {
			break
		}
	}
	s.finishReconcile()
	s.stats.Have, s.stats.Need = len(have.ids), len(need.ids)
	s.stats.Truncated = have.overflow || need.overflow
	if err := s.transfer(need.ids, have.ids); err != nil {
		return err
	}
	if err := s.c.write([]byte{byte(frameDone)}); err != nil {
		return err
	}
	if err := s.c.flush(); err != nil {
		return err
	}
	return s.readStatus("transfer")
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

// transfer requests the wanted IDs and pushes the pushes, in batches. Each
// batch that requests anything is answered, one frame per wanted ID, in
// order, before the next batch goes out.
func (s *session) transfer(wants, pushes []envelope.ID) error {
	if len(wants) > s.p.MaxEnvelopes {
		wants, s.stats.Truncated = wants[:s.p.MaxEnvelopes], true
	}
	var sentBytes, recvBytes int64
	wi, pi := 0, 0
	for wi < len(wants) || pi < len(pushes) {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		var envs []*envelope.Envelope
		batchBytes := 0
		for pi < len(pushes) && len(envs) < MaxPushPerBatch {
			if s.stats.Sent+len(envs) >= s.p.MaxEnvelopes || sentBytes >= s.p.MaxBytes {
				s.stats.Truncated, pi = true, len(pushes)
				break
			}
			e, err := s.st.Get(s.m, pushes[pi])
			if errors.Is(err, store.ErrNotFound) {
				pi++ // a tombstone, or removed since: nothing to send
				continue
			}
			if err != nil {
				return fmt.Errorf("hostsync: loading %s to push: %w", pushes[pi].Short(), err)
			}
			if len(envs) > 0 && batchBytes+e.Size() > s.p.MaxBatchBytes {
				break
			}
			envs = append(envs, e)
			batchBytes += e.Size()
			sentBytes += int64(e.Size())
			pi++
		}
		ask := wants[wi:min(wi+MaxWantPerBatch, len(wants))]
		wi += len(ask)
		if len(ask) == 0 && len(envs) == 0 {
			break
		}
		if err := s.c.write((&batch{pushes: len(envs), wants: ask}).marshal()); err != nil {
			return err
		}
		for _, e := range envs {
			if err := s.c.write(marshalEnvelope(e)); err != nil {
				return err
			}
		}
		if err := s.c.flush(); err != nil {
			return err
		}
		s.stats.Sent += len(envs)
		if len(ask) > 0 {
			s.stats.TransferRounds++
		}
		for _, id := range ask {
			n, err := s.receiveAnswer(id)
			if err != nil {
				return err
			}
			recvBytes += int64(n)
		}
		if recvBytes >= s.p.MaxBytes && wi < len(wants) {
			s.stats.Truncated, wi = true, len(wants)
		}
	}
	return nil
}

// receiveAnswer reads the answer to the wanted id: its envelope, which
// must verify and hash to id, or a missing frame naming id. It returns
// the envelope bytes received.
func (s *session) receiveAnswer(id envelope.ID) (int, error) {
	t, b, err := s.c.read(1 + s.p.MaxEnvelopeSize)
	if err != nil {
		return 0, err
	}
	switch t {
	case frameEnvelope:
		e, err := openEnvelope(b, s.p.MaxEnvelopeSize, &s.m)
		if err != nil {
			return 0, fmt.Errorf("%w: answer to %s: %w", ErrProtocol, id.Short(), err)
		}
		if e.ID() != id {
			return 0, violation("asked for %s, got %s", id.Short(), e.ID().Short())
		}
		return e.Size(), s.keep(e)
	case frameMissing:
		got, err := parseMissing(b)
		if err != nil {
			return 0, err
		}
		if got != id {
			return 0, violation("asked for %s, told %s is missing", id.Short(), got.Short())
		}
		s.stats.Missing++
		return 0, nil
	}
	return 0, violation("%v frame where the answer to %s was due", t, id.Short())
}

// respond runs the responder's side after the hello was accepted (the OK
// status is written by the caller): the reconcile exchange, then it
// serves batches until the initiator is done.
func (s *session) respond(set reconcile.Set, rp reconcile.Params) error {
	res, err := reconcile.NewResponder(set, rp)
	if err != nil {
		return err
	}
	need := newLearnt(s.p.MaxLearnt, true)
	for {
		t, b, err := s.c.read(1 + rp.MaxMessageSize)
		if err != nil {
			return err
		}
		if t != frameReconcile {
			return violation("%v frame during reconciliation", t)
		}
		s.msgs++
		reply, h, n, done, err := res.Reconcile(b[1:])
		if err != nil {
			return reconcileErr(err)
		}
		s.stats.Have += len(h)
		need.add(n)
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
			break
		}
	}
	s.finishReconcile()
	s.stats.Need = len(need.ids)
	s.stats.Truncated = need.overflow
	return s.serve(need)
}

// maxTransferFrame is the largest frame a responder reads in the transfer.
func (s *session) maxTransferFrame() int {
	return max(maxBatchSize, 1+s.p.MaxEnvelopeSize, doneSize)
}

// serve answers batches until the done frame.
func (s *session) serve(need *learnt) error {
	answered := make(map[envelope.ID]struct{})
	received := make(map[envelope.ID]struct{})
	var sentBytes, recvBytes int64
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		t, b, err := s.c.read(s.maxTransferFrame())
		if err != nil {
			return err
		}
		switch t {
		case frameDone:
			if len(b) != doneSize {
				return violation("done frame of %d bytes", len(b))
			}
			if s.beforeAck != nil {
				s.beforeAck()
			}
			if err := s.c.write((&statusFrame{code: status.OK}).marshal()); err != nil {
				return err
			}
			return s.c.flush()
		case frameBatch:
		default:
			return violation("%v frame where a batch was due", t)
		}
		q, err := parseBatch(b)
		if err != nil {
			return err
		}
		for range q.pushes {
			if len(received) >= s.p.MaxEnvelopes || recvBytes >= s.p.MaxBytes {
				// Not a violation: the peer may run with larger limits.
				s.stats.Truncated = true
				return fmt.Errorf("hostsync: %s pushes past this session's limits (%d envelopes, %d bytes)", s.peer, s.p.MaxEnvelopes, s.p.MaxBytes)
			}
			n, err := s.receivePush(need, received)
			if err != nil {
				return err
			}
			recvBytes += int64(n)
		}
		for _, id := range q.wants {
			if _, again := answered[id]; again {
				return violation("%s wanted twice", id.Short())
			}
			answered[id] = struct{}{}
			n, err := s.answer(id, sentBytes)
			if err != nil {
				return err
			}
			sentBytes += int64(n)
		}
		if err := s.c.flush(); err != nil {
			return err
		}
	}
}

// receivePush reads one pushed envelope: it must verify, belong to the
// mailbox, be one reconciliation announced (unless more were announced
// than we kept) and not come twice.
func (s *session) receivePush(need *learnt, received map[envelope.ID]struct{}) (int, error) {
	t, b, err := s.c.read(1 + s.p.MaxEnvelopeSize)
	if err != nil {
		return 0, err
	}
	if t != frameEnvelope {
		return 0, violation("%v frame where a pushed envelope was due", t)
	}
	e, err := openEnvelope(b, s.p.MaxEnvelopeSize, &s.m)
	if err != nil {
		return 0, fmt.Errorf("%w: pushed envelope: %w", ErrProtocol, err)
	}
	id := e.ID()
	if _, ok := need.set[id]; !ok && !need.overflow {
		return 0, violation("pushed %s, which reconciliation did not announce", id.Short())
	}
	if _, again := received[id]; again {
		return 0, violation("pushed %s twice", id.Short())
	}
	received[id] = struct{}{}
	return e.Size(), s.keep(e)
}

// answer writes the answer to one wanted ID: the envelope, or a missing
// frame if it is not live here (removed by retention) or past this
// session's limits.
func (s *session) answer(id envelope.ID, sentBytes int64) (int, error) {
	if s.stats.Sent >= s.p.MaxEnvelopes || sentBytes >= s.p.MaxBytes {
		s.stats.Truncated = true
		s.stats.Missing++
		return 0, s.c.write(marshalMissing(id))
	}
	e, err := s.st.Get(s.m, id)
	if errors.Is(err, store.ErrNotFound) {
		s.stats.Missing++
		return 0, s.c.write(marshalMissing(id))
	}
	if err != nil {
		return 0, fmt.Errorf("hostsync: loading %s to serve: %w", id.Short(), err)
	}
	s.stats.Sent++
	return e.Size(), s.c.write(marshalEnvelope(e))
}
