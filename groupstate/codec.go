package groupstate

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// decoder reads fixed-size big-endian fields from a byte slice. It never
// slices past the end: the first short read sets ok to false and every later
// read returns zero values, so a decoder checks ok once at the end (and
// before it trusts a length it has read).
type decoder struct {
	b  []byte
	ok bool
}

func newDecoder(b []byte) *decoder { return &decoder{b: b, ok: true} }

// take returns the next n bytes (aliasing the input) or nil if fewer remain.
func (d *decoder) take(n int) []byte {
	if !d.ok || n < 0 || n > len(d.b) {
		d.ok = false
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// remaining is the number of unread bytes.
func (d *decoder) remaining() int { return len(d.b) }

// done reports whether every read succeeded and nothing is left over.
func (d *decoder) done() bool { return d.ok && len(d.b) == 0 }

// Text limits shared by group names and nicknames.
const (
	// MaxNameLen is the longest group name or nickname, in bytes of UTF-8.
	MaxNameLen = 64
)

// checkText enforces the rules for human-readable short strings that other
// members' screens will show: valid UTF-8, at most max bytes, no control
// characters and no bidirectional-override or isolate characters (they can
// make one name look like another).
func checkText(what, s string, allowEmpty bool, max int) error {
	switch {
	case len(s) == 0 && !allowEmpty:
		return fmt.Errorf("%w: %s is empty; use 1 to %d bytes", ErrInvalidName, what, max)
	case len(s) > max:
		return fmt.Errorf("%w: %s is %d bytes; the limit is %d bytes of UTF-8", ErrInvalidName, what, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidName, what)
	}
	for i, r := range s {
		if unicode.IsControl(r) || isBidiControl(r) {
			return fmt.Errorf("%w: %s contains control character %U at byte %d", ErrInvalidName, what, r, i)
		}
	}
	return nil
}

// isBidiControl reports the Unicode bidirectional formatting characters.
func isBidiControl(r rune) bool {
	switch {
	case r == 0x061C, r == 0x200E, r == 0x200F:
		return true
	case r >= 0x202A && r <= 0x202E:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// Host list limits.
const (
	// MaxHosts is the most host multiaddrs a group or invite carries.
	MaxHosts = 16
	// MaxHostLen is the longest host multiaddr string, in bytes.
	MaxHostLen = 256
)

// checkHosts checks the shape of host multiaddr strings. groupstate does no
// networking and does not import the multiaddr parser; the node parses them
// when it dials. Here they must be non-empty printable ASCII starting with
// "/", at most MaxHostLen bytes, at most MaxHosts of them, no duplicates.
func checkHosts(hosts []string) error {
	if len(hosts) > MaxHosts {
		return fmt.Errorf("%w: %d hosts; at most %d are allowed", ErrInvalidHost, len(hosts), MaxHosts)
	}
	seen := make(map[string]struct{}, len(hosts))
	for i, h := range hosts {
		switch {
		case len(h) == 0:
			return fmt.Errorf("%w: host %d is empty", ErrInvalidHost, i)
		case len(h) > MaxHostLen:
			return fmt.Errorf("%w: host %d is %d bytes; the limit is %d", ErrInvalidHost, i, len(h), MaxHostLen)
		case h[0] != '/':
			return fmt.Errorf("%w: host %d %q is not a multiaddr (it must start with \"/\", e.g. /dns4/example.org/tcp/4001/p2p/12D3...)", ErrInvalidHost, i, h)
		case strings.IndexFunc(h, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0:
			return fmt.Errorf("%w: host %d contains spaces, control or non-ASCII characters", ErrInvalidHost, i)
		}
		if _, dup := seen[h]; dup {
			return fmt.Errorf("%w: host %q is listed twice", ErrInvalidHost, h)
		}
		seen[h] = struct{}{}
	}
	return nil
}

// appendHosts encodes a host list: count (1 byte) then, per host, a 2-byte
// length and the bytes.
func appendHosts(b []byte, hosts []string) []byte {
	b = append(b, byte(len(hosts)))
	for _, h := range hosts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(h)))
		b = append(b, h...)
	}
	return b
}

// readHosts decodes what appendHosts wrote and checks it with checkHosts.
func readHosts(d *decoder) ([]string, error) {
	n := int(d.u8())
	if !d.ok {
		return nil, fmt.Errorf("truncated before the host count")
	}
	if n > MaxHosts {
		return nil, fmt.Errorf("%d hosts; at most %d are allowed", n, MaxHosts)
	}
	var hosts []string
	for i := range n {
		l := int(d.u16())
		if !d.ok || l > MaxHostLen {
			return nil, fmt.Errorf("host %d: bad length", i)
		}
		h := d.take(l)
		if !d.ok {
			return nil, fmt.Errorf("host %d: truncated", i)
		}
		hosts = append(hosts, string(h))
	}
	if err := checkHosts(hosts); err != nil {
		return nil, err
	}
	return hosts, nil
}
