package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

// PassphraseFunc supplies the keystore passphrase. Start calls it only
// when the keystore is encrypted; the caller owns the returned bytes'
// lifetime but Start clears them after use.
type PassphraseFunc func() ([]byte, error)

// Daemon is a running node with its control API and optional metrics
// endpoint, holding the lock of its home.
//
// Close is the only method that changes state after Start; it is safe to
// call more than once and from any goroutine.
type Daemon struct {
	home    *Home
	cfg     Config
	c       config
	log     *slog.Logger
	lock    *homeLock
	ks      *keymgmt.Keystore
	node    *node.Node
	metrics *metrics
	started time.Time

	api         *server
	apiAddr     string
	wroteAddr   bool
	uiSrv       *http.Server // the web app's own server, when not on the API's
	uiAddr      string       // where the web app is served ("" if off)
	uiBase      string       // the web app's URL, for login URLs
	metricsSrv  *http.Server
	metricsAddr string

	errc      chan error
	stopWatch chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Start loads the keystore (asking pass for the passphrase if it is
// encrypted), starts the node, serves the control API on cfg.APIAddr and
// writes the bound address to the home's api.addr, and serves metrics on
// cfg.MetricsAddr if set. It fails with ErrAlreadyRunning if another
// daemon holds the home, and with keymgmt.ErrWrongPassphrase for a wrong
// passphrase.
func Start(ctx context.Context, h *Home, cfg Config, pass PassphraseFunc, opts ...Option) (_ *Daemon, err error) {
	c := config{log: slog.Default(), shutdownTimeout: DefaultShutdownTimeout, heartbeat: defaultHeartbeat,
		followBuffer: defaultFollowBuffer, homeCheck: homeCheckInterval}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{home: h, cfg: cfg, c: c, log: c.log.With("component", "daemon"), errc: make(chan error, 2)}
	defer func() {
		if err != nil {
			if cerr := d.Close(); cerr != nil {
				d.log.Warn("cleaning up after a failed start", "err", cerr)
			}
		}
	}()

	if d.lock, err = lockHome(h); err != nil {
		return nil, err
	}
	token, err := loadToken(h)
	if err != nil {
		return nil, err
	}
	if d.ks, err = loadKeystore(h, pass); err != nil {
		return nil, err
	}
	if d.ks.Unencrypted {
		d.log.Warn("the keystore is NOT encrypted: anyone who can read it can impersonate this profile", "path", h.Path(FileKeystore))
	}

	var reg *prometheus.Registry
	if cfg.MetricsAddr != "" {
		reg = newRegistry()
		d.metrics = newMetrics(reg)
	} else {
		d.metrics = newMetrics(nil)
	}

	np := node.DefaultParams(cfg.Role)
	np.ListenAddrs = cfg.ListenAddrs
	np.Bootstrap = cfg.Bootstrap
	np.HostPolicy = cfg.HostPolicy
	np.Allowlist = cfg.Allowlist
	cfg.applyTo(&np)
	// Used only when the role keeps a stable peer ID (hosts, bots);
	// members draw a fresh transport key at every start.
	np.PeerKeyFile = h.Path(FilePeerKey)
	if c.nodeParams != nil {
		c.nodeParams(&np)
	}
	if len(np.Allowlist) > 0 && np.HostPolicy != node.PolicyAllowlist {
		d.log.Warn("allowlist entries are ignored unless the host policy is allowlist", "policy", np.HostPolicy)
	}
	for _, dir := range []string{DirData, DirMember} {
		if err := os.MkdirAll(h.Path(dir), 0o700); err != nil {
			return nil, fmt.Errorf("daemon: data directory: %w", err)
		}
	}
	// The profile identity makes the node a member (groups, messages);
	// its private database is encrypted at rest with the keystore's
	// DataKey.
	nopts := []node.Option{
		node.WithDataDir(h.Path(DirData)),
		node.WithLogger(c.log),
		node.WithIdentity(d.ks.Identity, cfg.Nick),
		node.WithMemberDB(h.Path(DirMember), d.ks.DataKey[:]),
	}
	if reg != nil {
		nopts = append(nopts, node.WithRegisterer(reg))
	}
	if d.node, err = node.New(ctx, np, nopts...); err != nil {
		return nil, fmt.Errorf("daemon: start node: %w", err)
	}
	d.started = time.Now()

	ln, err := listenAPI(cfg.APIAddr, d.log)
	if err != nil {
		return nil, err
	}
	d.apiAddr = api.FormatAddress(ln.Addr())
	if d.api, err = newServer(d, token, cfg.UIAddr != UIOff); err != nil {
		ln.Close()
		return nil, err
	}
	go d.serve("api", d.api.http, ln)
	if err := d.startUI(cfg, ln); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(h.Path(FileAPIAddr), []byte(d.apiAddr+"\n"), 0o600); err != nil {
		return nil, err
	}
	d.wroteAddr = true

	if reg != nil {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("daemon: metrics listener %s: %w", cfg.MetricsAddr, err)
		}
		d.metricsAddr = mln.Addr().String()
		d.metricsSrv = newHTTPServer(metricsHandler(reg), c.log)
		go d.serve("metrics", d.metricsSrv, mln)
	}
	d.watchHome()
	d.log.Info("daemon started", "home", h.Dir(), "api", d.apiAddr, "ui", d.uiBase, "metrics", d.metricsAddr,
		"peer", d.node.ID(), "role", cfg.Role, "policy", np.HostPolicy, "version", Version())
	return d, nil
}

// Run starts a daemon, serves until ctx ends (the CLI cancels it on
// SIGINT or SIGTERM) or a server fails, and shuts it down. It returns nil
// after a clean shutdown.
func Run(ctx context.Context, h *Home, cfg Config, pass PassphraseFunc, opts ...Option) error {
	d, err := Start(ctx, h, cfg, pass, opts...)
	if err != nil {
		return err
	}
	err = d.Wait(ctx)
	return errors.Join(err, d.Close())
}

// Wait blocks until ctx ends (nil) or one of the daemon's servers fails
// (that error). It does not close the daemon.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
		return nil
	case err := <-d.errc:
		return err
	}
}

