package daemon

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/meshnode/meshnode/api"
)

// startUI serves the web app: on the API's listener apiLn (a TCP one)
// when ui_addr is empty or names the same address, else on a listener of
// its own. It warns when the app is reachable beyond this machine.
func (d *Daemon) startUI(cfg Config, apiLn net.Listener) error {
	if cfg.UIAddr == UIOff {
		return nil
	}
	addr := cfg.UIAddr
	network, _, _ := api.ParseAddress(cfg.APIAddr)
	// The same address, unless it asks for any free port (":0").
	same := addr == cfg.APIAddr && !strings.HasSuffix(addr, ":0")
	if (addr == "" || same) && network == "tcp" {
		d.uiAddr = apiLn.Addr().String()
	} else {
		if addr == "" {
			addr = DefaultUnixUIAddr
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w: web app address %s (pick another with --ui)", ErrAddrInUse, addr)
			}
			return fmt.Errorf("daemon: web app listener %s: %w", addr, err)
		}
		d.uiAddr = ln.Addr().String()
		d.uiSrv = newStreamingServer(d.api.http.Handler, d.c.log)
		go d.serve("ui", d.uiSrv, ln)
	}
	// The base URL comes from the address asked for, with the port bound:
	// Go binds 0.0.0.0 as [::] where it can, yet 127.0.0.1 is the way in.
	asked, want := d.uiAddr, addr
	if want == "" {
		want = cfg.APIAddr
	}
	if h, _, err := net.SplitHostPort(want); err == nil {
		if _, port, err := net.SplitHostPort(d.uiAddr); err == nil {
			asked = net.JoinHostPort(h, port)
		}
	}
	base, loopback := uiBase(asked)
	d.uiBase = base
	if !loopback {
		d.log.Warn("the web app listens beyond this machine over plain HTTP: its session cookie and your messages cross the network unencrypted, "+
			"and browsers give it no notifications; prefer loopback (an SSH tunnel reaches it from elsewhere)", "addr", d.uiAddr)
	}
	return nil
}

// uiBase is the URL of the web app bound at addr: a wildcard address is
// reached over loopback from this machine.
func uiBase(addr string) (base string, loopback bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr, false
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		loopback = host == "localhost"
	case ip.IsUnspecified():
		// Reachable from everywhere, opened from here over loopback.
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	default:
		loopback = ip.IsLoopback()
	}
	return "http://" + net.JoinHostPort(host, port), loopback
}
