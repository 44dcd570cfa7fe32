package errtext

import "testing"

func TestStrip(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"daemon: node: unknown group: \"x\"", "unknown group: \"x\""},
		{"node: no directory hosts configured (set directory hosts)", "no directory hosts configured (set directory hosts)"},
		{"relay: 12D3 refused envelope: remote: rate limited: slow down", "12D3 refused envelope: remote: rate limited: slow down"},
		{"open daemon: home", "open daemon: home"}, // only at the start or after ": "
		{"the store is full", "the store is full"},
		{"groupstate: message too long: the message is 9 bytes", "message too long: the message is 9 bytes"},
	} {
		if got := Strip(c.in); got != c.want {
			t.Errorf("Strip(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
