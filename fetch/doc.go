// Package fetch implements FetchNewMessagesForGroup: a member (or another
// host) asks a host for the envelopes of a mailbox that arrived after a
// cursor, page by page, in the host's arrival order. It never decrypts.
//
// # Protocol (ProtocolID = /meshnode/fetch/1.0.0)
//
// One request and one page per stream. All frames are varint-delimited
// (package internal/wire) and bounded:
//
//	request = version(1) ‖ mailbox(32) ‖ limit uint32 ‖ uint16 n ‖ cursor(n)
//	header  = code(1) ‖ uint16 m ‖ message(m) ‖ more(1) ‖ count uint32 ‖ uint16 k ‖ next cursor(k)
//	then, only if code is OK, count frames each holding one envelope encoding
//
// Integers are big-endian. The request is at most 1+32+4+2+MaxCursorSize
// bytes; the header at most 3+status.MaxMessage+1+4+2+MaxCursorSize; each
// envelope frame at most Params.MaxEnvelopeSize. A server never sends more
// than the requested limit, Params.MaxPageCount envelopes or (beyond the
// first envelope) Params.MaxPageBytes bytes; a client rejects a page that
// does.
//
// The catch-up client (Client.CatchUp) asks for the next page as soon as
// a page's header has arrived (the header carries the next cursor), so the
// host reads the next page from its store while the current one is in
// transit; pages are still handed over one at a time and in order, and at
// most two are held.
//
// Cursors are opaque and issued by the host (package store). An unknown or
// expired cursor is an explicit error (status.UnknownCursor,
// status.ExpiredCursor), never "everything". The cursor of the last page
// is saved by the member per host, so catch-up resumes where it stopped.
//
// The client checks that every envelope is well formed and belongs to the
// requested mailbox (a SHA-256 of its write key). Verifying the write
// signatures as well is a client option (Verify), because it costs ~50 µs
// per envelope: hosts that will store and re-serve what they fetch turn it
// on; a member that only decrypts is protected by the AEAD and the author
// signature inside the payload.
package fetch
