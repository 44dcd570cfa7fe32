package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/api"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// cheapKDF keeps Argon2id fast in tests; never use it for real keystores.
var cheapKDF = keymgmt.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

const testPass = "correct horse battery staple"

func passphrase(s string) PassphraseFunc {
	return func() ([]byte, error) { return []byte(s), nil }
}

// initHome creates an encrypted member home in a temporary directory.
func initHome(t testing.TB, role node.Role) *InitResult {
	t.Helper()
	p := DefaultInitParams()
	p.Role = role
	p.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	p.KDF = cheapKDF
	res, err := Init(filepath.Join(t.TempDir(), "home"), p, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// inMemory runs the node's store in memory (the on-disk store is covered
// by the CLI tests).
func inMemory(p *node.Params) { p.Store = store.InMemoryParams() }

// startDaemon starts a daemon on h and closes it at cleanup.
func startDaemon(t testing.TB, h *Home, edit func(*Config), opts ...Option) *Daemon {
	t.Helper()
	cfg, err := h.Config()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	opts = append([]Option{WithLogger(quiet), WithNodeParams(inMemory)}, opts...)
	d, err := Start(context.Background(), h, cfg, passphrase(testPass), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func client(t testing.TB, h *Home) *api.Client {
	t.Helper()
	c, err := h.Client(api.WithTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func leakCheck(t *testing.T) {
	t.Helper()
	// Registered first so it runs after every other cleanup.
	t.Cleanup(func() {
		goleak.VerifyNone(t,
			goleak.IgnoreCurrent(),
			goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
			goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		)
	})
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInit(t *testing.T) {
	res := initHome(t, node.RoleHost)
	h := res.Home
	if got := mode(t, h.Dir()); got != 0o700 {
		t.Errorf("home mode %v", got)
	}
	for _, f := range []string{FileConfig, FileToken, FileKeystore} {
		if got := mode(t, h.Path(f)); got != 0o600 {
			t.Errorf("%s mode %v", f, got)
		}
	}
	cfg, err := h.Config()
	if err != nil {
		t.Fatal(err)
	}
	// A host serves the groups that name it (open); see DefaultConfig.
	if cfg.Role != node.RoleHost || cfg.APIAddr != DefaultAPIAddr || cfg.HostPolicy != node.PolicyOpen ||
		len(cfg.ListenAddrs) != 1 || cfg.ListenAddrs[0] != "/ip4/127.0.0.1/tcp/0" {
		t.Errorf("config %+v", cfg)
	}
	if _, err := h.Token(); err != nil {
		t.Error(err)
	}
	ks, err := keymgmt.LoadKeystore(h.Path(FileKeystore), []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	if ks.Identity.Fingerprint() != res.Fingerprint || ks.Unencrypted {
		t.Errorf("keystore fingerprint %s, init said %s", ks.Identity.Fingerprint(), res.Fingerprint)
	}
	if _, err := OpenHome(h.Dir()); err != nil {
		t.Error(err)
	}

	// Never overwrites: neither a home nor a non-empty directory.
	before, _ := os.ReadFile(h.Path(FileKeystore))
	p := DefaultInitParams()
	p.KDF = cheapKDF
	if _, err := Init(h.Dir(), p, []byte(testPass)); !errors.Is(err, ErrHomeExists) {
		t.Errorf("init over a home: %v", err)
	}
	after, _ := os.ReadFile(h.Path(FileKeystore))
	if string(before) != string(after) {
		t.Error("init over a home changed its keystore")
	}
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o644)
	if _, err := Init(full, p, []byte(testPass)); !errors.Is(err, ErrHomeExists) {
		t.Errorf("init over a non-empty directory: %v", err)
	}

	// An existing empty directory is accepted (and made private).
	empty := t.TempDir()
	os.Chmod(empty, 0o755)
	p.Unencrypted = true
	p.Suite = keymgmt.SuitePQ
	res2, err := Init(empty, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mode(t, empty); got != 0o700 {
		t.Errorf("existing empty home left with mode %v", got)
	}
	ks, err = keymgmt.LoadKeystore(res2.Home.Path(FileKeystore), nil)
	if err != nil || !ks.Unencrypted || ks.Identity.Suite() != keymgmt.SuitePQ {
		t.Errorf("unencrypted PQ keystore: %v", err)
	}
}

func TestInitRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*InitParams)
		pass string
		want error
	}{
		{"no passphrase", func(*InitParams) {}, "", keymgmt.ErrPassphraseRequired},
		{"short passphrase", func(*InitParams) {}, "abc", keymgmt.ErrWeakPassphrase},
		{"passphrase for unencrypted", func(p *InitParams) { p.Unencrypted = true }, testPass, ErrConfig},
		{"bad role", func(p *InitParams) { p.Role = "king" }, testPass, ErrConfig},
		{"bad listen", func(p *InitParams) { p.ListenAddrs = []string{"tcp://0.0.0.0:1"} }, testPass, ErrConfig},
		{"long nick", func(p *InitParams) { p.Nick = strings.Repeat("n", keymgmt.MaxNickSize+1) }, testPass, ErrConfig},
		{"control nick", func(p *InitParams) { p.Nick = "a\nb" }, testPass, ErrConfig},
		{"bad suite", func(p *InitParams) { p.Suite = 9 }, testPass, ErrConfig},
		{"bad kdf", func(p *InitParams) { p.KDF = keymgmt.KDFParams{Time: 1, MemoryKiB: 1, Threads: 1} }, testPass, keymgmt.ErrInvalidParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultInitParams()
			p.KDF = cheapKDF
			tc.edit(&p)
			dir := filepath.Join(t.TempDir(), "home")
			if _, err := Init(dir, p, []byte(tc.pass)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("failed init left %s behind (%v)", dir, err)
			}
		})
	}
}

func TestOpenHomeNotInitialised(t *testing.T) {
	if _, err := OpenHome(t.TempDir()); !errors.Is(err, ErrNotInitialized) || !strings.Contains(err.Error(), "meshnode init") {
		t.Fatalf("got %v", err)
	}
}

// rawGet calls the API without the typed client, to see the wire.
func rawGet(t *testing.T, d *Daemon, method, path, auth string) (int, http.Header, api.Error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.APIAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	if resp.StatusCode >= 300 {
		if ct := resp.Header.Get("Content-Type"); ct != api.ContentTypeJSON {
			t.Errorf("%s %s: error content type %q", method, path, ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Errorf("%s %s: error body is not JSON: %v", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header, e
}

func TestAPIAuthAndErrors(t *testing.T) {
	res := initHome(t, node.RoleMember)
	d := startDaemon(t, res.Home, nil)
	tok, err := res.Home.Token()
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name, method, path, auth string
		status                   int
		code                     string
	}{
		{"no token", "GET", api.PathStatus, "", 401, api.CodeUnauthorized},
		{"wrong token", "GET", api.PathStatus, "Bearer " + wrong, 401, api.CodeUnauthorized},
		{"token prefix", "GET", api.PathStatus, "Bearer " + tok[:32], 401, api.CodeUnauthorized},
		{"not bearer", "GET", api.PathStatus, "Basic " + tok, 401, api.CodeUnauthorized},
		{"no token, unknown path", "GET", "/v1/nothing", "", 401, api.CodeUnauthorized},
		{"ok", "GET", api.PathStatus, "Bearer " + tok, 200, ""},
		{"ok, scheme in lower case", "GET", api.PathStatus, "bearer " + tok, 200, ""},
		{"token with a suffix", "GET", api.PathStatus, "Bearer " + tok + "0", 401, api.CodeUnauthorized},
		{"empty bearer", "GET", api.PathStatus, "Bearer ", 401, api.CodeUnauthorized},
		{"unknown path", "GET", "/v1/nothing", "Bearer " + tok, 404, api.CodeNotFound},
		{"old version", "GET", "/v0/status", "Bearer " + tok, 404, api.CodeNotFound},
		{"wrong method", "POST", api.PathStatus, "Bearer " + tok, 405, api.CodeMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, e := rawGet(t, d, tc.method, tc.path, tc.auth)
			if status != tc.status || e.Code != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, e.Code, e.Message, tc.status, tc.code)
			}
			if status == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if status == 405 && hdr.Get("Allow") != "GET" {
				t.Errorf("405 with Allow %q", hdr.Get("Allow"))
			}
		})
	}

	// The typed client maps them to sentinels.
	c, err := api.NewClient(d.APIAddr(), wrong)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Status(context.Background()); !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("client with a wrong token: %v", err)
	}
}

func TestStatusAndID(t *testing.T) {
	leakCheck(t)
	res := initHome(t, node.RoleMember)
	d := startDaemon(t, res.Home, func(c *Config) { c.HostPolicy = node.PolicyOpen })
	c := client(t, res.Home)
	ctx := context.Background()

	id, err := c.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := d.Node()
	if id.PeerID != n.ID().String() || id.Role != "member" || id.Fingerprint != res.Fingerprint || len(id.Addrs) == 0 ||
		n.Fingerprint() != res.Fingerprint {
		t.Fatalf("id %+v", id)
	}
	for _, a := range id.Addrs {
		if !strings.HasSuffix(a, "/p2p/"+id.PeerID) {
			t.Errorf("address %s is not a full multiaddr", a)
		}
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.PeerID != id.PeerID || st.Role != "member" || st.HostPolicy != "open" || st.Version != Version() ||
		st.HostedMailboxes != 0 || st.Store.Envelopes != 0 || st.ConnectedPeers != 0 || len(st.Addrs) != len(id.Addrs) {
		t.Fatalf("status %+v", st)
	}

	// Store an envelope: the counters follow.
	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	if err := n.HostMailbox(m); err != nil {
		t.Fatal(err)
	}
	env := tu.Envelope(t, k, 1000)
	if err := n.RelayMessageToGroup(ctx, m, env); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 5*time.Second, func() bool {
		st, err = c.Status(ctx)
		return err == nil && st.Store.Envelopes == 1
	}, "status shows the stored envelope")
	if st.HostedMailboxes != 1 || st.Store.Bytes < int64(env.Size()) {
		t.Fatalf("status after one envelope %+v", st)
	}
}

func TestAPIAddrFile(t *testing.T) {
	leakCheck(t)
	res := initHome(t, node.RoleMember)
	h := res.Home
	if _, err := h.Client(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("client before start: %v", err)
	}
	cfg, err := h.Config()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Start(context.Background(), h, cfg, passphrase(testPass), WithLogger(quiet), WithNodeParams(inMemory))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := h.APIAddr()
	if err != nil || addr != d.APIAddr() || strings.HasSuffix(addr, ":0") {
		t.Fatalf("api.addr %q (%v), daemon says %q", addr, err, d.APIAddr())
	}
	if got := mode(t, h.Path(FileAPIAddr)); got != 0o600 {
		t.Errorf("api.addr mode %v", got)
	}
	c := client(t, h)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A second daemon on the same home fails and leaves the first alone.
	_, err = Start(context.Background(), h, cfg, passphrase(testPass), WithLogger(quiet), WithNodeParams(inMemory))
	if !errors.Is(err, ErrAlreadyRunning) || !strings.Contains(err.Error(), "another meshnode daemon is running") {
		t.Fatalf("second daemon: %v", err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("first daemon after the second failed: %v", err)
	}

	c.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.Path(FileAPIAddr)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api.addr after close: %v", err)
	}
	if _, err := c.Status(context.Background()); !errors.Is(err, api.ErrDaemonNotRunning) {
		t.Fatalf("client after close: %v", err)
	}
	if _, err := h.Client(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("home client after close: %v", err)
	}
	// The home is free again.
	d2 := startDaemon(t, h, nil)
	if d2.Fingerprint() != res.Fingerprint {
		t.Error("fingerprint changed across restarts")
	}
}

// shortSocket returns a socket path short enough for sun_path (108 bytes),
// which t.TempDir paths can exceed.
func shortSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "api.sock")
}

func TestUnixSocket(t *testing.T) {
	res := initHome(t, node.RoleMember)
	sock := shortSocket(t)

	// A stale socket from a crashed daemon is replaced.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()

	cfg, err := res.Home.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIAddr = api.UnixPrefix + sock
	d, err := Start(context.Background(), res.Home, cfg, passphrase(testPass), WithLogger(quiet), WithNodeParams(inMemory))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := res.Home.APIAddr()
	if err != nil || addr != api.UnixPrefix+sock {
		t.Fatalf("api.addr %q, %v", addr, err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, %v", fi.Mode(), err)
	}
	c := client(t, res.Home)
	id, err := c.ID(context.Background())
	if err != nil || id.Fingerprint != res.Fingerprint {
		t.Fatalf("id over unix socket: %+v, %v", id, err)
	}

	// A live socket is not taken over.
	other := initHome(t, node.RoleMember)
	ocfg, _ := other.Home.Config()
	ocfg.APIAddr = api.UnixPrefix + sock
	if _, err := Start(context.Background(), other.Home, ocfg, passphrase(testPass), WithLogger(quiet), WithNodeParams(inMemory)); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("second daemon on a live socket: %v", err)
	}

	c.Close()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sock, res.Home.Path(FileAPIAddr)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after close: %v", p, err)
		}
	}
}

