package fetch

import (
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
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
func (s *Service) handleStream(st network.Stream) { s.serve(st, s.stream) }

// stream reads the request and sends its pages. It returns only errors
// of the stream itself; refusals are sent.
func (s *Service) stream(st network.Stream, from peer.ID, t *admission.Ticket) error {
	refused := func(c status.Code, msg string) error {
		s.log.Debug("fetch refused", "peer", from, "code", c, "msg", msg)
		return wire.WriteOne(st, (&pageHeader{code: c, msg: msg}).marshal())
	}
	refuse := func(err error) error {
		c, msg := status.FromError(err)
		return refused(c, msg)
	}
	frame, err := s.readRequest(st, maxStreamRequestSize)
	if errors.Is(err, errIdle) {
		return err
	}
	if err != nil {
		return refuse(err)
	}
	q, err := parseStreamRequest(frame)
	if err != nil {
		return refuse(err)
	}
	if s.policy != nil && !s.policy.Serves(q.mailbox, from) {
		return refused(status.NotServed, msgNotServed)
	}
	prio, refusal, err := s.admit(st, t, q.mailbox)
	if err != nil {
		return err
	}
	if refusal != nil {
		return refused(refusal.Code, refusal.Message)
	}
	limit := int(q.limit)
	if limit <= 0 || limit > s.params.MaxPageCount {
		limit = s.params.MaxPageCount
	}
	budget := int(q.pages)
	if budget <= 0 || budget > s.params.MaxStreamPages {
		budget = s.params.MaxStreamPages
	}
	// Memory for the page buffers, reserved before the first page is
	// loaded: two, so the next page is loaded from the store while this
	// one is written; one (each page loaded after the one before was
	// written) if the resource manager grants no more.
	size := pageBufferSize(s.params, limit)
	held := 2
	if err := st.Scope().ReserveMemory(held*size, prio); err != nil {
		held = 1
		if err := st.Scope().ReserveMemory(size, prio); err != nil {
			s.adm.Refuse(admission.ReasonMemoryBusy)
			return refused(status.Busy, msgBusy)
		}
	}
	defer st.Scope().ReleaseMemory(held * size)
	free := make(chan []byte, held)
	for range held {
		free <- newPageBuffer(s.params, limit)
	}
	pages := make(chan loadedPage) // unbuffered: a page is held by the loader or the writer
	stop := make(chan struct{})
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		defer close(pages)
		s.load(q.mailbox, from, t, store.Cursor(q.cursor), limit, budget, free, pages, stop)
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
		out, err := pg.b.framed(pg.h.marshal())
		if err != nil {
			return err
		}
		if err := writeChunks(st, out); err != nil {
			return err
		}
		free <- pg.b.buf
	}
	return nil
}

// loadedPage is a page loaded from the store for a stream, framed in a
// page buffer, or the refusal that ends it (a header whose code is not
// OK, and no buffer).
type loadedPage struct {
	h *pageHeader
	b body
}

// load loads the pages of a stream in order and sends them on pages,
// each into a page buffer from free (the writer gives it back once the
// page is written), until a page says none remain, budget pages were
// loaded, a refusal was sent, or stop is closed. Each page takes a
// rate-limit token and is checked against the hosting policy first, as
// a request of ProtocolID is.
func (s *Service) load(m envelope.MailboxID, from peer.ID, t *admission.Ticket, cursor store.Cursor, limit, budget int, free <-chan []byte, pages chan<- loadedPage, stop <-chan struct{}) {
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
		var buf []byte
		select {
		case buf = <-free:
		case <-stop:
			return
		}
		if !s.allow(from, t) {
			put(loadedPage{h: &pageHeader{code: status.RateLimited, msg: msgRateLimited}})
			return
		}
		if s.policy != nil && !s.policy.Serves(m, from) {
			put(loadedPage{h: &pageHeader{code: status.NotServed, msg: msgNotServed}})
			return
		}
		b, err := loadBody(s.src, m, cursor, limit, s.params.MaxPageBytes, buf)
		if err != nil {
			refuse(err)
			return
		}
		h := &pageHeader{code: status.OK, more: b.more, count: uint32(b.count), size: uint32(b.size()), next: b.next}
		if !put(loadedPage{h: h, b: b}) {
			return
		}
		// A page claiming more but holding nothing would loop: the
		// client rejects it, so the stream ends there.
		if !b.more || b.count == 0 {
			return
		}
		cursor = b.next
	}
}
