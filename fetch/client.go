package fetch

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
	"golang.org/x/sync/errgroup"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/store"
)

// Client fetches pages from remote hosts.
type Client struct {
	h      host.Host
	params Params
	verify bool
}

// NewClient returns a fetch client. With verify, every envelope's write
// signature is checked (in parallel) before a page is returned.
func NewClient(h host.Host, p Params, verify bool) (*Client, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &Client{h: h, params: p, verify: verify}, nil
}

// Fetch asks p for at most limit envelopes of m after the cursor.
func (c *Client) Fetch(ctx context.Context, p peer.ID, m envelope.MailboxID, after store.Cursor, limit int) (store.Page, error) {
	if err := c.checkArgs(after, limit); err != nil {
		return store.Page{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.params.StreamTimeout)
	defer cancel()
	pr, err := c.open(ctx, p, m, after, limit, nil)
	if err != nil {
		return store.Page{}, err
	}
	return pr.read(ctx)
}

func (c *Client) checkArgs(after store.Cursor, limit int) error {
	if limit <= 0 || limit > c.params.MaxPageCount {
		return fmt.Errorf("%w: limit %d outside [1, %d]", ErrBadRequest, limit, c.params.MaxPageCount)
	}
	if len(after) > MaxCursorSize {
		return fmt.Errorf("%w: cursor of %d bytes", ErrBadRequest, len(after))
	}
	return nil
}

// pageReader is a page whose header has been read: the stream is open and
// the envelopes follow.
type pageReader struct {
	c    *Client
	p    peer.ID
	m    envelope.MailboxID
	st   network.Stream
	r    *wire.Reader
	h    *header
	stop func() bool // stops the reset-on-cancel hook
}

// open sends the request for one page and reads its header. On success
// the caller must call read (which closes the stream) or abort.
// A non-nil st is a stream already open with ProtocolID (CatchUp's
// first, negotiated with a host that does not speak StreamProtocolID).
func (c *Client) open(ctx context.Context, p peer.ID, m envelope.MailboxID, after store.Cursor, limit int, st network.Stream) (*pageReader, error) {
	if st == nil {
		var err error
		if st, err = c.h.NewStream(ctx, p, ProtocolID); err != nil {
			return nil, fmt.Errorf("fetch: open stream to %s: %w", p, err)
		}
	}
	deadline, _ := ctx.Deadline()
	_ = st.SetDeadline(deadline)
	// A cancelled context must also end a read blocked on the stream (a
	// catch-up abandoning a page it asked for ahead).
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	pr := &pageReader{c: c, p: p, m: m, st: st, stop: stop}
	clean := false
	defer func() {
		if !clean {
			pr.abort()
		}
	}()
	if err := st.Scope().SetService(ServiceName); err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	req := (&request{mailbox: m, limit: uint32(limit), cursor: after}).marshal()
	if err := wire.WriteOne(st, req); err != nil {
		return nil, fmt.Errorf("fetch: send request to %s: %w", p, err)
	}
	if err := st.CloseWrite(); err != nil {
		return nil, fmt.Errorf("fetch: send request to %s: %w", p, err)
	}
	pr.r = wire.NewReaderSize(st, readBufferSize)
	frame, err := pr.r.ReadFrame(maxHeaderSize)
	if err != nil {
		return nil, fmt.Errorf("fetch: read page header from %s: %w", p, err)
	}
	if pr.h, err = parseHeader(frame); err != nil {
		return nil, err
	}
	if herr := pr.h.code.Err(pr.h.msg); herr != nil {
		pr.stop()
		_ = st.Close()
		clean = true
		return nil, fmt.Errorf("fetch: %s refused: %w", p, herr)
	}
	if int(pr.h.count) > limit {
		return nil, fmt.Errorf("%w: %d envelopes for a limit of %d", ErrBadResponse, pr.h.count, limit)
	}
	clean = true
	return pr, nil
}

// abort resets the stream of a page that will not be read.
func (pr *pageReader) abort() {
	pr.stop()
	_ = pr.st.Reset()
}

// read reads and checks the page's envelopes and closes the stream.
func (pr *pageReader) read(ctx context.Context) (pg store.Page, err error) {
	defer func() {
		if err != nil {
			pr.abort()
			return
		}
		pr.stop()
		_ = pr.st.Close()
	}()
	c, h, p := pr.c, pr.h, pr.p
	pg.Envelopes = make([]*envelope.Envelope, 0, h.count)
	dec := envelope.NewDecoder(c.params.MaxEnvelopeSize)
	total := 0
	for i := 0; i < int(h.count); i++ {
		// Decode copies the envelope out of the reader's buffer, so the
		// frame need not be copied first.
		b, err := pr.r.Next(c.params.MaxEnvelopeSize)
		if err != nil {
			return store.Page{}, fmt.Errorf("fetch: read envelope %d/%d from %s: %w", i+1, h.count, p, err)
		}
		total += len(b)
		if i > 0 && total > c.params.MaxPageBytes {
			return store.Page{}, fmt.Errorf("%w: page exceeds %d bytes", ErrBadResponse, c.params.MaxPageBytes)
		}
		e, err := dec.Decode(b)
		if err != nil {
			return store.Page{}, fmt.Errorf("%w: envelope %d: %v", ErrBadResponse, i+1, err)
		}
		if e.Mailbox() != pr.m {
			return store.Page{}, fmt.Errorf("%w: envelope %d belongs to another mailbox", ErrBadResponse, i+1)
		}
		pg.Envelopes = append(pg.Envelopes, e)
	}
	if c.verify {
		if err := verifyAll(ctx, pg.Envelopes); err != nil {
			return store.Page{}, fmt.Errorf("fetch: page from %s: %w", p, err)
		}
	}
	pg.Next, pg.More = h.next, h.more
	return pg, nil
}

// notNegotiated tells whether err says the remote refused the protocol
// the stream was opened with: the "na" of the lazy multistream handshake
// (used when the peerstore says the protocol is supported), or the reset
// that follows it, whichever the read meets first.
func notNegotiated(err error) bool {
	var se *network.StreamError
	var na msmux.ErrNotSupported[protocol.ID]
	return errors.As(err, &na) || (errors.As(err, &se) && se.ErrorCode == network.StreamProtocolNegotiationFailed)
}

// verifyAll checks write signatures on all cores.
func verifyAll(ctx context.Context, envs []*envelope.Envelope) error {
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, e := range envs {
		g.Go(e.Verify)
	}
	return g.Wait()
}

// CatchUp fetches pages from p until none remain, handing each to fn, and
// returns the cursor to save and the number of envelopes seen. fn's error
// stops the catch-up; the cursor returned is then the last one fn accepted.
//
// It asks for StreamProtocolID first: one request, and the host sends
// page after page on the same stream while fn handles the ones before (up
// to Params.ReadAhead pages read ahead, as far as the resource manager
// grants their memory). A host's page budget per stream ending before the
// mailbox does is followed by a new stream from the last cursor. A host
// that speaks only ProtocolID is caught up page by page (catchUpPaged) on
// the stream already negotiated.
func (c *Client) CatchUp(ctx context.Context, p peer.ID, m envelope.MailboxID, after store.Cursor, fn func(store.Page) error) (store.Cursor, int, error) {
	if err := c.checkArgs(after, c.params.MaxPageCount); err != nil {
		return after, 0, err
	}
	total := 0
	for {
		st, err := c.openStream(ctx, p)
		if err != nil {
			return after, total, err
		}
		if st.Protocol() != StreamProtocolID {
			cur, n, err := c.catchUpPaged(ctx, p, m, after, st, fn)
			return cur, total + n, err
		}
		var n int
		var more bool
		after, n, more, err = c.catchUpStream(ctx, st, p, m, after, fn)
		total += n
		if n == 0 && notNegotiated(err) {
			// The host's protocols, as identify last told them, were out
			// of date: it does not speak StreamProtocolID (any more).
			cur, n, err := c.catchUpPaged(ctx, p, m, after, nil, fn)
			return cur, total + n, err
		}
		if err != nil || !more {
			return after, total, err
		}
		if n == 0 {
			return after, total, fmt.Errorf("%w: %s ended a stream with more to come but sent nothing", ErrBadResponse, p)
		}
	}
}

// catchUpPaged is CatchUp over ProtocolID, one page per stream, starting
// on first if it is not nil (open with ProtocolID).
//
// Pages are handed to fn one at a time and in order, but fetched one ahead:
// as soon as a page's header has arrived (it carries the next cursor), the
// request for the following page goes out, so the host reads that page
// from its store while this one is still in transit, decoded and handed
// to fn. At most two pages are held at once.
func (c *Client) catchUpPaged(ctx context.Context, p peer.ID, m envelope.MailboxID, after store.Cursor, first network.Stream, fn func(store.Page) error) (store.Cursor, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	n := 0
	next := c.fetchAsync(ctx, p, m, after, first)
	defer func() {
		// Stopping early abandons the page fetched ahead: cancelling resets
		// its stream, and waiting for its goroutine means none outlives
		// the call.
		cancel()
		if next != nil {
			<-next.page
		}
	}()
	for {
		f := next
		next = nil
		var res pageResult
		select {
		case h := <-f.header:
			if h != nil && h.more && h.count > 0 {
				next = c.fetchAsync(ctx, p, m, h.next, nil)
			}
			res = <-f.page
		case res = <-f.page: // failed before its header
		}
		if res.err != nil {
			return after, n, res.err
		}
		pg := res.pg
		if len(pg.Envelopes) > 0 || len(pg.Next) > 0 {
			if err := fn(pg); err != nil {
				return after, n, err
			}
		}
		n += len(pg.Envelopes)
		if len(pg.Next) > 0 {
			after = pg.Next
		}
		if !pg.More {
			return after, n, nil
		}
		if len(pg.Envelopes) == 0 {
			return after, n, fmt.Errorf("%w: empty page claims more remain", ErrBadResponse)
		}
		if next == nil {
			// Cannot happen: a page with more and envelopes had its
			// follower requested when its header arrived.
			next = c.fetchAsync(ctx, p, m, after, nil)
		}
	}
}

// pageFetch is a page being fetched in the background: its header, then
// the page or the error, each delivered once.
type pageFetch struct {
	header chan *header
	page   chan pageResult
}

type pageResult struct {
	pg  store.Page
	err error
}

// fetchAsync fetches one full page (MaxPageCount) in a goroutine, on st
// if it is not nil. The goroutine ends with ctx: a cancelled fetch resets
// its stream.
func (c *Client) fetchAsync(ctx context.Context, p peer.ID, m envelope.MailboxID, after store.Cursor, st network.Stream) *pageFetch {
	f := &pageFetch{header: make(chan *header, 1), page: make(chan pageResult, 1)}
	go func() {
		ctx, cancel := context.WithTimeout(ctx, c.params.StreamTimeout)
		defer cancel()
		pr, err := c.open(ctx, p, m, after, c.params.MaxPageCount, st)
		if err != nil {
			f.page <- pageResult{err: err}
			return
		}
		f.header <- pr.h
		pg, err := pr.read(ctx)
		f.page <- pageResult{pg: pg, err: err}
	}()
	return f
}