func TestWrongPassphrase(t *testing.T) {
	res := initHome(t, node.RoleMember)
	cfg, _ := res.Home.Config()
	_, err := Start(context.Background(), res.Home, cfg, passphrase("wrong"), WithLogger(quiet), WithNodeParams(inMemory))
	if !errors.Is(err, keymgmt.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	_, err = Start(context.Background(), res.Home, cfg, func() ([]byte, error) { return nil, errors.New("no terminal") }, WithLogger(quiet))
	if err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Fatalf("failing passphrase source: %v", err)
	}
	if _, err := os.Stat(res.Home.Path(FileAPIAddr)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed start left api.addr")
	}
	// The failed starts released the home.
	startDaemon(t, res.Home, nil)
}

func TestInsecureToken(t *testing.T) {
	res := initHome(t, node.RoleMember)
	if err := os.Chmod(res.Home.Path(FileToken), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := res.Home.Config()
	_, err := Start(context.Background(), res.Home, cfg, passphrase(testPass), WithLogger(quiet), WithNodeParams(inMemory))
	if !errors.Is(err, ErrInsecureFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token: %v", err)
	}
}

func TestArrivalsStream(t *testing.T) {
	leakCheck(t)
	res := initHome(t, node.RoleMember)
	cfg, _ := res.Home.Config()
	d, err := Start(context.Background(), res.Home, cfg, passphrase(testPass), WithLogger(quiet), WithNodeParams(inMemory),
		func(c *config) error { c.heartbeat = 20 * time.Millisecond; return nil })
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, res.Home)
	s, err := c.Arrivals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	k := tu.WriteKey(t)
	m := tu.Mailbox(k)
	if err := d.Node().HostMailbox(m); err != nil {
		t.Fatal(err)
	}
	env := tu.Envelope(t, k, 1000)
	if err := d.Node().RelayMessageToGroup(context.Background(), m, env); err != nil {
		t.Fatal(err)
	}
	a, err := s.Next() // heartbeats in between are skipped
	if err != nil {
		t.Fatal(err)
	}
	if a.Mailbox != m.String() || a.EnvelopeID != env.ID().String() || a.Size != env.Size() || a.From != d.Node().ID().String() {
		t.Fatalf("arrival %+v", a)
	}

	// Shutdown ends the stream at once instead of waiting for its timeout.
	done := make(chan error, 1)
	go func() { _, err := s.Next(); done <- err }()
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("stream went on after shutdown")
	}
	if time.Since(start) >= DefaultShutdownTimeout {
		t.Fatal("shutdown waited for the stream's timeout")
	}
	c.Close()
}

