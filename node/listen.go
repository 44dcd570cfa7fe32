package node

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// checkListenAddrs refuses a fixed TCP listen port that another socket
// already listens on. libp2p's TCP transport binds with SO_REUSEPORT (so
// outgoing connections can leave from the listen port), and the kernel
// lets two such sockets share a port: a second node would start on the
// port of a running one and take some of its incoming connections. A
// plain bind without SO_REUSEPORT fails on a port anyone listens on, so
// it is tried first. Port 0 (any free port) needs no check.
func checkListenAddrs(addrs []string) error {
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("%w: listen address %q: %v", ErrConfig, s, err)
		}
		network, hostport, ok := tcpListenAddr(a)
		if !ok {
			continue
		}
		ln, err := net.Listen(network, hostport)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w: %s (another process, perhaps another meshnode node, listens on it; stop it or choose another port)", ErrListenAddrInUse, s)
			}
			return fmt.Errorf("%w: listen address %s: %v", ErrConfig, s, err)
		}
		ln.Close()
	}
	return nil
}

// tcpListenAddr returns the network and host:port of a /ip4|ip6/…/tcp/PORT
// multiaddr with a fixed port.
func tcpListenAddr(a ma.Multiaddr) (network, hostport string, ok bool) {
	var ip, port string
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_IP4:
			network, ip = "tcp4", c.Value()
		case ma.P_IP6:
			network, ip = "tcp6", c.Value()
		case ma.P_TCP:
			port = c.Value()
		}
		return true
	})
	if network == "" || port == "" {
		return "", "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n == 0 {
		return "", "", false
	}
	return network, net.JoinHostPort(ip, port), true
}
