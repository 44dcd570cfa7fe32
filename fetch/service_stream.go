package fetch

import (
	"bufio"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/store"
)

// handleStream serves one request of the streaming protocol: page after
// page on the stream until the mailbox is caught up, the request's or
// MaxStreamPages' page budget is spent, or something fails. A failure
// after the request was read is sent as a page header with its code (the
// client keeps the pages before it); the stream is reset only when
// writing fails.
func (s *Service) handleStream(st network.Stream) {
	_ = st.SetDeadline(time.Now().Add(s.params.StreamTimeout))
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("resource manager refused fetch stream", "err", err)
		_ = st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	// Writes of streamWriteSize: see its comment.
	w := wire.NewWriter(bufio.NewWriterSize(st, streamWriteSize))
	send := func(h *pageHeader, envs [][]byte) error {
		if err := w.WriteFrame(h.marshal()); err != nil {
			return err
		}
		for _, e := range envs {
			if err := w.WriteFrame(e); err != nil {
				return err
			}
		}
		// Each page is flushed whole, so the client can hand it on while
		// the host reads the next one.
		return w.Flush()
	}
	err := s.stream(st, from, send)
	if err != nil {
		s.log.Debug("fetch stream broken", "peer", from, "err", err)
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// stream reads the request and sends its pages. It returns only errors
// of the stream itself; refusals are sent.
func (s *Service) stream(st network.Stream, from peer.ID, send func(*pageHeader, [][]byte) error) error {
	refused := func(c status.Code, msg string) error {
		s.log.Debug("fetch refused", "peer", from, "code", c, "msg", msg)
		return send(&pageHeader{code: c, msg: msg}, nil)
	}
	refuse := func(err error) error {
		c, msg := status.FromError(err)
		return refused(c, msg)
	}
	frame, err := wire.NewReader(st).ReadFrame(maxStreamRequestSize)
	if err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) {
			return refuse(fmt.Errorf("%w: %v", envelope.ErrTooLarge, err))
		}
		return refuse(fmt.Errorf("%w: %v", envelope.ErrMalformed, err))
	}
	q, err := parseStreamRequest(frame)
	if err != nil {
		return refuse(err)
	}
	limit := int(q.limit)
	if limit <= 0 || limit > s.params.MaxPageCount {
		limit = s.params.MaxPageCount
	}
	pages := int(q.pages)
	if pages <= 0 || pages > s.params.MaxStreamPages {
		pages = s.params.MaxStreamPages
	}
	// One page is held at a time: its memory is reserved once for the
	// whole stream, before the first page is loaded.
	reserved := false
	defer func() {
		if reserved {
			st.Scope().ReleaseMemory(s.params.MaxPageBytes)
		}
	}()
	cursor := store.Cursor(q.cursor)
	for i := 0; i < pages; i++ {
		// Each page gets StreamTimeout: a client that stops reading
		// holds the stream (and the reservation) no longer than that.
		_ = st.SetDeadline(time.Now().Add(s.params.StreamTimeout))
		if !s.limiter.Allow(from, 1) {
			return refused(status.RateLimited, "too many fetches; slow down")
		}
		if s.policy != nil && !s.policy.Serves(q.mailbox, from) {
			return refused(status.NotServed, "this host does not serve that mailbox")
		}
		if !reserved {
			if err := st.Scope().ReserveMemory(s.params.MaxPageBytes, network.ReservationPriorityMedium); err != nil {
				return refused(status.RateLimited, "host is busy; retry later")
			}
			reserved = true
		}
		pg, err := s.src.PageRaw(q.mailbox, cursor, limit, s.params.MaxPageBytes)
		if err != nil {
			return refuse(err)
		}
		if len(pg.Next) > MaxCursorSize {
			return refuse(fmt.Errorf("%w: cursor of %d bytes", status.ErrUnavailable, len(pg.Next)))
		}
		h := &pageHeader{code: status.OK, more: pg.More, count: uint32(len(pg.Envelopes)), size: uint32(bodySize(pg.Envelopes)), next: pg.Next}
		if err := send(h, pg.Envelopes); err != nil {
			return err
		}
		// A page claiming more but holding nothing would loop: the
		// client rejects it, so the stream ends there.
		if !pg.More || len(pg.Envelopes) == 0 {
			return nil
		}
		cursor = pg.Next
	}
	return nil
}
