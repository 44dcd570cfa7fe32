package fetch

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/ratelimit"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/store"
)

// ProtocolID is the fetch protocol of one page per stream.
const ProtocolID = "/meshnode/fetch/1.0.0"

// StreamProtocolID is the streaming fetch protocol: one request, then
// page after page on the same stream (see the package doc).
const StreamProtocolID = "/meshnode/fetch/1.1.0"

// ServiceName is the resource-manager service of the fetch protocol.
const ServiceName = "meshnode.fetch"

// Source is where pages come from: the host's store. Pages are served as
// stored, without re-decoding (the client checks every envelope), and
// framed straight from the store's memory: VisitPage calls fn with each
// encoding of the page, valid only during the call (store.VisitPage).
type Source interface {
	VisitPage(m envelope.MailboxID, after store.Cursor, limit, maxBytes int, fn func(enc []byte) error) (store.Cursor, bool, error)
}

// Policy decides whether this node serves a mailbox to a remote peer.
type Policy interface {
	Serves(m envelope.MailboxID, from peer.ID) bool
}

// Service answers fetch requests from a Source.
type Service struct {
	h       host.Host
	src     Source
	params  Params
	policy  Policy
	log     *slog.Logger
	limiter *ratelimit.Limiter[peer.ID]
	adm     *admission.Controller // nil: per-peer limits only
}

// NewService registers the fetch protocol on h.
func NewService(h host.Host, src Source, opts ...Option) (*Service, error) {
	cfg := config{params: DefaultParams()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.Default().With("component", "fetch")
	}
	p := cfg.params
	s := &Service{
		h: h, src: src, params: p, policy: cfg.policy, log: cfg.log, adm: cfg.adm,
		limiter: ratelimit.New[peer.ID](p.PeerRate, p.PeerBurst, p.MaxTrackedPeers),
	}
	h.SetStreamHandler(ProtocolID, s.handle)
	h.SetStreamHandler(StreamProtocolID, s.handleStream)
	return s, nil
}

// Close stops serving.
func (s *Service) Close() error {
	s.h.RemoveStreamHandler(ProtocolID)
	s.h.RemoveStreamHandler(StreamProtocolID)
	return nil
}

