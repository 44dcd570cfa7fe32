package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/relay"
)

// transportKey returns the libp2p peer key. The transport identity is never
// the profile identity (ARCHITECTURE §3): members draw a fresh one at each
// start so hosts cannot link their sessions; hosts and bots keep one in
// PeerKeyFile so they can be found at a stable address.
func transportKey(p *Params, cfg *config) (crypto.PrivKey, error) {
	if cfg.peerKey != nil {
		return cfg.peerKey, nil
	}
	if !p.StablePeerID {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		return k, err
	}
	b, err := os.ReadFile(p.PeerKeyFile)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%w: peer key %s: %v", ErrConfig, p.PeerKeyFile, err)
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		b, err := crypto.MarshalPrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(p.PeerKeyFile, b, 0o600); err != nil {
			return nil, fmt.Errorf("node: save peer key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("node: read peer key: %w", err)
	}
}

// writeFileAtomic writes via a temporary file, fsync and rename, so a crash
// leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// resourceManager builds a resource manager with fixed limits computed from
// Params.MemoryLimit and FDLimit (not from the machine's total memory), and
// explicit limits for meshnode's own services.
func resourceManager(p *Params) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	// Each relay stream may hold one request frame; each fetch stream one
	// page (1.0.0) or two (1.1.0, which loads the next while it writes one).
	scaling.AddServiceLimit(relay.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: int64(64 * p.Relay.MaxRequestSize())},
		rcmgr.BaseLimitIncrease{})
	scaling.AddServicePeerLimit(relay.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: int64(8 * p.Relay.MaxRequestSize())},
		rcmgr.BaseLimitIncrease{})
	// The fetch service reserves one page buffer (about MaxPageBytes) per
	// 1.0.0 request and two per 1.1.0 stream (one if two are refused) at
	// medium priority, which the resource manager grants only below 60% of
	// a scope's limit. A client reserves the page it needs next at high
	// priority (below 80%), and the pages it reads ahead (1.1.0, up to
	// Fetch.ReadAhead) at low priority (below 40%), waiting for a page to
	// be handed over rather than failing when refused. A peer's scope holds
	// eight full pages: a client reads three full pages (or six of half
	// that) ahead and still leaves room for the pages of another catch-up
	// from the same peer, and a host double-buffers two streams of one
	// peer. The service's scope holds 32 (up to 19 pages in flight across
	// peers).
	scaling.AddServiceLimit(fetch.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: int64(32 * p.Fetch.MaxPageBytes)},
		rcmgr.BaseLimitIncrease{})
	scaling.AddServicePeerLimit(fetch.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 4, StreamsOutbound: 8, Streams: 12, Memory: int64(8 * p.Fetch.MaxPageBytes)},
		rcmgr.BaseLimitIncrease{})
	limits := scaling.Scale(p.MemoryLimit, p.FDLimit)
	// Its built-in stats reporter traces every event into Prometheus's
	// global default registry, which the daemon does not export (it has a
	// registry of its own): measured at 5-9% of a host's CPU under ingest,
	// for nothing.
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithMetricsDisabled())
}

// newHost builds the libp2p host: TCP, Noise, yamux, fixed resource limits,
// a connection manager, and no relay/NAT services (meshnode does not act
// as a circuit relay for strangers).
func newHost(p *Params, key crypto.PrivKey) (host.Host, error) {
	rm, err := resourceManager(p)
	if err != nil {
		return nil, fmt.Errorf("node: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(p.ConnLow, p.ConnHigh, connmgr.WithGracePeriod(p.ConnGrace))
	if err != nil {
		return nil, fmt.Errorf("node: connection manager: %w", err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(p.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: libp2p: %v", ErrConfig, err)
	}
	return h, nil
}
