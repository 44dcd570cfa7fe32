package store

import (
	"errors"

	"github.com/meshnode/meshnode/envelope"
)

// Sentinel errors; match with errors.Is. The wrapped message says what
// exactly was wrong.
var (
	// ErrNotFound: no live envelope with that ID in that mailbox.
	ErrNotFound = errors.New("store: not found")
	// ErrUnknownCursor: the cursor was not issued by this store instance for
	// this mailbox, is garbled, or points beyond the last assigned sequence
	// number. The caller must not guess a position: restart from an empty
	// cursor (and dedupe by envelope ID) or ask another host.
	ErrUnknownCursor = errors.New("store: unknown cursor")
	// ErrExpiredCursor: envelopes after the cursor were removed by retention,
	// so resuming would silently skip them. Restart from an empty cursor and
	// treat the gap as lost on this host.
	ErrExpiredCursor = errors.New("store: cursor expired by retention")
	// ErrExpired: the envelope was stored and then removed by retention; its
	// tombstone blocks it from being stored again until the tombstone expires.
	ErrExpired = errors.New("store: envelope expired")
	// ErrQuotaExceeded: storing the envelope would exceed a mailbox or global
	// quota. Nothing was written.
	ErrQuotaExceeded = errors.New("store: quota exceeded")
	// ErrTooLarge is envelope.ErrTooLarge: the envelope exceeds the store's
	// MaxEnvelopeSize.
	ErrTooLarge = envelope.ErrTooLarge
	// ErrCorrupt: a record on disk failed to decode or is inconsistent with
	// another record. The store never panics on it and never repairs it
	// silently.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrSchema: the directory holds a store of another schema version, or
	// something that is not a meshnode store.
	ErrSchema = errors.New("store: unsupported schema")
	// ErrInvalidParams: Params or a MailboxPolicy make no sense.
	ErrInvalidParams = errors.New("store: invalid parameters")
	// ErrInvalidArgument: a call argument makes no sense (nil envelope,
	// non-positive page limits).
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("store: closed")
	// ErrDiskFull: the filesystem holding the store has less free space
	// than the store's watermark (DiskParams); writes are refused until
	// space is freed, reads go on. Nothing was written.
	ErrDiskFull = errors.New("store: disk full")
)
