package hostsync

import "errors"

// Sentinel errors; match with errors.Is. The wrapped message says what was
// wrong. A remote refusal is a *status.Error that matches the sentinels of
// package internal/status (status.ErrNotServed, status.ErrRateLimited, ...).
var (
	// ErrClosed: the service was closed.
	ErrClosed = errors.New("hostsync: closed")
	// ErrBusy: a session with that peer for that mailbox is already running
	// (at most one per peer and mailbox), or the service runs as many
	// sessions as Params allow. Retry later.
	ErrBusy = errors.New("hostsync: busy")
	// ErrBanned: the peer broke the protocol too often and is refused until
	// its ban ends (Params.BanFor).
	ErrBanned = errors.New("hostsync: peer banned for protocol violations")
	// ErrProtocol: the peer broke the sync protocol: a frame of the wrong
	// type or shape, an envelope that fails verification, an ID nobody asked
	// for or announced, more than the limits allow. The stream is reset and
	// the peer gets a strike.
	ErrProtocol = errors.New("hostsync: protocol violation")
	// ErrTimeout: the peer did not send or take a frame within
	// Params.IdleTimeout, or the session outlived Params.SessionTimeout. The
	// stream is reset; it is not a strike (the network may be slow).
	ErrTimeout = errors.New("hostsync: peer timed out")
	// ErrInvalidParams: Params or options that make no sense.
	ErrInvalidParams = errors.New("hostsync: invalid parameters")
)
