package bench

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

// quiet is the logger of every node a benchmark starts: their info lines
// would interleave with the report.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// workdir returns the directory for a run's stores and a function that
// removes it if it was a temporary one.
func workdir(dir, pattern string) (string, func(), error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "meshnode-bench-"+pattern)
		if err != nil {
			return "", nil, fmt.Errorf("bench: temporary directory: %w", err)
		}
		return d, func() { _ = os.RemoveAll(d) }, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	d, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", nil, fmt.Errorf("bench: directory in %s: %w", dir, err)
	}
	return d, func() {}, nil
}

// storeParams are the host store's parameters in every benchmark: the
// on-disk defaults (durable: every commit fsynced before it is
// acknowledged) without the background jobs and quotas. Retention and
// value-log GC would run at arbitrary points of a measured window, and the
// default per-mailbox quota (512 MiB) would refuse a large --n. Nor does
// it budget new mailboxes (issue 14's admission): a benchmark's mailbox is
// new by construction, and its 16 MiB budget would refuse all of --n
// beyond 16k envelopes of 1 KiB.
func storeParams() store.Params {
	p := store.DefaultParams()
	p.RetentionInterval, p.GCInterval = 0, 0
	p.Default, p.GlobalQuotaBytes = store.MailboxPolicy{}, 0
	p.Admission = store.AdmissionParams{}
	return p
}

// hostParams are the remote host's node parameters: a community host with
// the store above, serving any mailbox, and with the per-peer rate limits
// and the rates of traffic to new mailboxes off. Rate limits cap what one
// peer (or network) may ask for by policy; a capacity benchmark with four
// peers on loopback would measure the policy instead of the host.
func hostParams() node.Params {
	p := node.DefaultParams(node.RoleHost)
	p.StablePeerID = false // a fresh transport key; nothing to keep
	p.HostPolicy = node.PolicyOpen
	p.Store = storeParams()
	p.Relay.PeerRate = 0
	p.Fetch.PeerRate = 0
	p.Admission.NewTrafficRate, p.Admission.NewMailboxRate = 0, 0
	return p
}

// memberParams are the writers' and the fetching client's node parameters:
// a member node with an in-memory store (they store nothing).
func memberParams() node.Params {
	p := node.DefaultParams(node.RoleMember)
	p.Store = store.InMemoryParams()
	p.Store.RetentionInterval = 0
	return p
}

// startHost starts the host node with its store in dir and its metrics in
// reg.
func startHost(ctx context.Context, dir string, reg prometheus.Registerer) (*node.Node, error) {
	n, err := node.New(ctx, hostParams(), node.WithLogger(quiet), node.WithDataDir(dir), node.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("bench: start host node: %w", err)
	}
	return n, nil
}

// startMember starts a member node connected to the host h.
func startMember(ctx context.Context, h *node.Node) (*node.Node, error) {
	n, err := node.New(ctx, memberParams(), node.WithLogger(quiet))
	if err != nil {
		return nil, fmt.Errorf("bench: start member node: %w", err)
	}
	if err := n.Host().Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Host().Addrs()}); err != nil {
		n.Close()
		return nil, fmt.Errorf("bench: connect to host: %w", err)
	}
	return n, nil
}

// writeKey draws an epoch write key.
func writeKey() (ed25519.PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bench: write key: %w", err)
	}
	return k, nil
}

// makeEnvelopes seals n envelopes of size bytes under k, on all cores.
// The "ciphertext" is pseudo-random bytes (a host cannot tell the
// difference) and each envelope gets a distinct nonce, so every envelope
// has a distinct ID.
func makeEnvelopes(k ed25519.PrivateKey, n, size int) ([]*envelope.Envelope, error) {
	envs := make([]*envelope.Envelope, n)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("bench: seed: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.NewChaCha8(seed)
			nonce := make([]byte, envelope.NonceSize)
			ct := make([]byte, size-envelope.Overhead)
			for i := w; i < n; i += workers {
				_, _ = rng.Read(nonce[8:])
				binary.BigEndian.PutUint64(nonce, uint64(i))
				_, _ = rng.Read(ct)
				e, err := envelope.Seal(k, nonce, ct, 0)
				if err != nil {
					errs[w] = fmt.Errorf("bench: seal envelope %d: %w", i, err)
					return
				}
				envs[i] = e
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return envs, nil
}

// parallel runs fn(i) for i in [0, n) on all cores and returns the first
// error.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := fn(i); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// histogram reads the sum and count of the histogram name in reg.
func histogram(reg *prometheus.Registry, name string) (sum float64, count uint64) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				sum += h.GetSampleSum()
				count += h.GetSampleCount()
			}
		}
	}
	return sum, count
}

// frameSize is the length of a wire frame holding n bytes.
func frameSize(n int) int64 {
	var b [binary.MaxVarintLen64]byte
	return int64(binary.PutUvarint(b[:], uint64(n)) + n)
}

// sub returns dir/name, created.
func sub(dir, name string) (string, error) {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return d, nil
}
