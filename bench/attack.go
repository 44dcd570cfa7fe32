package bench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// Attack names (AttackParams.Attacks).
const (
	AttackSlowloris = "slowloris"
	AttackMailboxes = "mailboxes"
	AttackStoreFull = "store-full"
	AttackFlood     = "flood"
)

// AllAttacks are the four attacks of issue 14, in the order they run.
var AllAttacks = []string{AttackSlowloris, AttackMailboxes, AttackStoreFull, AttackFlood}

// Goals of the attack benchmark (issue 14).
const (
	GoalCatchUpRatio   = 0.9
	GoalSendRatio      = 0.99
	GoalRSSMiB         = 300
	GoalGoroutines     = 5000
	GoalRestartSeconds = 10
)

// Networks of the attack benchmark on loopback: members come from
// 127.0.1.0/24 and attackers from 127.0.2.0/24 (one address per peer ID),
// and the host counts loopback like any network (not exempt).
const (
	memberNet   = "127.0.1."
	attackerNet = "127.0.2."
)

// AttackParams describe the attack benchmark. Start from
// DefaultAttackParams.
type AttackParams struct {
	// Mailboxes is the number of mailboxes the host's store holds when it
	// starts (one 256-byte envelope each, two days old).
	Mailboxes int
	// Members is the number of members, each with an established mailbox
	// holding History envelopes of 1 KiB; during every attack each catches
	// up and sends over and over.
	Members int
	History int
	// Duration is how long each attack lasts.
	Duration time.Duration
	// Attacks are the attacks to run, in order (AllAttacks).
	Attacks []string
	// GlobalQuota is the host store's global quota during the benchmark
	// (store-full needs one an attacker can reach in Duration).
	GlobalQuota int64
	// AdmissionOff runs the host without issue 14's admission limits
	// that can be turned off (for comparison; the goals will not be met).
	AdmissionOff bool
	// Dir is where the host's store goes (as IngestParams.Dir).
	Dir string
	// Executable is the program started as the host process (default:
	// this one, os.Executable); it must call RunChild when EnvChildRole
	// is set.
	Executable string
}

// DefaultAttackParams: 100,000 mailboxes, 8 members with 50 envelopes
// each, 20 s per attack, a 64 MiB store quota.
func DefaultAttackParams() AttackParams {
	return AttackParams{
		Mailboxes: 100_000, Members: 8, History: 50, Duration: 20 * time.Second,
		Attacks: append([]string(nil), AllAttacks...), GlobalQuota: 64 << 20,
	}
}

func (p AttackParams) validate() error {
	switch {
	case p.Mailboxes < 0 || p.Mailboxes > 1_000_000:
		return fmt.Errorf("%w: mailboxes %d outside [0, 1000000]", ErrInvalidParams, p.Mailboxes)
	case p.Members < 1 || p.Members > 64:
		return fmt.Errorf("%w: members %d outside [1, 64]", ErrInvalidParams, p.Members)
	case p.History < 0 || p.History > 10_000:
		return fmt.Errorf("%w: history %d outside [0, 10000]", ErrInvalidParams, p.History)
	case p.Duration < time.Second || p.Duration > time.Hour:
		return fmt.Errorf("%w: duration %v outside [1s, 1h]", ErrInvalidParams, p.Duration)
	case p.GlobalQuota < 0:
		return fmt.Errorf("%w: negative quota", ErrInvalidParams)
	}
	for _, a := range p.Attacks {
		known := false
		for _, k := range AllAttacks {
			known = known || a == k
		}
		if !known {
			return fmt.Errorf("%w: unknown attack %q (want %v)", ErrInvalidParams, a, AllAttacks)
		}
	}
	return nil
}

