package fetch

import (
	"bufio"
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
// writing fails. A loader goroutine (load) reads the next page from the
// store while this one writes the current page.
func (s *Service) handleStream(st network.Stream) {
	_ = st.SetDeadline(time.Now().Add(s.params.StreamTimeout))
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("resource manager refused fetch stream", "err", err)
		_ = st.Reset()
		return
	}
	from := st.Conn().RemotePeer()
	// Writes of streamWriteSize: see its comment. (wire.NewWriter uses a
	// *bufio.Writer at least as large as its own as it is.)
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
	frame, err := readRequestFrame(st, maxStreamRequestSize)
	if err != nil {
		return refuse(err)
	}
	q, err := parseStreamRequest(frame)
	if err != nil {
		return refuse(err)
	}
	limit := int(q.limit)
	if limit <= 0 || limit > s.params.MaxPageCount {
		limit = s.params.MaxPageCount
	}
	budget := int(q.pages)
	if budget <= 0 || budget > s.params.MaxStreamPages {
		budget = s.params.MaxStreamPages
	}
	// Memory for the pages held, reserved before the first is loaded:
	// two, so the next page is loaded from the store while this one is
	// written; one (each page loaded after the one before was written)
	// if the resource manager grants no more.
	held := 2
	if err := st.Scope().ReserveMemory(held*s.params.MaxPageBytes, network.ReservationPriorityMedium); err != nil {
		held = 1
		if err := st.Scope().ReserveMemory(s.params.MaxPageBytes, network.ReservationPriorityMedium); err != nil {
			return refused(status.RateLimited, "host is busy; retry later")
		}
	}
	defer st.Scope().ReleaseMemory(held * s.params.MaxPageBytes)
	slots := make(chan struct{}, held)
	for range held {
		slots <- struct{}{}
	}
	pages := make(chan loadedPage) // unbuffered: a page is held by the loader or the writer
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		defer close(pages)
		s.load(q.mailbox, from, store.Cursor(q.cursor), limit, budget, slots, pages, stop)
	}()
	defer func() {
		close(stop)
		<-loaded
	}()
	for pg := range pages {
		// Each page gets StreamTimeout: a client that stops reading
		// holds the stream (and the reservation) no longer than that.
		_ = st.SetDeadline(time.Now().Add(s.params.StreamTimeout))
		if pg.h.code != status.OK {
			return refused(pg.h.code, pg.h.msg)
		}
		if err := send(pg.h, pg.envs); err != nil {
			return err
		}
		slots <- struct{}{}
	}
	return nil
}

// loadedPage is a page loaded from the store for a stream, or the
// refusal that ends it (a header whose code is not OK).
type loadedPage struct {
	h    *pageHeader
	envs [][]byte
}

// load loads the pages of a stream in order and sends them on pages,
// each once it holds one of slots (the writer gives it back when the
// page is written), until a page says none remain, budget pages were
// loaded, a refusal was sent, or stop is closed. Each page takes a
// rate-limit token and is checked against the hosting policy first, as
// a request of ProtocolID is.
func (s *Service) load(m envelope.MailboxID, from peer.ID, cursor store.Cursor, limit, budget int, slots <-chan struct{}, pages chan<- loadedPage, stop <-chan struct{}) {
	put := func(pg loadedPage) bool {
		select {
		case pages <- pg:
			return true
		case <-stop:
			return false
		}
	}
	refuse := func(err error) {
		c, msg := status.FromError(err)
		put(loadedPage{h: &pageHeader{code: c, msg: msg}})
	}
	for range budget {
		select {
		case <-slots:
		case <-stop:
			return
		}
		if !s.limiter.Allow(from, 1) {
			put(loadedPage{h: &pageHeader{code: status.RateLimited, msg: msgRateLimited}})
			return
		}
		if s.policy != nil && !s.policy.Serves(m, from) {
			put(loadedPage{h: &pageHeader{code: status.NotServed, msg: msgNotServed}})
			return
		}
		pg, err := s.src.PageRaw(m, cursor, limit, s.params.MaxPageBytes)
		if err != nil {
			refuse(err)
			return
		}
		if len(pg.Next) > MaxCursorSize {
			refuse(fmt.Errorf("%w: cursor of %d bytes", status.ErrUnavailable, len(pg.Next)))
			return
		}
		h := &pageHeader{code: status.OK, more: pg.More, count: uint32(len(pg.Envelopes)), size: uint32(bodySize(pg.Envelopes)), next: pg.Next}
		if !put(loadedPage{h: h, envs: pg.Envelopes}) {
			return
		}
		// A page claiming more but holding nothing would loop: the
		// client rejects it, so the stream ends there.
		if !pg.More || len(pg.Envelopes) == 0 {
			return
		}
		cursor = pg.Next
	}
}