// APIAddr is the address the control API listens on, as in api.addr.
func (d *Daemon) APIAddr() string { return d.apiAddr }

// UIAddr is the address the web app is served on ("" if off).
func (d *Daemon) UIAddr() string { return d.uiAddr }

// UIURL is the web app's URL ("" if off); log in with a URL from
// NewLoginURL.
func (d *Daemon) UIURL() string { return d.uiBase }

// NewLoginURL makes a one-time login URL for the web app.
func (d *Daemon) NewLoginURL() (api.LoginURL, error) {
	if d.api == nil || d.api.ui == nil {
		return api.LoginURL{}, fmt.Errorf("%w: the web app is off", ErrConfig)
	}
	return d.api.ui.NewLogin(d.uiBase), nil
}

// MetricsAddr is the address metrics are served on ("" if off).
func (d *Daemon) MetricsAddr() string { return d.metricsAddr }

// Node is the running node.
func (d *Daemon) Node() *node.Node { return d.node }

// Fingerprint is the profile identity's fingerprint.
func (d *Daemon) Fingerprint() string { return d.ks.Identity.Fingerprint() }

// Close stops accepting API calls and removes api.addr, waits (up to the
// shutdown timeout) for calls in progress, ends streams, closes the node
// and releases the home.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.close() })
	return d.closeErr
}

func (d *Daemon) close() error {
	var errs []error
	if d.stopWatch != nil {
		close(d.stopWatch)
	}
	if d.wroteAddr {
		if err := os.Remove(d.home.Path(FileAPIAddr)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("daemon: remove api.addr: %w", err))
		}
	}
	// The whole shutdown fits the timeout: API calls in progress get up
	// to half of it, the node the rest.
	deadline := time.Now().Add(d.c.shutdownTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(-d.c.shutdownTimeout/2))
	defer cancel()
	for _, srv := range []*http.Server{d.apiServer(), d.uiSrv, d.metricsSrv} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(ctx); err != nil {
			// Calls still running after the timeout are cut off.
			d.log.Warn("API calls still running at shutdown were cut off", "err", err)
			srv.Close()
		}
	}
	stuck := false
	if d.node != nil {
		done := make(chan error, 1)
		go func() { done <- d.node.Close() }()
		t := time.NewTimer(time.Until(deadline))
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, fmt.Errorf("daemon: close node: %w", err))
			}
		case <-t.C:
			// A store that cannot write (its directory deleted, a failing
			// disk) may retry for ever. Leave it: what was acknowledged is
			// already durable, and the process is about to exit. The home
			// stays locked until it does.
			stuck = true
			d.log.Error("the node did not stop within the shutdown timeout; giving up on it", "timeout", d.c.shutdownTimeout)
			errs = append(errs, fmt.Errorf("%w: the node did not stop within %v (see the log)", ErrShutdownTimeout, d.c.shutdownTimeout))
		}
		t.Stop()
	}
	if d.lock != nil && !stuck {
		if err := d.lock.release(); err != nil {
			errs = append(errs, fmt.Errorf("daemon: release home lock: %w", err))
		}
	}
	if len(errs) == 0 && d.node != nil {
		d.log.Info("daemon stopped")
	}
	return errors.Join(errs...)
}