// AttackResult is the outcome of Attack.
type AttackResult struct {
	Workload     string  `json:"workload"` // "attack"
	Mailboxes    int     `json:"mailboxes"`
	Members      int     `json:"members"`
	History      int     `json:"history"`
	AttackSecs   float64 `json:"attack_seconds"`
	AdmissionOff bool    `json:"admission_off,omitempty"`
	// Restart is the host's first start, on a store already holding
	// Mailboxes mailboxes; RestartAfter its start after the attacks.
	Restart      RestartResult  `json:"restart"`
	RestartAfter *RestartResult `json:"restart_after_attacks,omitempty"`
	Attacks      []AttackRun    `json:"attacks"`
	// Peaks over the whole benchmark, of the host process alone.
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	PeakGoroutines int     `json:"peak_goroutines"`
	// Lost counts members' acknowledged envelopes the host no longer
	// serves at the end (must be 0).
	Lost           int         `json:"lost"`
	Goals          AttackGoals `json:"goals"`
	Met            bool        `json:"met"`
	PrepareSeconds float64     `json:"prepare_seconds"`
	Machine        Machine     `json:"machine"`
	Dir            string      `json:"dir,omitempty"`
}

// AttackGoals are the goals, and whether each was met.
type AttackGoals struct {
	CatchUpRatio   float64 `json:"catch_up_ratio"`
	SendRatio      float64 `json:"send_ratio"`
	RSSMiB         float64 `json:"rss_mib"`
	Goroutines     int     `json:"goroutines"`
	RestartSeconds float64 `json:"restart_seconds"`
	// Per goal: met or not.
	CatchUpMet    bool `json:"catch_up_met"`
	SendMet       bool `json:"send_met"`
	RSSMet        bool `json:"rss_met"`
	GoroutinesMet bool `json:"goroutines_met"`
	RestartMet    bool `json:"restart_met"`
}

// RestartResult is one start of the host process.
type RestartResult struct {
	// Seconds from starting the process until its node serves;
	// NodeSeconds the part in node.New (store open, hosting every stored
	// mailbox).
	Seconds     float64 `json:"seconds"`
	NodeSeconds float64 `json:"node_seconds"`
	RSSMiB      float64 `json:"rss_mib"`
	Goroutines  int     `json:"goroutines"`
	Hosted      int     `json:"hosted"`
	Joined      int     `json:"joined_topics"`
}

// OpCount counts members' operations during an attack.
type OpCount struct {
	OK       int            `json:"ok"`
	Attempts int            `json:"attempts"`
	Ratio    float64        `json:"ratio"`
	Errors   map[string]int `json:"errors,omitempty"`
	// Example is the first error of each kind.
	Example map[string]string `json:"error_examples,omitempty"`
}

// AttackRun is one attack.
type AttackRun struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Seconds     float64 `json:"seconds"`
	CatchUp     OpCount `json:"catch_up"`
	Send        OpCount `json:"send"`
	// The host process during the attack.
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	PeakGoroutines int     `json:"peak_goroutines"`
	PeakJoined     int     `json:"peak_joined_topics"`
	HostedBefore   int     `json:"hosted_before"`
	HostedAfter    int     `json:"hosted_after"`
	StoreMiBAfter  float64 `json:"store_mib_after"`
	// Attacker is what the attackers did and got.
	Attacker AttackerStats `json:"attacker"`
	// Refusals are the host's refusals during the attack, by reason.
	Refusals map[string]uint64 `json:"refusals"`
	// RecoverySeconds: from the attack's end until a member's catch-up
	// and send both succeed; PressureClearedSeconds until the host has
	// refused nothing within its pressure window (5 s here): -1 if not
	// within a minute. StoreNewRefused: the store is left past the share
	// open to new mailboxes (it refuses new ones, and reports pressure,
	// until retention frees room).
	RecoverySeconds        float64 `json:"recovery_seconds"`
	PressureClearedSeconds float64 `json:"pressure_cleared_seconds"`
	StoreNewRefused        bool    `json:"store_new_refused"`
}

// AttackerStats is the attackers' side of an attack.
type AttackerStats struct {
	Peers    int               `json:"peers"`
	Streams  int64             `json:"streams_opened,omitempty"`
	Sent     int64             `json:"sent,omitempty"`
	Accepted int64             `json:"accepted,omitempty"`
	Refused  map[string]int    `json:"refused,omitempty"`
	Example  map[string]string `json:"refusal_examples,omitempty"`
}