func TestMetricsEndpoint(t *testing.T) {
	res := initHome(t, node.RoleMember)
	d := startDaemon(t, res.Home, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
	c := client(t, res.Home)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"go_goroutines", "process_open_fds", "meshnode_build_info{version=",
		"meshnode_node_envelopes_stored_total", `meshnode_api_requests_total{code="200"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Without --metrics nothing is served.
	other := initHome(t, node.RoleMember)
	if d := startDaemon(t, other.Home, nil); d.MetricsAddr() != "" {
		t.Errorf("metrics served at %s without being asked", d.MetricsAddr())
	}
}

func TestHostKeepsPeerID(t *testing.T) {
	res := initHome(t, node.RoleHost)
	d := startDaemon(t, res.Home, nil)
	first := d.Node().ID()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if mode(t, res.Home.Path(FilePeerKey)) != 0o600 {
		t.Error("peer.key is not 0600")
	}
	if d2 := startDaemon(t, res.Home, nil); d2.Node().ID() != first {
		t.Errorf("host peer ID changed across restarts: %s, then %s", first, d2.Node().ID())
	}

	member := initHome(t, node.RoleMember)
	d = startDaemon(t, member.Home, nil)
	first = d.Node().ID()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d2 := startDaemon(t, member.Home, nil); d2.Node().ID() == first {
		t.Error("member kept its peer ID across restarts")
	}
	if _, err := os.Stat(member.Home.Path(FilePeerKey)); !errors.Is(err, os.ErrNotExist) {
		t.Error("member wrote a peer key")
	}
}
