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
// stored, without re-decoding: the client checks every envelope.
type Source interface {
	PageRaw(m envelope.MailboxID, after store.Cursor, limit, maxBytes int) (store.RawPage, error)
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

func (s *Service) handle(st network.Stream) {
	_ = st.SetDeadline(time.Now().Add(s.params.StreamTimeout))
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("resource manager refused fetch stream", "err", err)
		_ = st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	h, envs := s.page(st, from)
	if h.code != status.OK {
		s.log.Debug("fetch refused", "peer", from, "code", h.code, "msg", h.msg)
	}
	w := wire.NewWriter(st)
	if err := w.WriteFrame(h.marshal()); err != nil {
		_ = st.Reset()
		return
	}
	for _, e := range envs {
		if err := w.WriteFrame(e); err != nil {
			_ = st.Reset()
			return
		}
	}
	if err := w.Flush(); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *Service) page(st network.Stream, from peer.ID) (*header, [][]byte) {
	fail := func(err error) (*header, [][]byte) {
		c, msg := status.FromError(err)
		return &header{code: c, msg: msg}, nil
	}
	if !s.limiter.Allow(from, 1) {
		return &header{code: status.RateLimited, msg: msgRateLimited}, nil
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
		return &header{code: status.NotServed, msg: msgNotServed}, nil
	}
	limit := int(q.limit)
	if limit <= 0 || limit > s.params.MaxPageCount {
		limit = s.params.MaxPageCount
	}
	// Reserve the page's memory with the resource manager before loading it.
	if err := st.Scope().ReserveMemory(s.params.MaxPageBytes, network.ReservationPriorityMedium); err != nil {
		return &header{code: status.RateLimited, msg: "host is busy; retry later"}, nil
	}
	defer st.Scope().ReleaseMemory(s.params.MaxPageBytes)
	pg, err := s.src.PageRaw(q.mailbox, q.cursor, limit, s.params.MaxPageBytes)
	if err != nil {
		return fail(err)
	}
	if len(pg.Next) > MaxCursorSize {
		return fail(fmt.Errorf("%w: cursor of %d bytes", status.ErrUnavailable, len(pg.Next)))
	}
	return &header{code: status.OK, more: pg.More, count: uint32(len(pg.Envelopes)), next: pg.Next}, pg.Envelopes
}

// Refusals both protocols send.
const (
	msgRateLimited = "too many fetches; slow down"
	msgNotServed   = "this host does not serve that mailbox"
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
