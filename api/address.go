package api

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"
)

// UnixPrefix marks a Unix socket address: "unix:/path/to/sock".
const UnixPrefix = "unix:"

// ParseAddress splits an API address into a network and an address for
// net.Listen or net.Dial: "unix:/path" is ("unix", "/path"), "host:port" is
// ("tcp", "host:port").
func ParseAddress(s string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(s, UnixPrefix); ok {
		if path == "" || strings.ContainsRune(path, 0) {
			return "", "", fmt.Errorf("%w: %q: a unix socket address is unix:/path/to/sock", ErrBadAddress, s)
		}
		return "unix", path, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("%w: %q: want host:port (such as 127.0.0.1:0) or unix:/path/to/sock", ErrBadAddress, s)
	}
	if port == "" {
		return "", "", fmt.Errorf("%w: %q: missing port (use :0 for any free port)", ErrBadAddress, s)
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

// FormatAddress is the inverse of ParseAddress, for the address of a bound
// listener.
func FormatAddress(a net.Addr) string {
	if a.Network() == "unix" {
		return UnixPrefix + a.String()
	}
	return a.String()
}

// ParseToken checks and normalises an API token as stored in api.token:
// TokenSize bytes in hex, surrounding white space ignored.
func ParseToken(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 2*TokenSize {
		return "", fmt.Errorf("%w: %d characters, want %d hex characters", ErrBadToken, len(s), 2*TokenSize)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%w: not hex", ErrBadToken)
	}
	return s, nil
}
