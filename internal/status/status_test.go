package status

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/store"
)

// A refusal crosses the wire as a code and a message and reads once on
// the other side: the code's name, then what the server said beyond its
// sentinel, without package names.
func TestRefusalReadsOnce(t *testing.T) {
	for _, c := range []struct {
		err      error
		code     Code
		msg      string // what the server sends
		readsAs  string // the client's error text
		sentinel error
	}{
		{fmt.Errorf("%w: too many new mailboxes from your network; retry later", ErrRateLimited), RateLimited,
			"too many new mailboxes from your network; retry later",
			"remote: rate limited: too many new mailboxes from your network; retry later", ErrRateLimited},
		{fmt.Errorf("%w: all fetch streams are in use; retry shortly", ErrBusy), Busy,
			"all fetch streams are in use; retry shortly", "remote: busy: all fetch streams are in use; retry shortly", ErrBusy},
		{fmt.Errorf("%w: %w: 900 of 1000 bytes used", store.ErrQuotaExceeded, errors.New("store: the rest of the quota is reserved for established mailboxes")), QuotaExceeded,
			"the rest of the quota is reserved for established mailboxes: 900 of 1000 bytes used",
			"remote: quota exceeded: the rest of the quota is reserved for established mailboxes: 900 of 1000 bytes used", store.ErrQuotaExceeded},
		{fmt.Errorf("relay: deliver: %w", store.ErrDiskFull), DiskFull, "deliver", "remote: disk full: deliver", store.ErrDiskFull},
		{store.ErrQuotaExceeded, QuotaExceeded, "", "remote: quota exceeded", store.ErrQuotaExceeded},
		{fmt.Errorf("%w: 70000 bytes, limit 65536", envelope.ErrTooLarge), TooLarge, "70000 bytes, limit 65536",
			"remote: too large: 70000 bytes, limit 65536", envelope.ErrTooLarge},
		{fmt.Errorf("admission: %w", ProofError(20, "the host is under load: a new mailbox needs a proof of work of 20 bits")), ProofRequired,
			"the host is under load: a new mailbox needs a proof of work of 20 bits",
			"remote: proof of work required: the host is under load: a new mailbox needs a proof of work of 20 bits", ErrProofRequired},
		{errors.New("badger: value log truncated at /srv/meshnode/store"), Unavailable, "internal error",
			"remote: unavailable: internal error", ErrUnavailable},
	} {
		code, msg := FromError(c.err)
		if code != c.code || msg != c.msg {
			t.Errorf("FromError(%q) = %v %q, want %v %q", c.err, code, msg, c.code, c.msg)
			continue
		}
		got := code.Err(msg)
		if code == ProofRequired {
			got = ProofError(20, msg)
		}
		if got.Error() != c.readsAs || !errors.Is(got, c.sentinel) {
			t.Errorf("client error %q (matches %v: %v), want %q", got, c.sentinel, errors.Is(got, c.sentinel), c.readsAs)
		}
		if n := strings.Count(got.Error(), code.String()); n != 1 {
			t.Errorf("%q names its code %d times", got, n)
		}
	}
}

// A peer's message is cleaned before anyone reads it: a code it repeats
// is dropped, control characters are replaced.
func TestReceivedMessageCleaned(t *testing.T) {
	for _, c := range []struct {
		code     Code
		msg, out string
	}{
		{RateLimited, "rate limited: rate limited: slow down", "slow down"},
		{Busy, "host busy: relay: all streams are in use", "relay: all streams are in use"},
		{Busy, "busy", ""},
		{RateLimited, "rate limitedness", "rate limitedness"},
		{QuotaExceeded, "store: quota exceeded: full", "full"},
		{NotServed, "no\x1b[31m red\nfailed  forged line\u202e", "no?[31m red?failed  forged line?"},
	} {
		err := c.code.Err(c.msg).(*Error)
		if err.Message != c.out {
			t.Errorf("Err(%q) message %q, want %q", c.msg, err.Message, c.out)
		}
	}
	if e := ProofError(12, "proof of work required: \x07solve it"); e.Message != "?solve it" {
		t.Errorf("ProofError message %q", e.Message)
	}
	if e := RateLimited.Err(strings.Repeat("x", 2*MaxMessage)).(*Error); len(e.Message) != MaxMessage {
		t.Errorf("a message of %d bytes kept", len(e.Message))
	}
}