// homeCheckInterval is how often a running daemon checks that its home
// still exists.
const homeCheckInterval = 2 * time.Second

// watchHome stops the daemon (through errc) when its home directory is
// deleted or replaced: a daemon whose home is gone can neither store nor
// be reached (api.addr went with it), and would otherwise run on unseen.
func (d *Daemon) watchHome() {
	fi, err := os.Stat(d.home.Dir())
	if err != nil {
		return
	}
	d.stopWatch = make(chan struct{})
	go func() {
		t := time.NewTicker(d.c.homeCheck)
		defer t.Stop()
		for {
			select {
			case <-d.stopWatch:
				return
			case <-t.C:
			}
			now, err := os.Stat(d.home.Dir())
			if err == nil && os.SameFile(fi, now) {
				continue
			}
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				d.log.Error("the home directory was removed under the daemon; stopping", "home", d.home.Dir())
				select {
				case d.errc <- fmt.Errorf("%w: %s", ErrHomeRemoved, d.home.Dir()):
				default:
				}
				return
			}
		}
	}()
}

func (d *Daemon) apiServer() *http.Server {
	if d.api == nil {
		return nil
	}
	return d.api.http
}

func (d *Daemon) serve(name string, srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		select {
		case d.errc <- fmt.Errorf("daemon: %s server: %w", name, err):
		default:
		}
	}
}

// loadToken reads api.token and refuses it if other users can read it.
func loadToken(h *Home) ([]byte, error) {
	fi, err := os.Stat(h.Path(FileToken))
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v (fix it with: chmod 600 %s)",
			ErrInsecureFile, h.Path(FileToken), fi.Mode().Perm(), h.Path(FileToken))
	}
	tok, err := h.Token()
	if err != nil {
		return nil, err
	}
	return []byte(tok), nil
}

// loadKeystore opens the profile keystore, asking for the passphrase only
// if the file is encrypted (LoadKeystore checks the file's structure and
// reports ErrPassphraseRequired before any key derivation).
func loadKeystore(h *Home, pass PassphraseFunc) (*keymgmt.Keystore, error) {
	path := h.Path(FileKeystore)
	ks, err := keymgmt.LoadKeystore(path, nil)
	if !errors.Is(err, keymgmt.ErrPassphraseRequired) {
		return ks, err
	}
	if pass == nil {
		return nil, err
	}
	pw, err := pass()
	if err != nil {
		return nil, err
	}
	defer clear(pw)
	return keymgmt.LoadKeystore(path, pw)
}

// listenAPI binds the control API address. A stale Unix socket left by a
// crashed daemon is removed; one that still answers is not.
func listenAPI(addr string, log *slog.Logger) (net.Listener, error) {
	network, address, err := api.ParseAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if network == "unix" {
		if err := clearStaleSocket(address); err != nil {
			return nil, err
		}
	} else if host, _, _ := net.SplitHostPort(address); host != "localhost" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			log.Warn("the control API listens beyond this machine; anyone who has the token and can reach it controls the node", "addr", addr)
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w: %s (pick another with --api)", ErrAddrInUse, addr)
		}
		return nil, fmt.Errorf("daemon: API listener %s: %w", addr, err)
	}
	if network == "unix" {
		// Only the owner may connect (the token is checked as well).
		if err := os.Chmod(address, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("daemon: API socket permissions: %w", err)
		}
	}
	return ln, nil
}

func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon: API socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%w: %s exists and is not a socket", ErrAddrInUse, path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%w: another process answers on %s", ErrAddrInUse, path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("daemon: remove stale API socket %s: %w", path, err)
	}
	return nil
}
