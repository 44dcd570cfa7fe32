package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
)

// Send relays env to mailbox m on the remote node p with the direct
// protocol. It returns nil once p reports the envelope durably stored (or
// already held); otherwise an error that matches the remote's reason with
// errors.Is (envelope.ErrBadSignature, status.ErrNotServed,
// store.ErrQuotaExceeded, ...).
func Send(ctx context.Context, h host.Host, p peer.ID, m envelope.MailboxID, env *envelope.Envelope, timeout time.Duration) (err error) {
	if timeout <= 0 {
		timeout = DefaultParams().StreamTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return fmt.Errorf("relay: open stream to %s: %w", p, err)
	}
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	// clean is set once a complete answer was read: the stream is closed
	// then, and reset on any failure before that.
	clean := false
	defer func() {
		if clean {
			_ = s.Close()
		} else {
			_ = s.Reset()
		}
	}()
	if err := s.Scope().SetService(ServiceName); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	req := (&request{mailbox: m, envelope: env.Bytes()}).marshal()
	if err := writeFrame(s, req); err != nil {
		return fmt.Errorf("relay: send to %s: %w", p, err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("relay: send to %s: %w", p, err)
	}
	frame, err := newFrameReader(s).ReadFrame(maxResponseSize)
	if err != nil {
		return fmt.Errorf("relay: read answer from %s: %w", p, err)
	}
	resp, err := parseResponse(frame)
	if err != nil {
		return err
	}
	clean = true
	if rerr := resp.code.Err(resp.msg); rerr != nil {
		return fmt.Errorf("relay: %s refused envelope: %w", p, rerr)
	}
	return nil
}
