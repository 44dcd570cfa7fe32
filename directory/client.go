package directory

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/keymgmt"
)

// Client talks to directory hosts.
type Client struct {
	h       host.Host
	timeout time.Duration

	mu     sync.Mutex
	lastTS int64
}

// NewClient returns a client whose exchanges each take at most timeout
// (0 means DefaultParams().StreamTimeout).
func NewClient(h host.Host, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultParams().StreamTimeout
	}
	return &Client{h: h, timeout: timeout}
}

// timestamp returns a strictly increasing Unix-millisecond time, so two
// signed requests of this client never carry the same timestamp (hosts
// refuse a signed request not newer than the last one of its name).
func (c *Client) timestamp() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := max(time.Now().UnixMilli(), c.lastTS+1)
	c.lastTS = ts
	return ts
}

// Publication is what an owner publishes under a name.
type Publication struct {
	Name keymgmt.NameHash
	// Owner is the name's owner key (keymgmt.Identity.DirectoryOwnerKey).
	Owner   ed25519.PrivateKey
	Expires time.Time
	// Mailboxes are the request mailboxes the host should serve.
	Mailboxes []envelope.MailboxID
	// Blobs are the sealed packages (keymgmt.Name.SealBlob), handed out
	// one per fetch; they replace whatever the name held.
	Blobs [][]byte
}

// Publish replaces the packages of a name on host p. The first publish of
// a name registers Owner's public key as its owner on that host.
func (c *Client) Publish(ctx context.Context, p peer.ID, pub *Publication) error {
	q := &request{op: opPublish, name: pub.Name, ts: c.timestamp(), expires: pub.Expires.Unix(),
		mailboxes: pub.Mailboxes, blobs: pub.Blobs}
	if len(q.blobs) == 0 || len(q.blobs) > AbsMaxBlobs || len(q.mailboxes) > AbsMaxMailboxes {
		return fmt.Errorf("%w: %d packages and %d mailboxes (1..%d and at most %d)", ErrInvalidParams,
			len(q.blobs), len(q.mailboxes), AbsMaxBlobs, AbsMaxMailboxes)
	}
	for _, b := range q.blobs {
		if len(b) < minBlobSize || len(b) > AbsMaxBlobSize {
			return fmt.Errorf("%w: package blob of %d bytes", ErrInvalidParams, len(b))
		}
	}
	q.sign(pub.Owner)
	_, err := c.exchange(ctx, p, q)
	return err
}

// Fetch asks host p for one package of a name. The host consumes it
// (except the last). ErrUnknownName if it holds none.
func (c *Client) Fetch(ctx context.Context, p peer.ID, name keymgmt.NameHash) ([]byte, error) {
	r, err := c.exchange(ctx, p, &request{op: opFetch, name: name})
	if err != nil {
		return nil, err
	}
	return r.body, nil
}

// Remove deletes a name's packages from host p.
func (c *Client) Remove(ctx context.Context, p peer.ID, owner ed25519.PrivateKey, name keymgmt.NameHash) error {
	q := &request{op: opRemove, name: name, ts: c.timestamp()}
	q.sign(owner)
	_, err := c.exchange(ctx, p, q)
	return err
}

// Status is what a host says about an owner's name.
type Status struct {
	Remaining int
	Expires   time.Time
}

// Status asks host p how many packages of an owner's name are left.
func (c *Client) Status(ctx context.Context, p peer.ID, owner ed25519.PrivateKey, name keymgmt.NameHash) (Status, error) {
	q := &request{op: opStatus, name: name, ts: c.timestamp()}
	q.sign(owner)
	r, err := c.exchange(ctx, p, q)
	if err != nil {
		return Status{}, err
	}
	return Status{Remaining: int(r.body[0]), Expires: time.Unix(int64(binary.BigEndian.Uint64(r.body[1:])), 0).UTC()}, nil
}

// exchange sends one request and reads the answer; a refusal is returned
// as a *RemoteError matching the sentinel of its code.
func (c *Client) exchange(ctx context.Context, p peer.ID, q *request) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st, err := c.h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("directory: open stream to %s: %w", p, err)
	}
	deadline, _ := ctx.Deadline()
	_ = st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	// clean is set once a whole answer was read: the stream is closed
	// then, and reset on any failure before that.
	clean := false
	defer func() {
		if clean {
			_ = st.Close()
		} else {
			_ = st.Reset()
		}
	}()
	if err := st.Scope().SetService(ServiceName); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	if err := wire.WriteOne(st, q.marshal()); err != nil {
		return nil, fmt.Errorf("directory: send %s to %s: %w", q.op, p, err)
	}
	if err := st.CloseWrite(); err != nil {
		return nil, fmt.Errorf("directory: send %s to %s: %w", q.op, p, err)
	}
	frame, err := wire.NewReader(st).ReadFrame(maxResponse)
	if err != nil {
		return nil, fmt.Errorf("directory: read answer from %s: %w", p, err)
	}
	r, err := parseResponse(frame, q.op)
	if err != nil {
		return nil, err
	}
	clean = true
	if rerr := errOf(r.code, r.msg); rerr != nil {
		return nil, fmt.Errorf("directory: %s refused %s: %w", p, q.op, rerr)
	}
	return r, nil
}
