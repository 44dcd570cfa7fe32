// Package relay implements RelayMessageToGroup: it moves envelopes to the
// nodes that host a mailbox. It never decrypts anything; it sees only
// envelopes (package envelope).
//
// # Two paths
//
// Gossip. Every mailbox has one gossipsub topic whose name is derived from
// the mailbox tag only (TopicName). Nodes that host or read the mailbox
// join the topic. A validator runs on every node before anything is
// forwarded: it checks the frame size, decodes the envelope, checks that its
// write key hashes to the topic's mailbox and verifies the write signature,
// so spam and forgeries die at the first hop and their senders are
// penalised. Pubsub runs with StrictNoSign and content-addressed message IDs
// (the envelope ID), so a gossip message carries no transport identity
// beyond the hop that forwarded it, and duplicates are dropped by pubsub's
// seen-cache. Valid envelopes are handed to the Handler (the node's store).
//
// Direct. A node that is not in a mailbox's mesh (a member that just came
// online, a member sending to a host named in the invite) calls the host
// with the request/response protocol ProtocolID. The host answers only
// after the Handler has durably stored the envelope, and then forwards it
// on the topic if it has joined it.
//
// # Direct protocol (ProtocolID = /meshnode/relay/1.0.0)
//
// One request and one response per stream, each a varint-delimited frame
// (package internal/wire):
//
//	request  = version(1) ‖ mailbox(32) ‖ envelope encoding
//	response = code(1) ‖ uint16 len ‖ message (≤ status.MaxMessage bytes)
//
// Codes are those of package internal/status. The request frame is bounded
// by 1+32+Params.MaxEnvelopeSize, the response by 3+status.MaxMessage.
// The server sets a deadline right after accepting, reserves with the
// resource manager the memory of its read buffer and of the frame the
// request's length prefix announces (at most the bound above) before
// reading it, checks the per-peer rate limit and the hosting policy, and
// resets the stream on any failure to read or write. The reservation is
// released before the answer is written, so a sender that keeps the
// service's per-peer maximum of requests in flight is never refused.
//
// An envelope the server has just opened (verified) is published on the
// topic marked as such, and the local gossip validator does not check its
// signature a second time; everything else published is checked.
package relay
