package relay

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
)

// Send relays env to mailbox m on the remote node p with the direct
// protocol. It returns nil once p reports the envelope durably stored (or
// already held); otherwise an error that matches the remote's reason with
// errors.Is (envelope.ErrBadSignature, status.ErrNotServed,
// store.ErrQuotaExceeded, status.ErrRateLimited, status.ErrBusy, ...).
//
// A host under load may admit a new mailbox only with a proof of work
// (status.ProofRequired): Send computes it, when it asks for at most
// DefaultMaxProofBits, and sends again with it, all within timeout.
func Send(ctx context.Context, h host.Host, p peer.ID, m envelope.MailboxID, env *envelope.Envelope, timeout time.Duration) (err error) {
	return SendWith(ctx, h, p, m, env, timeout, DefaultMaxProofBits)
}

// SendWith is Send computing a proof of work a host asks for only up to
// maxProofBits bits (0: never).
func SendWith(ctx context.Context, h host.Host, p peer.ID, m envelope.MailboxID, env *envelope.Envelope, timeout time.Duration, maxProofBits uint8) error {
	if timeout <= 0 {
		timeout = DefaultParams().StreamTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := &request{mailbox: m, envelope: env.Bytes()}
	resp, err := sendOnce(ctx, h, p, q)
	if err != nil {
		return err
	}
	if proof, err := solveIfAsked(ctx, resp, p, m, maxProofBits); err != nil {
		return err
	} else if proof != nil {
		q.proof = proof
		if resp, err = sendOnce(ctx, h, p, q); err != nil {
			return err
		}
	}
	if rerr := resp.err(); rerr != nil {
		return fmt.Errorf("relay: %s refused envelope: %w", p, rerr)
	}
	return nil
}

// solveIfAsked returns a proof of work for mailbox m on host p if resp
// asks for one of at most maxBits (nil if it asks for none, or for more).
func solveIfAsked(ctx context.Context, resp *response, p peer.ID, m envelope.MailboxID, maxBits uint8) (*admission.Proof, error) {
	if resp.code != status.ProofRequired || resp.bits > maxBits || maxBits == 0 {
		return nil, nil
	}
	proof, err := admission.SolveMailboxProof(ctx, p, m, resp.bits)
	if err != nil {
		return nil, fmt.Errorf("relay: %s asked for a proof of work of %d bits: %w", p, resp.bits, err)
	}
	return &proof, nil
}

// sendOnce runs one exchange of the one-request protocol and returns the
// host's answer.
func sendOnce(ctx context.Context, h host.Host, p peer.ID, q *request) (*response, error) {
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("relay: open stream to %s: %w", p, err)
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
		return nil, fmt.Errorf("relay: %w", err)
	}
	if err := writeFrame(s, q.marshal()); err != nil {
		return nil, fmt.Errorf("relay: send to %s: %w", p, err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("relay: send to %s: %w", p, err)
	}
	frame, err := newFrameReader(s).ReadFrame(maxResponseSize)
	if err != nil {
		return nil, fmt.Errorf("relay: read answer from %s: %w", p, err)
	}
	resp, err := parseResponse(frame)
	if err != nil {
		return nil, err
	}
	clean = true
	return resp, nil
}