// serve runs one accepted stream of either protocol: its admission
// ticket (pending in the fetch gate until the request has arrived), its
// deadline (RequestTimeout for the request) and resource-manager service
// first, then fn, and the stream is closed if fn succeeds and reset
// otherwise.
func (s *Service) serve(st network.Stream, fn func(st network.Stream, from peer.ID, t *admission.Ticket) error) {
	t := s.adm.Fetch().Open(st)
	defer t.Close()
	_ = st.SetDeadline(time.Now().Add(s.params.RequestTimeout))
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("resource manager refused fetch stream", "err", err)
		_ = st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	if err := fn(st, from, t); err != nil {
		s.log.Debug("fetch stream broken", "peer", from, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// readRequest reads the request frame of an accepted stream (of at most
// max bytes). A stream that sends nothing within RequestTimeout is
// counted as idle and ended (errIdle): no answer is due to it.
func (s *Service) readRequest(st network.Stream, max int) ([]byte, error) {
	frame, err := readRequestFrame(st, max)
	if err != nil && isTimeout(err) {
		s.adm.Refuse(admission.ReasonIdleTimeout)
		return nil, fmt.Errorf("%w: %v", errIdle, err)
	}
	return frame, err
}

// errIdle: a stream whose request did not arrive in time.
var errIdle = errors.New("fetch: no request in time")

// isTimeout reports whether err is a stream deadline passing.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// admit activates the stream's ticket for mailbox m once its request
// has arrived, and moves its deadline on to StreamTimeout. It returns the
// memory priority of its pages (lower for a general stream, so the
// capacity left is for established mailboxes) or a refusal; an error
// ends the stream (evicted while pending).
func (s *Service) admit(st network.Stream, t *admission.Ticket, m envelope.MailboxID) (uint8, *status.Error, error) {
	if err := t.Activate(m); err != nil {
		if errors.Is(err, admission.ErrEvicted) {
			return 0, nil, err
		}
		c, msg := status.FromError(err)
		return 0, &status.Error{Code: c, Message: msg}, nil
	}
	_ = st.SetDeadline(time.Now().Add(s.params.StreamTimeout))
	if !t.Privileged() {
		return network.ReservationPriorityLow, nil, nil
	}
	return network.ReservationPriorityMedium, nil, nil
}

// allow takes a page from the rates of the peer and of its network.
func (s *Service) allow(from peer.ID, t *admission.Ticket) bool {
	if !s.limiter.Allow(from, 1) {
		s.adm.Refuse(admission.ReasonRatePeer)
		return false
	}
	return s.adm.AllowPage(t.Key())
}

// handle serves one request of ProtocolID: one page, or a refusal.
func (s *Service) handle(st network.Stream) {
	s.serve(st, func(st network.Stream, from peer.ID, t *admission.Ticket) error {
		out, reserved, err := s.page(st, from, t)
		if err == nil {
			err = writeChunks(st, out)
		}
		st.Scope().ReleaseMemory(reserved)
		return err
	})
}

// page reads the request and returns the response, its header frame and,
// if the header is OK, its body, and the memory reserved for it on st's
// scope, which the caller releases once the response is written. A
// refusal is a response too; an error is returned only when no response
// can be made.
func (s *Service) page(st network.Stream, from peer.ID, t *admission.Ticket) (out []byte, reserved int, err error) {
	refused := func(h *header) ([]byte, int, error) {
		s.log.Debug("fetch refused", "peer", from, "code", h.code, "msg", h.msg)
		return headerFrame(h.marshal()), reserved, nil
	}
	fail := func(err error) ([]byte, int, error) {
		c, msg := status.FromError(err)
		return refused(&header{code: c, msg: msg})
	}
	frame, err := s.readRequest(st, maxRequestSize)
	if errors.Is(err, errIdle) {
		return nil, 0, err
	}
	if err != nil {
		return fail(err)
	}
	q, err := parseRequest(frame)
	if err != nil {
		return fail(err)
	}
	if s.policy != nil && !s.policy.Serves(q.mailbox, from) {
		return refused(&header{code: status.NotServed, msg: msgNotServed})
	}
	prio, refusal, err := s.admit(st, t, q.mailbox)
	if err != nil {
		return nil, 0, err
	}
	if refusal != nil {
		return refused(&header{code: refusal.Code, msg: refusal.Message})
	}
	if !s.allow(from, t) {
		return refused(&header{code: status.RateLimited, msg: msgRateLimited})
	}
	limit := int(q.limit)
	if limit <= 0 || limit > s.params.MaxPageCount {
		limit = s.params.MaxPageCount
	}
	// Reserve the page's memory with the resource manager before loading
	// it: the buffer holding its header and body.
	reserve := pageBufferSize(s.params, limit)
	if err := st.Scope().ReserveMemory(reserve, prio); err != nil {
		s.adm.Refuse(admission.ReasonMemoryBusy)
		return refused(&header{code: status.Busy, msg: msgBusy})
	}
	reserved = reserve
	b, err := loadBody(s.src, q.mailbox, q.cursor, limit, s.params.MaxPageBytes, newPageBuffer(s.params, limit))
	if err != nil {
		return fail(err)
	}
	out, err = b.framed((&header{code: status.OK, more: b.more, count: uint32(b.count), next: b.next}).marshal())
	return out, reserved, err
}

// Refusals both protocols send.
const (
	msgRateLimited = "too many fetches; slow down"
	msgNotServed   = "this host does not serve that mailbox"
	msgBusy        = "host is busy; retry later"
)

// readRequestFrame reads a request frame of at most max bytes; a failure
// says whether the frame was too large or malformed.
func readRequestFrame(r io.Reader, max int) ([]byte, error) {
	frame, err := wire.NewReader(r).ReadFrame(max)
	if err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) {
			return nil, fmt.Errorf("%w: %v", envelope.ErrTooLarge, err)
		}
		return nil, fmt.Errorf("%w: %v", envelope.ErrMalformed, err)
	}
	return frame, nil
}