// Attack runs each attack of issue 14 against a real host (a process of
// its own, over TCP loopback) while members keep catching up and
// sending, and reports how the members fared and what the host cost.
// See the package doc.
func Attack(ctx context.Context, p AttackParams) (*AttackResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	exe := p.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: attack: %w", err)
		}
	}
	dir, cleanup, err := workdir(p.Dir, "attack-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	res := &AttackResult{
		Workload: "attack", Mailboxes: p.Mailboxes, Members: p.Members, History: p.History,
		AttackSecs: p.Duration.Seconds(), AdmissionOff: p.AdmissionOff, Machine: machine(),
	}
	if p.Dir != "" {
		res.Dir = dir
	}

	prep := time.Now()
	keys, err := seedHost(ctx, filepath.Join(dir, "host"), p)
	if err != nil {
		return nil, err
	}
	res.PrepareSeconds = time.Since(prep).Seconds()

	cfg := attackHostConfig{
		Dir: filepath.Join(dir, "host"), Listen: "/ip4/127.0.0.1/tcp/0", GlobalQuota: p.GlobalQuota,
		PressureWindow: 5 * time.Second, SampleInterval: 100 * time.Millisecond, AdmissionOff: p.AdmissionOff,
	}
	hp, err := startHostProcess(ctx, exe, cfg)
	if err != nil {
		return nil, err
	}
	defer hp.stop()
	res.Restart = hp.restart

	members := make([]*attackMember, p.Members)
	for i := range members {
		if members[i], err = newAttackMember(fmt.Sprintf("%s%d", memberNet, i+1), hp, keys[i], p.History); err != nil {
			return nil, err
		}
		defer members[i].close()
	}
	// The members work before any attack: the host serves them.
	for _, m := range members {
		if err := m.catchUp(ctx); err != nil {
			return nil, fmt.Errorf("bench: attack: a member's catch-up before any attack: %w", err)
		}
		if err := m.send(ctx); err != nil {
			return nil, fmt.Errorf("bench: attack: a member's send before any attack: %w", err)
		}
	}

	for _, name := range p.Attacks {
		run, err := runAttack(ctx, name, p, hp, members)
		if err != nil {
			return nil, err
		}
		res.Attacks = append(res.Attacks, *run)
	}
	res.PeakRSSMiB, res.PeakGoroutines = mib(hp.peakRSS.Load()), int(hp.peakGoroutines.Load())

	// Restart after the attacks: everything the attackers left is on disk.
	for _, m := range members {
		m.close()
	}
	if err := hp.stop(); err != nil {
		return nil, err
	}
	hp2, err := startHostProcess(ctx, exe, cfg)
	if err != nil {
		return nil, err
	}
	defer hp2.stop()
	after := hp2.restart
	res.RestartAfter = &after
	for i, m := range members {
		if members[i], err = newAttackMember(fmt.Sprintf("%s%d", memberNet, i+1), hp2, m.k, 0); err != nil {
			return nil, err
		}
		members[i].acked = m.acked
		defer members[i].close()
		lost, err := members[i].lost(ctx)
		if err != nil {
			return nil, err
		}
		res.Lost += lost
	}
	res.PeakRSSMiB = max(res.PeakRSSMiB, mib(hp2.peakRSS.Load()))
	res.PeakGoroutines = max(res.PeakGoroutines, int(hp2.peakGoroutines.Load()))
	res.Goals = goals(res)
	g := res.Goals
	res.Met = g.CatchUpMet && g.SendMet && g.RSSMet && g.GoroutinesMet && g.RestartMet && res.Lost == 0
	if res.Lost > 0 {
		return res, fmt.Errorf("%w: %d acknowledged member envelopes lost", ErrMismatch, res.Lost)
	}
	return res, nil
}

