package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// freeTCPPort returns a port nothing listens on (the listener that found
// it is closed).
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A second node on the fixed port of a running one is refused: libp2p
// binds with SO_REUSEPORT, which would otherwise let both share the port
// and split its incoming connections. So is a port another program holds.
func TestListenPortInUse(t *testing.T) {
	leakCheck(t)
	port := freeTCPPort(t)
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
	first := startNode(t, nodeOpts{tweak: func(p *Params) { p.ListenAddrs = []string{addr} }})
	if !strings.Contains(first.Host().Addrs()[0].String(), fmt.Sprint(port)) {
		t.Fatalf("first node listens on %v", first.Host().Addrs())
	}

	for _, listen := range []string{addr, fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port)} {
		p := DefaultParams(RoleMember)
		p.ListenAddrs = []string{listen}
		n, err := New(context.Background(), p, WithLogger(quiet), WithDataDir(t.TempDir()))
		if err == nil {
			n.Close()
			t.Fatalf("a second node started on %s, held by the first", listen)
		}
		if !errors.Is(err, ErrListenAddrInUse) || !strings.Contains(err.Error(), listen) {
			t.Fatalf("second node on %s: %v, want ErrListenAddrInUse naming the address", listen, err)
		}
	}

	// Another program's listener.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := DefaultParams(RoleMember)
	p.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port)}
	if n, err := New(context.Background(), p, WithLogger(quiet), WithDataDir(t.TempDir())); !errors.Is(err, ErrListenAddrInUse) {
		if n != nil {
			n.Close()
		}
		t.Fatalf("node on a port another program holds: %v", err)
	}

	// Port 0 is never in use; a freed fixed port is usable again.
	first.Close()
	second := startNode(t, nodeOpts{tweak: func(p *Params) { p.ListenAddrs = []string{addr, "/ip4/127.0.0.1/tcp/0"} }})
	if len(second.Host().Addrs()) != 2 {
		t.Fatalf("second node listens on %v", second.Host().Addrs())
	}
}
