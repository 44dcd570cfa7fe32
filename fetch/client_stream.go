package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/store"
)

// openStream opens a fetch stream to p, StreamProtocolID if p speaks it
// and ProtocolID otherwise (one negotiation: multistream-select tries
// them in that order).
func (c *Client) openStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, c.params.StreamTimeout)
	defer cancel()
	st, err := c.h.NewStream(ctx, p, StreamProtocolID, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("fetch: open stream to %s: %w", p, err)
	}
	return st, nil
}

// deadline is StreamTimeout from now, or ctx's deadline if sooner.
func (c *Client) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(c.params.StreamTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// rawPage is a page read off a stream but not decoded yet: its header and
// body, the memory reserved for it on the stream's scope (released by
// whoever drops the page), or the error that ended the stream.
type rawPage struct {
	h        *pageHeader
	body     []byte
	reserved int
	err      error
}

// catchUpStream runs one request of StreamProtocolID on st: it asks for
// the pages after the cursor and, while a reader goroutine takes the next
// page off the stream, decodes and checks each page and hands it to fn.
// It returns the last cursor fn accepted, the envelopes handed over, and
// whether the host ended the stream with more to come (its page budget
// per stream). st is closed on success and reset otherwise.
func (c *Client) catchUpStream(ctx context.Context, st network.Stream, p peer.ID, m envelope.MailboxID, after store.Cursor, fn func(store.Page) error) (cur store.Cursor, n int, more bool, err error) {
	_ = st.SetDeadline(c.deadline(ctx))
	ctx, cancel := context.WithCancel(ctx)
	// A cancelled catch-up must also end a read blocked on the stream.
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	// The reader goes up to ReadAhead pages ahead of the page being
	// decoded and handed over, as far as the resource manager grants
	// their memory (pageMemory).
	pages := make(chan rawPage, c.params.ReadAhead)
	mem := newPageMemory(st.Scope())
	done := make(chan struct{})
	started := false
	defer func() {
		if err == nil && stop() {
			_ = st.Close()
		} else {
			_ = st.Reset()
		}
		cancel()
		if started {
			<-done
			// Pages read ahead but never handed over.
			for r := range pages {
				mem.release(r.reserved)
			}
		}
	}()
	cur = after
	if err := st.Scope().SetService(ServiceName); err != nil {
		return cur, 0, false, fmt.Errorf("fetch: %w", err)
	}
	req := (&streamRequest{mailbox: m, limit: uint32(c.params.MaxPageCount), cursor: after}).marshal()
	if err := wire.WriteOne(st, req); err != nil {
		return cur, 0, false, fmt.Errorf("fetch: send request to %s: %w", p, err)
	}
	if err := st.CloseWrite(); err != nil {
		return cur, 0, false, fmt.Errorf("fetch: send request to %s: %w", p, err)
	}
	started = true
	go c.readPages(ctx, st, p, mem, pages, done)
	dec := envelope.NewDecoder(c.params.MaxEnvelopeSize)
	for r := range pages {
		if r.err != nil {
			return cur, n, false, r.err
		}
		pg, err := c.decodePage(ctx, p, m, dec, r.h, r.body)
		if err == nil && (len(pg.Envelopes) > 0 || len(pg.Next) > 0) {
			err = fn(pg)
		}
		mem.release(r.reserved)
		if err != nil {
			return cur, n, false, err
		}
		n += len(pg.Envelopes)
		if len(pg.Next) > 0 {
			cur = pg.Next
		}
		if !pg.More {
			return cur, n, false, nil
		}
		if len(pg.Envelopes) == 0 {
			return cur, n, false, fmt.Errorf("%w: empty page claims more remain", ErrBadResponse)
		}
	}
	// The host closed the stream cleanly after a page with more to come.
	return cur, n, true, nil
}

// readPages takes page after page off st as soon as it arrives (so the
// stream's receive window stays open, and the host keeps sending, while
// the consumer decodes the pages before), each body into a buffer of its
// own (the page's envelopes are decoded in place and keep it), and sends
// them on out, whose capacity is the read-ahead. It stops after a page
// saying none remain, when the stream ends cleanly after a page, on the
// first error (sent on out), or when ctx is done; it closes out and then
// done.
func (c *Client) readPages(ctx context.Context, st network.Stream, p peer.ID, mem *pageMemory, out chan<- rawPage, done chan<- struct{}) {
	defer close(done)
	defer close(out)
	br := bufio.NewReaderSize(st, readBufferSize)
	r := wire.NewReader(br) // frames (headers) and bodies share br
	for first := true; ; first = false {
		rp := c.readPage(ctx, st, br, r, p, mem)
		if rp.h == nil && rp.err == nil {
			if !first {
				return // the host closed the stream after a page
			}
			rp.err = fmt.Errorf("fetch: %s closed the stream before its first page: %w", p, io.ErrUnexpectedEOF)
		}
		select {
		case out <- rp:
		case <-ctx.Done():
			mem.release(rp.reserved)
			return
		}
		if rp.err != nil || !rp.h.more {
			return
		}
		// The next page gets StreamTimeout from now: the time spent on
		// the pages before does not count against it.
		_ = st.SetReadDeadline(c.deadline(ctx))
	}
}

// readPage reads one page: its header, the memory reservation for the
// body size it announces, and the body, into a new buffer of that size. It
// returns an empty rawPage when the stream ended cleanly before a header.
func (c *Client) readPage(ctx context.Context, st network.Stream, br *bufio.Reader, r *wire.Reader, p peer.ID, mem *pageMemory) (rp rawPage) {
	fail := func(err error) rawPage {
		mem.release(rp.reserved)
		return rawPage{err: err}
	}
	frame, err := r.ReadFrame(maxPageHeaderSize)
	if errors.Is(err, io.EOF) {
		return rawPage{}
	}
	if err != nil {
		return fail(fmt.Errorf("fetch: read page header from %s: %w", p, err))
	}
	h, err := parsePageHeader(frame)
	if err != nil {
		return fail(err)
	}
	if herr := h.code.Err(h.msg); herr != nil {
		return fail(fmt.Errorf("fetch: %s refused: %w", p, herr))
	}
	switch max := maxBodySize(c.params, int(h.count)); {
	case int64(h.count) > int64(c.params.MaxPageCount):
		return fail(fmt.Errorf("%w: %d envelopes in a page, limit %d", ErrBadResponse, h.count, c.params.MaxPageCount))
	case int64(h.size) > int64(max):
		return fail(fmt.Errorf("%w: page body of %d bytes, limit %d", ErrBadResponse, h.size, max))
	case int64(h.size) < int64(h.count)*(1+envelope.Overhead):
		return fail(fmt.Errorf("%w: %d envelopes cannot fit in %d bytes", ErrBadResponse, h.count, h.size))
	}
	// Reserve the page before reading it: its body, which the decoded
	// envelopes then share.
	if err := mem.reserve(ctx, int(h.size)); err != nil {
		return fail(fmt.Errorf("fetch: no memory for a page of %d bytes from %s: %w", h.size, p, err))
	}
	rp.reserved = int(h.size)
	buf := make([]byte, h.size)
	// A body larger than the reader's buffer is read straight into buf.
	if _, err := io.ReadFull(br, buf[:h.size]); err != nil {
		return fail(fmt.Errorf("fetch: read page of %d envelopes from %s: %w", h.count, p, err))
	}
	rp.h, rp.body = h, buf[:h.size]
	return rp
}

// decodePage decodes and checks a page body's envelopes in place: they
// keep body, which is the page's own.
func (c *Client) decodePage(ctx context.Context, p peer.ID, m envelope.MailboxID, dec *envelope.Decoder, h *pageHeader, body []byte) (store.Page, error) {
	envs := make([]*envelope.Envelope, 0, h.count)
	err := splitBody(body, int(h.count), c.params.MaxEnvelopeSize, func(i int, b []byte) error {
		e, err := dec.DecodeInPlace(b)
		if err != nil {
			return fmt.Errorf("%w: envelope %d: %v", ErrBadResponse, i+1, err)
		}
		if e.Mailbox() != m {
			return fmt.Errorf("%w: envelope %d belongs to another mailbox", ErrBadResponse, i+1)
		}
		envs = append(envs, e)
		return nil
	})
	if err != nil {
		return store.Page{}, err
	}
	if c.verify {
		if err := verifyAll(ctx, envs); err != nil {
			return store.Page{}, fmt.Errorf("fetch: page from %s: %w", p, err)
		}
	}
	return store.Page{Envelopes: envs, Next: h.next, More: h.more}, nil
}

// pageMemory reserves the memory of the pages a client holds (read, or
// read ahead, and not yet handed over) on the stream's scope. When the
// resource manager refuses a page while others are held, reserve waits
// for one of them to be released and tries again, so the read-ahead
// shrinks to what the scope grants; only a page refused while none is
// held fails the catch-up.
type pageMemory struct {
	scope network.StreamScope
	held  atomic.Int64  // reservations not yet released
	freed chan struct{} // capacity 1: a reservation was released
}

func newPageMemory(scope network.StreamScope) *pageMemory {
	return &pageMemory{scope: scope, freed: make(chan struct{}, 1)}
}

// reserve reserves n bytes (none for n = 0). A page the catch-up needs to
// make progress (none held) is reserved at high priority, granted up to
// 80% of a scope's limit; a page read ahead at low priority, granted only
// up to 40%, so one catch-up reading ahead leaves room for the first page
// of another one from the same peer.
func (m *pageMemory) reserve(ctx context.Context, n int) error {
	if n == 0 {
		return nil
	}
	for {
		prio := network.ReservationPriorityHigh
		if m.held.Load() > 0 {
			prio = network.ReservationPriorityLow
		}
		err := m.scope.ReserveMemory(n, prio)
		if err == nil {
			m.held.Add(1)
			return nil
		}
		if m.held.Load() == 0 {
			return err
		}
		// A release after the refusal leaves its token in freed, so
		// none is missed.
		select {
		case <-m.freed:
		case <-ctx.Done():
			return fmt.Errorf("%w (waiting for memory: %v)", ctx.Err(), err)
		}
	}
}

// release gives back a reservation of n bytes made by reserve.
func (m *pageMemory) release(n int) {
	if n == 0 {
		return
	}
	m.scope.ReleaseMemory(n)
	m.held.Add(-1)
	select {
	case m.freed <- struct{}{}:
	default:
	}
}