func goals(r *AttackResult) AttackGoals {
	g := AttackGoals{CatchUpRatio: GoalCatchUpRatio, SendRatio: GoalSendRatio, RSSMiB: GoalRSSMiB,
		Goroutines: GoalGoroutines, RestartSeconds: GoalRestartSeconds}
	g.CatchUpMet, g.SendMet = true, true
	for _, a := range r.Attacks {
		g.CatchUpMet = g.CatchUpMet && a.CatchUp.Ratio >= GoalCatchUpRatio
		g.SendMet = g.SendMet && a.Send.Ratio >= GoalSendRatio
	}
	g.RSSMet = r.PeakRSSMiB <= GoalRSSMiB
	g.GoroutinesMet = r.PeakGoroutines <= GoalGoroutines
	g.RestartMet = r.Restart.Seconds <= GoalRestartSeconds && (r.RestartAfter == nil || r.RestartAfter.Seconds <= GoalRestartSeconds)
	return g
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// seedHost fills the host's store: Mailboxes mailboxes of one 256-byte
// envelope and the members' established mailboxes, all stored two days
// ago. It returns the members' write keys.
func seedHost(ctx context.Context, dir string, p AttackParams) ([]ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	sp := attackHostParams(attackHostConfig{}).Store
	sp.GlobalQuotaBytes, sp.Admission = 0, store.AdmissionParams{}
	past := time.Now().Add(-48 * time.Hour)
	st, err := store.Open(dir, sp, store.WithLogger(quiet), store.WithClock(func() time.Time { return past }))
	if err != nil {
		return nil, fmt.Errorf("bench: seed the host's store: %w", err)
	}
	defer st.Close()
	keys := make([]ed25519.PrivateKey, p.Members)
	var envs []*envelope.Envelope
	for i := range keys {
		if keys[i], err = writeKey(); err != nil {
			return nil, err
		}
		e, err := makeEnvelopes(keys[i], p.History, 1024)
		if err != nil {
			return nil, err
		}
		envs = append(envs, e...)
	}
	// The other mailboxes: a key and an envelope each, on all cores,
	// stored as they are made (group commit from 64 writers).
	const writers = 64
	work := make(chan *envelope.Envelope, 1024)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				if _, err := st.Put(ctx, e); err != nil {
					select {
					case errc <- fmt.Errorf("bench: seed the host's store: %w", err):
					default:
					}
				}
			}
		}()
	}
	for _, e := range envs {
		work <- e
	}
	err = parallel(p.Mailboxes, func(int) error {
		k, err := writeKey()
		if err != nil {
			return err
		}
		e, err := makeEnvelope(k, 256)
		if err != nil {
			return err
		}
		select {
		case work <- e:
		case err := <-errc:
			return err
		}
		return nil
	})
	close(work)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if got := st.Usage().Mailboxes; got != int64(p.Mailboxes+p.Members) {
		return nil, fmt.Errorf("%w: seeded %d mailboxes, want %d", ErrMismatch, got, p.Mailboxes+p.Members)
	}
	return keys, st.Close()
}

// makeEnvelope seals one envelope of size bytes (random "ciphertext")
// under k.
func makeEnvelope(k ed25519.PrivateKey, size int) (*envelope.Envelope, error) {
	buf := make([]byte, envelope.NonceSize+size-envelope.Overhead)
	if _, err := crand.Read(buf); err != nil {
		return nil, err
	}
	e, err := envelope.Seal(k, buf[:envelope.NonceSize], buf[envelope.NonceSize:], 0)
	if err != nil {
		return nil, fmt.Errorf("bench: seal: %w", err)
	}
	return e, nil
}

// hostProcess is the host running in a process of its own.
type hostProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	id      peer.ID
	addrs   []ma.Multiaddr
	restart RestartResult

	mu     sync.Mutex
	last   hostReport
	closed chan struct{}
	err    error

	peakRSS, peakGoroutines, peakJoined atomic.Int64
	windowRSS, windowGor                atomic.Int64
	stopOnce                            sync.Once
}

