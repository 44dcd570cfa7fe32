package fetch

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

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
		h: h, src: src, params: p, policy: cfg.policy, log: cfg.log,
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

// serve runs one accepted stream of either protocol: its deadline and
// resource-manager service first, then fn, and the stream is closed if fn
// succeeds and reset otherwise.
func (s *Service) serve(st network.Stream, fn func(st network.Stream, from peer.ID) error) {
	_ = st.SetDeadline(time.Now().Add(s.params.StreamTimeout))
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("resource manager refused fetch stream", "err", err)
		_ = st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	if err := fn(st, from); err != nil {
		s.log.Debug("fetch stream broken", "peer", from, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// handle serves one request of ProtocolID: one page, or a refusal.
func (s *Service) handle(st network.Stream) {
	s.serve(st, func(st network.Stream, from peer.ID) error {
		out, reserved, err := s.page(st, from)
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
func (s *Service) page(st network.Stream, from peer.ID) (out []byte, reserved int, err error) {
	refused := func(h *header) ([]byte, int, error) {
		s.log.Debug("fetch refused", "peer", from, "code", h.code, "msg", h.msg)
		return headerFrame(h.marshal()), reserved, nil
	}
	fail := func(err error) ([]byte, int, error) {
		c, msg := status.FromError(err)
		return refused(&header{code: c, msg: msg})
	}
	if !s.limiter.Allow(from, 1) {
		return refused(&header{code: status.RateLimited, msg: msgRateLimited})
	}
	frame, err := readRequestFrame(st, maxRequestSize)
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
	limit := int(q.limit)
	if limit <= 0 || limit > s.params.MaxPageCount {
		limit = s.params.MaxPageCount
	}
	// Reserve the page's memory with the resource manager before loading
	// it: the buffer holding its header and body.
	reserve := pageBufferSize(s.params, limit)
	if err := st.Scope().ReserveMemory(reserve, network.ReservationPriorityMedium); err != nil {
		return refused(&header{code: status.RateLimited, msg: msgBusy})
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
