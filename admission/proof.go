package admission

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/pow"
)

// LabelMailboxProof prefixes every new-mailbox proof-of-work digest.
const LabelMailboxProof = "meshnode/v1/host/mailbox-proof"

// Proof is a new-mailbox proof of work: a nonce such that
//
//	SHA-256(LabelMailboxProof ‖ uint16 len(host) ‖ host peer ID ‖ mailbox tag (32) ‖ nonce (8))
//
// has at least the host's NewMailboxProofBits leading zero bits (package
// internal/pow, the construction contact requests use). It is bound to
// one host and one mailbox: it admits that mailbox on that host and
// nothing else, so each new mailbox costs its creator the work once per
// host. It need not be fresh: precomputing proofs costs the same work.
type Proof [pow.NonceSize]byte

func proofInput(host peer.ID, m envelope.MailboxID) []byte {
	in := make([]byte, 0, len(LabelMailboxProof)+2+len(host)+len(m)+pow.NonceSize)
	in = append(in, LabelMailboxProof...)
	in = binary.BigEndian.AppendUint16(in, uint16(len(host)))
	in = append(in, host...)
	in = append(in, m[:]...)
	return append(in, make([]byte, pow.NonceSize)...)
}

// SolveMailboxProof computes a proof of bits bits for mailbox m on host.
func SolveMailboxProof(ctx context.Context, host peer.ID, m envelope.MailboxID, bits uint8) (Proof, error) {
	var p Proof
	in := proofInput(host, m)
	if err := pow.Solve(ctx, in, bits); err != nil {
		return p, fmt.Errorf("admission: new-mailbox proof: %w", err)
	}
	copy(p[:], in[len(in)-pow.NonceSize:])
	return p, nil
}

// CheckMailboxProof reports whether p is a proof of at least bits bits
// for mailbox m on host.
func CheckMailboxProof(host peer.ID, m envelope.MailboxID, p Proof, bits uint8) bool {
	in := proofInput(host, m)
	copy(in[len(in)-pow.NonceSize:], p[:])
	_, ok := pow.Check(in, bits)
	return ok
}