// startHostProcess starts the host process and waits for it to serve.
func startHostProcess(ctx context.Context, exe string, cfg attackHostConfig) (*hostProcess, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), EnvChildRole+"="+childAttackHost)
	cmd.Stderr = io.Discard
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	hp := &hostProcess{cmd: cmd, stdin: stdin, closed: make(chan struct{})}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the host process %s: %w", exe, err)
	}
	line, _ := json.Marshal(cfg)
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("bench: configure the host process: %w", err)
	}
	ready := make(chan hostReport, 1)
	go hp.read(stdout, ready)
	select {
	case r := <-ready:
		if r.Kind != "ready" {
			_ = hp.stop()
			return nil, fmt.Errorf("bench: the host process did not start: %s", r.Error)
		}
		hp.restart = RestartResult{
			Seconds: time.Since(start).Seconds(), NodeSeconds: r.NodeStartSeconds,
			RSSMiB: mib(r.RSSBytes), Goroutines: r.Goroutines, Hosted: r.Hosted, Joined: r.Joined,
		}
		if hp.id, err = peer.Decode(r.Peer); err != nil {
			_ = hp.stop()
			return nil, fmt.Errorf("bench: host process: %w", err)
		}
		for _, a := range r.Addrs {
			if m, err := ma.NewMultiaddr(a); err == nil {
				hp.addrs = append(hp.addrs, m)
			}
		}
	case <-hp.closed:
		_ = hp.stop()
		return nil, fmt.Errorf("bench: the host process ended before it served: %v", hp.err)
	case <-ctx.Done():
		_ = hp.stop()
		return nil, ctx.Err()
	case <-time.After(5 * time.Minute):
		_ = hp.stop()
		return nil, errors.New("bench: the host process did not start within 5 minutes")
	}
	return hp, nil
}

// read takes the host's reports until its stdout ends.
func (hp *hostProcess) read(r io.Reader, ready chan<- hostReport) {
	defer close(hp.closed)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	first := true
	for sc.Scan() {
		var rep hostReport
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			continue
		}
		hp.mu.Lock()
		hp.last = rep
		if rep.Kind == "error" {
			hp.err = errors.New(rep.Error)
		}
		hp.mu.Unlock()
		peakRSS := max(rep.RSSBytes, rep.PeakRSSBytes)
		raise(&hp.peakRSS, peakRSS)
		raise(&hp.peakGoroutines, int64(rep.Goroutines))
		raise(&hp.peakJoined, int64(rep.Joined))
		raise(&hp.windowRSS, rep.RSSBytes)
		raise(&hp.windowGor, int64(rep.Goroutines))
		if first {
			first = false
			ready <- rep
		}
	}
	if first {
		ready <- hostReport{Kind: "error", Error: "no report"}
	}
}

func raise(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// latest is the host's last report.
func (hp *hostProcess) latest() hostReport {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return hp.last
}

// window starts a new window of peaks (RSS now, goroutines) and returns
// a function that reads them.
func (hp *hostProcess) window() func() (rss int64, goroutines int) {
	hp.windowRSS.Store(0)
	hp.windowGor.Store(0)
	return func() (int64, int) { return hp.windowRSS.Load(), int(hp.windowGor.Load()) }
}

// stop ends the host process: stdin closes, the node closes, it exits.
func (hp *hostProcess) stop() error {
	hp.stopOnce.Do(func() {
		_ = hp.stdin.Close()
		done := make(chan error, 1)
		go func() { done <- hp.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				hp.err = fmt.Errorf("bench: the host process: %w", err)
			}
		case <-time.After(time.Minute):
			_ = hp.cmd.Process.Kill()
			<-done
			hp.err = errors.New("bench: the host process did not close within a minute")
		}
	})
	return hp.err
}

// rawHost is a bare libp2p host listening on ip (its connections come
// from there): a member's client or an attacker's throwaway peer ID.
func rawHost(ip string) (host.Host, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/"+ip+"/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
	)
	if err != nil {
		return nil, fmt.Errorf("bench: a host on %s: %w", ip, err)
	}
	return h, nil
}

func connectTo(ctx context.Context, h host.Host, hp *hostProcess) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return h.Connect(ctx, peer.AddrInfo{ID: hp.id, Addrs: hp.addrs})
}

// attackMember is a member: its own libp2p host on 127.0.1.x, its
// established mailbox's key, and the envelopes the host acknowledged.
type attackMember struct {
	h       host.Host
	cl      *fetch.Client
	hp      *hostProcess
	k       ed25519.PrivateKey
	m       envelope.MailboxID
	history int

	mu    sync.Mutex
	acked []envelope.ID
}

