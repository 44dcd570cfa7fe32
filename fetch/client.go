package fetch

import (
	"context"
	"fmt"
	"runtime"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
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
func (c *Client) Fetch(ctx context.Context, p peer.ID, m envelope.MailboxID, after store.Cursor, limit int) (pg store.Page, err error) {
	if limit <= 0 || limit > c.params.MaxPageCount {
		return pg, fmt.Errorf("%w: limit %d outside [1, %d]", ErrBadRequest, limit, c.params.MaxPageCount)
	}
	if len(after) > MaxCursorSize {
		return pg, fmt.Errorf("%w: cursor of %d bytes", ErrBadRequest, len(after))
	}
	ctx, cancel := context.WithTimeout(ctx, c.params.StreamTimeout)
	defer cancel()
	st, err := c.h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return pg, fmt.Errorf("fetch: open stream to %s: %w", p, err)
	}
	deadline, _ := ctx.Deadline()
	_ = st.SetDeadline(deadline)
	clean := false
	defer func() {
		if clean {
			_ = st.Close()
		} else {
			_ = st.Reset()
		}
	}()
	if err := st.Scope().SetService(ServiceName); err != nil {
		return pg, fmt.Errorf("fetch: %w", err)
	}
	req := (&request{mailbox: m, limit: uint32(limit), cursor: after}).marshal()
	if err := wire.WriteOne(st, req); err != nil {
		return pg, fmt.Errorf("fetch: send request to %s: %w", p, err)
	}
	if err := st.CloseWrite(); err != nil {
		return pg, fmt.Errorf("fetch: send request to %s: %w", p, err)
	}
	r := wire.NewReader(st)
	frame, err := r.ReadFrame(maxHeaderSize)
	if err != nil {
		return pg, fmt.Errorf("fetch: read page header from %s: %w", p, err)
	}
	h, err := parseHeader(frame)
	if err != nil {
		return pg, err
	}
	if herr := h.code.Err(h.msg); herr != nil {
		clean = true
		return pg, fmt.Errorf("fetch: %s refused: %w", p, herr)
	}
	if int(h.count) > limit {
		return pg, fmt.Errorf("%w: %d envelopes for a limit of %d", ErrBadResponse, h.count, limit)
	}
	pg.Envelopes = make([]*envelope.Envelope, 0, h.count)
	total := 0
	for i := 0; i < int(h.count); i++ {
		b, err := r.ReadFrame(c.params.MaxEnvelopeSize)
		if err != nil {
			return store.Page{}, fmt.Errorf("fetch: read envelope %d/%d from %s: %w", i+1, h.count, p, err)
		}
		total += len(b)
		if i > 0 && total > c.params.MaxPageBytes {
			return store.Page{}, fmt.Errorf("%w: page exceeds %d bytes", ErrBadResponse, c.params.MaxPageBytes)
		}
		e, err := envelope.Decode(b, c.params.MaxEnvelopeSize)
		if err != nil {
			return store.Page{}, fmt.Errorf("%w: envelope %d: %v", ErrBadResponse, i+1, err)
		}
		if e.Mailbox() != m {
			return store.Page{}, fmt.Errorf("%w: envelope %d belongs to another mailbox", ErrBadResponse, i+1)
		}
		pg.Envelopes = append(pg.Envelopes, e)
	}
	if c.verify {
		if err := verifyAll(ctx, pg.Envelopes); err != nil {
			return store.Page{}, fmt.Errorf("fetch: page from %s: %w", p, err)
		}
	}
	clean = true
	pg.Next, pg.More = h.next, h.more
	return pg, nil
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
func (c *Client) CatchUp(ctx context.Context, p peer.ID, m envelope.MailboxID, after store.Cursor, fn func(store.Page) error) (store.Cursor, int, error) {
	n := 0
	for {
		pg, err := c.Fetch(ctx, p, m, after, c.params.MaxPageCount)
		if err != nil {
			return after, n, err
		}
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
	}
}
