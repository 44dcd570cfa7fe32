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
// on the topic if it has joined it and another peer is on it.
//
// # Direct protocol (ProtocolID = /meshnode/relay/1.0.0)
//
// One request and one response per stream, each a varint-delimited frame
// (package internal/wire):
//
//	request  = version(1)=1 ‖ mailbox(32) ‖ envelope encoding
//	         | version(1)=2 ‖ mailbox(32) ‖ proof(8) ‖ envelope encoding
//	response = code(1) ‖ uint16 len ‖ message (≤ status.MaxMessage bytes)
//	           ‖ bits(1), only with code ProofRequired
//
// Codes are those of package internal/status. A request of version 2
// carries a new-mailbox proof of work (admission.Proof), sent only after
// the host answered ProofRequired with the difficulty in bits (1..32):
// Send and Session.Send compute it when it is at most
// Params.MaxProofBits and send the request again. The request frame is
// bounded by 1+32+8+Params.MaxEnvelopeSize, the response by
// 4+status.MaxMessage. The first request must arrive within
// RequestTimeout of accepting the stream (package admission may reset a
// stream that has sent nothing sooner, to make room), and its mailbox
// admits the stream into the relay gate (or it is answered Busy). Refusals
// of admission are answered RateLimited, Busy, QuotaExceeded or
// ProofRequired, each matching its own sentinel at the client.
// The server sets a deadline right after accepting, reserves with the
// resource manager the memory of its read buffer and of the frame the
// request's length prefix announces (at most the bound above) before
// reading it, checks the per-peer rate limit and the hosting policy, and
// resets the stream on any failure to read or write. The reservation is
// released before the answer is written, so a sender that keeps the
// service's per-peer maximum of requests in flight is never refused.
//
// The answer goes back as soon as the envelope is durably stored; the
// envelope is then published on the topic (if the host has joined it and
// another peer is on it: alone, there is no one to forward to), marked as
// just opened, so the local gossip validator does not check its signature
// a second time and the host's own subscription does not hand it to the
// Handler again; everything else published is checked and handed over.
//
// # Session protocol (SessionProtocolID = /meshnode/relay/1.2.0)
//
// Any number of requests on one stream, pipelined: the sender writes
// requests without waiting for answers, and the server answers every
// request once, as soon as it is done, in any order. Each frame carries a
// request ID chosen by the sender, which the server echoes:
//
//	request  = id uint32 ‖ version(1) ‖ mailbox(32) ‖ envelope encoding
//	response = id uint32 ‖ code(1) ‖ uint16 len ‖ message
//
// A refusal (bad signature, quota, rate, ...) is answered like a success
// and the session goes on. A frame over the bound (4+1+32+MaxEnvelopeSize)
// is answered TooLarge by the ID in its first bytes, and then the session
// ends, as it does at a length prefix that does not decode or a frame too
// short for an ID (these get no answer); requests read before are
// answered first. Version 1.1.0 (one request at a time, a refusal ended
// the session) is no longer served.
//
//	sender:  req1 req2 req3 ─────────────► req4 ...
//	server:  read and decode each; verify and store each in its own
//	         goroutine, at most Params.SessionWindow at once
//	         ◄───────────── ans2 ans1 ans3 (one write: all that are done)
//
// The server reads requests as they arrive, so the requests of one sender
// are verified in parallel and reach the store's group commit together;
// one write then carries the answers of a whole commit back, and no answer
// waits for a slower request sent before it (requests of one sender often
// reach the store out of order and land in different commits). It
// reserves memory with the resource manager before it holds anything: the
// read buffer up front; a small frame (4 KiB) per request in flight, the
// first time the session has that many, kept for the session's life (a
// steady session costs the resource manager nothing per request); and for
// a larger frame the rest of what its length prefix announces, released
// once it is handled. A refused small-frame slot shrinks the session's
// window; a large frame that does not fit even after the requests in
// flight are done is skipped unread and answered RateLimited, as is a
// request over the per-peer rate. An idle session ends after
// StreamTimeout (at least half of it).
//
// Session is the client: concurrent Sends share one stream, their
// requests go out in as few writes as possible, and one reader goroutine
// hands each answer to the Send waiting for its ID.
package relay