func newAttackMember(ip string, hp *hostProcess, k ed25519.PrivateKey, history int) (*attackMember, error) {
	h, err := rawHost(ip)
	if err != nil {
		return nil, err
	}
	if err := connectTo(context.Background(), h, hp); err != nil {
		h.Close()
		return nil, fmt.Errorf("bench: a member connecting to the host: %w", err)
	}
	cl, err := fetch.NewClient(h, fetch.DefaultParams(), false)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &attackMember{h: h, cl: cl, hp: hp, k: k, m: envelope.MailboxFor(k.Public().(ed25519.PublicKey)), history: history}, nil
}

func (m *attackMember) close() { _ = m.h.Close() }

// catchUp fetches the member's whole mailbox (at most 10 s).
func (m *attackMember) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m.mu.Lock()
	want := m.history + len(m.acked)
	m.mu.Unlock()
	_, n, err := m.cl.CatchUp(ctx, m.hp.id, m.m, nil, func(store.Page) error { return nil })
	if err == nil && n < want {
		err = fmt.Errorf("%w: caught up %d envelopes of %d", ErrMismatch, n, want)
	}
	return err
}

// send relays one new envelope (at most 10 s) as node.Remote does.
func (m *attackMember) send(ctx context.Context) error {
	env, err := makeEnvelope(m.k, 1024)
	if err != nil {
		return err
	}
	if err := relay.Send(ctx, m.h, m.hp.id, m.m, env, 10*time.Second); err != nil {
		return err
	}
	m.mu.Lock()
	m.acked = append(m.acked, env.ID())
	m.mu.Unlock()
	return nil
}

