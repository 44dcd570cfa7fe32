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

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/hostsync"
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
// Params.MemoryLimit and FDLimit (not from the machine's total memory),
// explicit limits for meshnode's own services (relay, fetch, sync), libp2p's connection
// limiter per address and per network prefix, and admission's count of
// inbound streams per prefix around it (package admission).
func resourceManager(p *Params, adm *admission.Controller) (network.ResourceManager, error) {
	a := p.Admission
	scaling := rcmgr.DefaultLimits
	// The relay and fetch services' stream limits are what their admission
	// gates can hold (pending and active), so the gates decide who waits:
	// the resource manager's service limit is shared, and whoever fills it
	// first would lock out everyone else. Each relay stream may hold one
	// request frame.
	scaling.AddServiceLimit(relay.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: a.Relay.Inbound(), StreamsOutbound: 256, Streams: a.Relay.Inbound() + 256, Memory: int64(64 * p.Relay.MaxRequestSize())},
		rcmgr.BaseLimitIncrease{})
	scaling.AddServicePeerLimit(relay.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: int64(8 * p.Relay.MaxRequestSize())},
		rcmgr.BaseLimitIncrease{})
	// The fetch service reserves one page buffer (about MaxPageBytes) per
	// 1.0.0 request and two per 1.1.0 stream (one if two are refused): at
	// medium priority for a privileged stream (granted below 60% of a
	// scope's limit) and at low priority for a general one (below 40%),
	// so the rest is kept for established mailboxes (admission). A client
	// reserves the page it needs next at high priority (below 80%), and
	// the pages it reads ahead (1.1.0, up to Fetch.ReadAhead) at low
	// priority, waiting for a page to be handed over rather than failing
	// when refused. A peer's scope holds eight full pages: a client reads
	// three full pages (or six of half that) ahead and still leaves room
	// for the pages of another catch-up from the same peer, and a host
	// double-buffers two streams of one peer. The service's scope holds 32
	// (up to 19 pages in flight across peers).
	scaling.AddServiceLimit(fetch.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: a.Fetch.Inbound(), StreamsOutbound: 64, Streams: a.Fetch.Inbound() + 64, Memory: int64(32 * p.Fetch.MaxPageBytes)},
		rcmgr.BaseLimitIncrease{})
	scaling.AddServicePeerLimit(fetch.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 4, StreamsOutbound: 8, Streams: 12, Memory: int64(8 * p.Fetch.MaxPageBytes)},
		rcmgr.BaseLimitIncrease{})
	// The sync service's inbound streams are what its gate can hold; each
	// session reserves its frames' memory (hostsync's sessionMemory,
	// about 2 MiB by default) at medium priority when privileged and at
	// low priority when general, so general sessions can take no more
	// than 40% of the service's memory (the rest is for established
	// mailboxes); outgoing sessions are bounded by Sync.MaxOutgoing.
	session := int64(2*(1+p.Sync.Reconcile.MaxMessageSize) + 2*p.Sync.MaxEnvelopeSize)
	syncStreams := a.Sync.MaxStreams + p.Sync.MaxOutgoing
	scaling.AddServiceLimit(hostsync.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: a.Sync.Inbound(), StreamsOutbound: p.Sync.MaxOutgoing, Streams: a.Sync.Inbound() + p.Sync.MaxOutgoing,
			Memory: int64(syncStreams) * session},
		rcmgr.BaseLimitIncrease{})
	scaling.AddServicePeerLimit(hostsync.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: a.Sync.PerPeer + a.Sync.PendingPerPeer, StreamsOutbound: p.Sync.MaxOutgoing,
			Streams: a.Sync.PerPeer + a.Sync.PendingPerPeer + p.Sync.MaxOutgoing, Memory: int64(a.Sync.PerPeer+p.Sync.MaxOutgoing) * session},
		rcmgr.BaseLimitIncrease{})
	limits := scaling.Scale(p.MemoryLimit, p.FDLimit)
	// Streams not yet negotiated count in the transient scope, which all
	// peers share: it holds what four networks may open at once
	// (StreamsPerPrefix each), so one network cannot fill it.
	limits = withTransientStreams(limits, 4*a.StreamsPerPrefix)
	v4 := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: a.ConnsPerIP}, {PrefixLength: a.IPv4PrefixBits, ConnCount: a.ConnsPerPrefix}}
	v6 := []rcmgr.ConnLimitPerSubnet{{PrefixLength: 64, ConnCount: a.ConnsPerIP}, {PrefixLength: a.IPv6PrefixBits, ConnCount: a.ConnsPerPrefix}}
	opts := []rcmgr.Option{
		// Its built-in stats reporter traces every event into Prometheus's
		// global default registry, which the daemon does not export (it has
		// a registry of its own): measured at 5-9% of a host's CPU under
		// ingest, for nothing.
		rcmgr.WithMetricsDisabled(),
		rcmgr.WithLimitPerSubnet(v4, v6),
	}
	if !a.ExemptLoopback {
		// libp2p leaves loopback unlimited unless told otherwise.
		opts = append(opts, rcmgr.WithNetworkPrefixLimit([]rcmgr.NetworkPrefixLimit{}, []rcmgr.NetworkPrefixLimit{}))
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), opts...)
	if err != nil {
		return nil, err
	}
	return admission.WrapResourceManager(rm, adm), nil
}

// withTransientStreams raises the transient scope's inbound stream limit
// (and the system's, which contains it) to at least n.
func withTransientStreams(l rcmgr.ConcreteLimitConfig, n int) rcmgr.ConcreteLimitConfig {
	pl := l.ToPartialLimitConfig()
	raise := func(r *rcmgr.ResourceLimits) {
		if int(r.StreamsInbound) < n && r.StreamsInbound != rcmgr.Unlimited {
			r.StreamsInbound = rcmgr.LimitVal(n)
		}
		if int(r.Streams) < n && r.Streams != rcmgr.Unlimited {
			r.Streams = rcmgr.LimitVal(n)
		}
	}
	raise(&pl.Transient)
	raise(&pl.System)
	return pl.Build(l)
}

// newHost builds the libp2p host: TCP, Noise, yamux, fixed resource limits
// with admission's per-prefix counts, a connection manager, and no
// relay/NAT services (meshnode does not act as a circuit relay for
// strangers).
func newHost(p *Params, key crypto.PrivKey, adm *admission.Controller) (host.Host, error) {
	rm, err := resourceManager(p, adm)
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
