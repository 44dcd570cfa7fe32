// Package fetch implements FetchNewMessagesForGroup: a member (or another
// host) asks a host for the envelopes of a mailbox that arrived after a
// cursor, page by page, in the host's arrival order. It never decrypts.
//
// Two protocols are served. Client.Fetch uses the first; Client.CatchUp
// asks for the second and falls back to the first with a host that does
// not speak it.
//
// # One page per stream (ProtocolID = /meshnode/fetch/1.0.0)
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
// Catching up over this protocol, the client asks for the next page as
// soon as a page's header has arrived (the header carries the next
// cursor), so the host reads the next page from its store while the
// current one is in transit; pages are still handed over one at a time
// and in order, and at most two are held.
//
// # A stream of pages (StreamProtocolID = /meshnode/fetch/1.1.0)
//
// One request, then page after page on the same stream, so the stream's
// flow-control window opens once for the whole catch-up and no page
// waits for a request:
//
//	client ── request ──────────────────────────────► host
//	       ◄── page 1: header ‖ body ──────────────── VisitPage(cursor)
//	       ◄── page 2: header ‖ body ──────────────── VisitPage(page 1's next)
//	       ...
//	       ◄── last page (more = 0), or the page budget spent ── close
//
//	request = version(1) ‖ mailbox(32) ‖ limit uint32 ‖ pages uint32 ‖ uint16 n ‖ cursor(n)
//	header  = code(1) ‖ uint16 m ‖ message(m) ‖ more(1) ‖ count uint32 ‖ size uint32 ‖ uint16 k ‖ next cursor(k)
//	body    = count envelope frames (uvarint length ‖ encoding), size bytes in all
//
// The request is one frame of at most 1+32+4+4+2+MaxCursorSize bytes;
// limit bounds the envelopes of each page and pages the number of pages
// (0: the host's MaxPageCount and MaxStreamPages, which also cap them).
// Each header is one frame of at most
// 3+status.MaxMessage+1+4+4+2+MaxCursorSize bytes, followed directly (no
// frame of its own) by its body. A page holds at most limit and
// MaxPageCount envelopes and MaxPageBytes bytes of encodings, so size is
// at most MaxPageBytes plus a length prefix per envelope; every prefix is
// minimal and the frames fill size exactly. A header whose code is not OK
// carries no page (count, size, more and cursor zero) and ends the
// stream: a refusal (not served, rate limited, unknown or expired cursor)
// or a failure met after earlier pages, which the client keeps.
//
// The host sends pages until one says none remain (more = 0) or it has
// sent the page budget, then closes the stream; a clean end after a page
// with more = 1 tells the client to go on with a new stream from that
// page's cursor. It checks the hosting policy and takes a rate-limit
// token for every page, as for every request of 1.0.0. A loader goroutine
// frames the next page while the current one is written (what the 1.0.0
// client gets by asking one page ahead), so the host holds two page
// buffers, each room for the largest header and body (pageBufferSize): it
// reserves both with the resource manager before loading the first, or
// one, loading each page only after the one before was written, if that
// is all it is granted, or refuses (Busy). A page is framed
// straight from the store's memory into its buffer (store.VisitPage:
// envelope frames first, then the header in the room kept before them),
// with no copy of the page in between, and the two buffers are reused for
// every page of the stream. Its request must arrive within RequestTimeout
// of accepting the stream (package admission may reset a stream that has
// sent nothing sooner, to make room; its mailbox admits it into the fetch
// gate, or it is refused Busy). Its deadline is then StreamTimeout, and
// moves on with every page. Each page (header and body)
// is written from its buffer in writes of up to streamWriteSize (one
// yamux frame in one Noise message). A host of 1.0.0 builds its one page
// the same way.
//
// The client reads each page off the stream into one buffer as soon as
// it arrives (after reserving size bytes on the stream's scope, before
// allocating), while the pages before are decoded, checked and handed to
// the callback in order. It reads up to Params.ReadAhead pages ahead of
// the one being handed over, so the stream's window stays open and the
// host keeps sending while the client decodes. The page it needs next is
// reserved at high priority, pages read ahead at low priority (granted
// only below 40% of a scope's limit, so a catch-up reading ahead leaves
// room for another); when the resource manager refuses a page's memory
// while others are held, the reader waits for one to be handed over and
// tries again, and only a page refused with none held fails the catch-up. Each body has a buffer of its own, which the
// page's envelopes keep (they are decoded in place), so the callback may
// keep them. A page is handed over whole or not at all, so a stream that
// breaks midway loses nothing: the cursor returned is the last page the
// callback accepted, and a catch-up resumed from it repeats nothing.
// Streams are closed on success and reset on failure.
//
// # Both protocols
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