// lost counts the member's acknowledged envelopes the host does not
// serve.
func (m *attackMember) lost(ctx context.Context) (int, error) {
	have := map[envelope.ID]bool{}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, _, err := m.cl.CatchUp(ctx, m.hp.id, m.m, nil, func(pg store.Page) error {
		for _, e := range pg.Envelopes {
			have[e.ID()] = true
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bench: a member's final catch-up: %w", err)
	}
	lost := 0
	for _, id := range m.acked {
		if !have[id] {
			lost++
		}
	}
	return lost, nil
}

// errClass names an error for the counts: the refusal codes a client can
// tell apart, or what else it was.
func errClass(err error) string {
	switch {
	case errors.Is(err, status.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, status.ErrBusy):
		return "busy"
	case errors.Is(err, store.ErrQuotaExceeded):
		return "quota"
	case errors.Is(err, status.ErrProofRequired):
		return "proof_required"
	case errors.Is(err, ErrMismatch):
		return "incomplete"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, network.ErrReset):
		return "reset"
	}
	var se *network.StreamError
	if errors.As(err, &se) {
		return "reset"
	}
	return "other"
}

type opCounter struct {
	mu sync.Mutex
	c  OpCount
}

func (o *opCounter) add(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.c.Attempts++
	if err == nil {
		o.c.OK++
		return
	}
	if o.c.Errors == nil {
		o.c.Errors, o.c.Example = map[string]int{}, map[string]string{}
	}
	class := errClass(err)
	o.c.Errors[class]++
	if _, ok := o.c.Example[class]; !ok {
		o.c.Example[class] = status.Truncate(err.Error())
	}
}

func (o *opCounter) result() OpCount {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.c
	if c.Attempts > 0 {
		c.Ratio = float64(c.OK) / float64(c.Attempts)
	}
	return c
}

// runAttack runs one attack for p.Duration while the members work, then
// measures the recovery.
func runAttack(ctx context.Context, name string, p AttackParams, hp *hostProcess, members []*attackMember) (*AttackRun, error) {
	run := &AttackRun{Name: name, Refusals: map[string]uint64{}}
	before := hp.latest()
	run.HostedBefore = before.Hosted
	peaks := hp.window()
	actx, stop := context.WithTimeout(ctx, p.Duration)
	defer stop()
	var stats attackerStats
	var attackers sync.WaitGroup
	attackers.Add(1)
	go func() {
		defer attackers.Done()
		attack(actx, name, hp, &stats, run)
	}()
	// Let the attack take hold before the members count.
	select {
	case <-time.After(min(2*time.Second, p.Duration/4)):
	case <-ctx.Done():
	}
	var cu, sd opCounter
	var wg sync.WaitGroup
	start := time.Now()
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each operation has its own 10 s, whenever the attack ends.
			for actx.Err() == nil {
				cu.add(m.catchUp(ctx))
				if actx.Err() != nil {
					break
				}
				sd.add(m.send(ctx))
				select {
				case <-actx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	attackers.Wait()
	run.Seconds = time.Since(start).Seconds()
	run.CatchUp, run.Send = cu.result(), sd.result()
	run.Attacker = stats.result()
	run.Attacker.Peers = stats.peers

	// Recovery: the attackers are gone; how soon are members served, and
	// how soon is the host back to normal?
	end := time.Now()
	for {
		m := members[0]
		if m.catchUp(ctx) == nil && m.send(ctx) == nil {
			run.RecoverySeconds = time.Since(end).Seconds()
			break
		}
		if time.Since(end) > time.Minute || ctx.Err() != nil {
			run.RecoverySeconds = -1
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	run.PressureClearedSeconds = -1
	for time.Since(end) < time.Minute && ctx.Err() == nil {
		if hp.latest().RecentRefusals == 0 {
			run.PressureClearedSeconds = time.Since(end).Seconds()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := hp.latest()
	rss, gor := peaks()
	run.PeakRSSMiB, run.PeakGoroutines, run.PeakJoined = mib(rss), gor, int(hp.peakJoined.Load())
	run.HostedAfter, run.StoreMiBAfter, run.StoreNewRefused = after.Hosted, mib(after.StoreBytes), after.NewRefused
	for r, n := range after.Refusals {
		if d := n - before.Refusals[r]; d > 0 {
			run.Refusals[r] = d
		}
	}
	return run, nil
}

// attackerStats counts what the attackers did.
type attackerStats struct {
	peers                   int
	streams, sent, accepted atomic.Int64
	mu                      sync.Mutex
	refused                 map[string]int
	example                 map[string]string
}

func (s *attackerStats) outcome(err error) {
	s.sent.Add(1)
	if err == nil {
		s.accepted.Add(1)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused, s.example = map[string]int{}, map[string]string{}
	}
	class := errClass(err)
	s.refused[class]++
	if _, ok := s.example[class]; !ok {
		s.example[class] = status.Truncate(err.Error())
	}
}

func (s *attackerStats) result() AttackerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return AttackerStats{Streams: s.streams.Load(), Sent: s.sent.Load(), Accepted: s.accepted.Load(), Refused: s.refused, Example: s.example}
}

// attackers starts n throwaway peer IDs, each on its own address of
// 127.0.2.0/24, connected to the host; stop closes them.
func attackers(ctx context.Context, n int, hp *hostProcess) ([]host.Host, func()) {
	var hs []host.Host
	for i := range n {
		h, err := rawHost(fmt.Sprintf("%s%d", attackerNet, i+1))
		if err != nil {
			continue
		}
		if err := connectTo(ctx, h, hp); err != nil {
			// Refused at the connection: the host's per-network limit.
			h.Close()
			continue
		}
		hs = append(hs, h)
	}
	return hs, func() {
		for _, h := range hs {
			h.Close()
		}
	}
}

// attack runs the attack name until ctx ends.
func attack(ctx context.Context, name string, hp *hostProcess, s *attackerStats, run *AttackRun) {
	switch name {
	case AttackSlowloris:
		run.Description = "17 peer IDs x 4 idle fetch 1.1.0 streams and 9 x 32 idle relay 1.2.0 streams " +
			"(the protocol header, then nothing or one byte of a length prefix), reopened as soon as the host resets them"
		fetchers, stopF := attackers(ctx, 17, hp)
		defer stopF()
		relayers, stopR := attackersFrom(ctx, 17, 9, hp)
		defer stopR()
		s.peers = len(fetchers) + len(relayers)
		var wg sync.WaitGroup
		for _, h := range fetchers {
			idle(ctx, &wg, h, hp.id, fetch.StreamProtocolID, 4, s)
		}
		for _, h := range relayers {
			idle(ctx, &wg, h, hp.id, relay.SessionProtocolID, 32, s)
		}
		wg.Wait()
	case AttackMailboxes:
		run.Description = "10 peer IDs creating new write keys as fast as they can, one envelope each " +
			"(their client computes no proof of work)"
		hs, stop := attackers(ctx, 10, hp)
		defer stop()
		s.peers = len(hs)
		var wg sync.WaitGroup
		for _, h := range hs {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						k, err := writeKey()
						if err != nil {
							return
						}
						env, err := makeEnvelope(k, 512)
						if err != nil {
							return
						}
						err = sendNoProof(ctx, h, hp.id, env)
						if ctx.Err() == nil {
							s.outcome(err)
						}
					}
				}()
			}
		}
		wg.Wait()
	case AttackStoreFull:
		run.Description = "10 peer IDs filling new mailboxes with 32 KiB envelopes, a new mailbox whenever one is refused, " +
			"to fill the store's quota"
		hs, stop := attackers(ctx, 10, hp)
		defer stop()
		s.peers = len(hs)
		var wg sync.WaitGroup
		for _, h := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sess := relay.NewSession(h, hp.id, 10*time.Second)
				defer sess.Close()
				for ctx.Err() == nil {
					k, err := writeKey()
					if err != nil {
						return
					}
					m := envelope.MailboxFor(k.Public().(ed25519.PublicKey))
					for ctx.Err() == nil {
						env, err := makeEnvelope(k, 32<<10)
						if err != nil {
							return
						}
						err = sess.Send(ctx, m, env)
						if ctx.Err() != nil {
							return
						}
						s.outcome(err)
						if errors.Is(err, store.ErrQuotaExceeded) {
							break // full: a new mailbox
						}
						if err != nil {
							// Slowed down: the same mailbox again shortly.
							select {
							case <-ctx.Done():
							case <-time.After(50 * time.Millisecond):
							}
						}
					}
				}
			}()
		}
		wg.Wait()
	case AttackFlood:
		run.Description = "10 peer IDs, each sending valid 1 KiB envelopes into a mailbox of its own as fast as it can " +
			"(32 in flight on a relay session)"
		hs, stop := attackers(ctx, 10, hp)
		defer stop()
		s.peers = len(hs)
		var wg sync.WaitGroup
		for _, h := range hs {
			k, err := writeKey()
			if err != nil {
				return
			}
			m := envelope.MailboxFor(k.Public().(ed25519.PublicKey))
			sess := relay.NewSession(h, hp.id, 10*time.Second)
			defer sess.Close()
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						env, err := makeEnvelope(k, 1024)
						if err != nil {
							return
						}
						err = sess.Send(ctx, m, env)
						if ctx.Err() == nil {
							s.outcome(err)
						}
					}
				}()
			}
		}
		wg.Wait()
	}
}

// attackersFrom is attackers with addresses numbered from first+1.
func attackersFrom(ctx context.Context, first, n int, hp *hostProcess) ([]host.Host, func()) {
	var hs []host.Host
	for i := range n {
		h, err := rawHost(fmt.Sprintf("%s%d", attackerNet, first+i+1))
		if err != nil {
			continue
		}
		if err := connectTo(ctx, h, hp); err != nil {
			h.Close()
			continue
		}
		hs = append(hs, h)
	}
	return hs, func() {
		for _, h := range hs {
			h.Close()
		}
	}
}

// idle keeps per streams of proto open from h, each sending the protocol
// header and then nothing (or one byte of a length prefix that never
// ends), reopened as soon as the host resets one.
func idle(ctx context.Context, wg *sync.WaitGroup, h host.Host, to peer.ID, proto protocol.ID, per int, s *attackerStats) {
	for i := range per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				st, err := h.NewStream(ctx, to, proto)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				s.streams.Add(1)
				if i%2 == 1 {
					_, _ = st.Write([]byte{0x80})
				} else {
					_, _ = st.Write(nil)
				}
				done := make(chan struct{})
				go func() {
					_, _ = st.Read(make([]byte, 1))
					close(done)
				}()
				select {
				case <-done:
				case <-ctx.Done():
				}
				_ = st.Reset()
			}
		}()
	}
}

// sendNoProof relays env with the one-request protocol and does not
// answer a request for proof of work (an attacker's client).
func sendNoProof(ctx context.Context, h host.Host, to peer.ID, env *envelope.Envelope) error {
	return relay.SendWith(ctx, h, to, env.Mailbox(), env, 10*time.Second, 0)
}
