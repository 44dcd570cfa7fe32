package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

// The attack benchmark's host runs in a process of its own, so that its
// memory and goroutines are its own and not the attackers' or the
// members': the harness starts its own executable again with
// EnvChildRole set to childAttackHost, sends it one JSON line (the
// attackHostConfig), and reads JSON lines back (hostReport): "ready" once
// the node has started, then a "sample" every SampleInterval, and
// "closed" after stdin ends and the node has closed.

// EnvChildRole is the environment variable that makes a meshnode process
// (or a test binary of this package) one of the benchmark's child
// processes instead of what it would be: see RunChild.
const EnvChildRole = "MESHNODE_BENCH_CHILD"

// childAttackHost is EnvChildRole's value for the attack host.
const childAttackHost = "attack-host"

// attackHostConfig is what the harness tells the host process.
type attackHostConfig struct {
	Dir            string        `json:"dir"`
	Listen         string        `json:"listen"`
	GlobalQuota    int64         `json:"global_quota"`
	PressureWindow time.Duration `json:"pressure_window"`
	SampleInterval time.Duration `json:"sample_interval"`
	// Default: the host runs with node.DefaultParams(RoleHost) and an open
	// policy, loopback not exempt; Admission off runs it without any of
	// issue 14's admission (for comparison).
	AdmissionOff bool `json:"admission_off"`
}

// hostReport is one line from the host process.
type hostReport struct {
	Kind string `json:"kind"` // ready, sample, closed, error
	// Ready.
	Peer             string   `json:"peer,omitempty"`
	Addrs            []string `json:"addrs,omitempty"`
	NodeStartSeconds float64  `json:"node_start_seconds,omitempty"`
	// Sample (and ready, closed).
	RSSBytes      int64  `json:"rss_bytes"`
	PeakRSSBytes  int64  `json:"peak_rss_bytes"`
	HeapBytes     uint64 `json:"heap_bytes"`
	Goroutines    int    `json:"goroutines"`
	Hosted        int    `json:"hosted"`
	Joined        int    `json:"joined"`
	StoreBytes    int64  `json:"store_bytes"`
	UnderPressure bool   `json:"under_pressure"`
	// RecentRefusals are the refusals within the pressure window;
	// NewRefused says the store is past the share open to new mailboxes.
	RecentRefusals uint64            `json:"recent_refusals"`
	NewRefused     bool              `json:"new_refused"`
	Refusals       map[string]uint64 `json:"refusals,omitempty"`
	Error          string            `json:"error,omitempty"`
}

// ChildRole returns the role this process was started in by the
// benchmark harness ("" for none).
func ChildRole() string { return os.Getenv(EnvChildRole) }

// RunChild runs this process as the benchmark child ChildRole names,
// reading its configuration from in and reporting to out, and returns
// the process's exit status.
func RunChild(in io.Reader, out io.Writer) int {
	switch ChildRole() {
	case childAttackHost:
		if err := runAttackHost(in, out); err != nil {
			_ = json.NewEncoder(out).Encode(hostReport{Kind: "error", Error: err.Error()})
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "bench: unknown child role %q\n", ChildRole())
	return 2
}

// attackHostParams are the attack host's node parameters.
func attackHostParams(c attackHostConfig) node.Params {
	p := node.DefaultParams(node.RoleHost)
	p.StablePeerID = false
	p.HostPolicy = node.PolicyOpen
	p.ListenAddrs = []string{c.Listen}
	p.Store = store.DefaultParams()
	p.Store.GCInterval = 0
	p.Store.GlobalQuotaBytes = c.GlobalQuota
	p.Admission.ExemptLoopback = false
	if c.PressureWindow > 0 {
		p.Admission.PressureWindow = c.PressureWindow
	}
	if c.AdmissionOff {
		// What a host was before issue 14 in what can still be turned off:
		// no per-prefix limits, rates or budgets of new mailboxes.
		p.Admission.ExemptLoopback = true
		p.Admission.NewTrafficRate, p.Admission.NewMailboxRate = 0, 0
		p.Store.Admission = store.AdmissionParams{}
	}
	return p
}

func runAttackHost(in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bench: attack host: reading its configuration: %w", err)
	}
	var c attackHostConfig
	if err := json.Unmarshal(line, &c); err != nil {
		return fmt.Errorf("bench: attack host: %w", err)
	}
	enc := json.NewEncoder(out)
	start := time.Now()
	n, err := node.New(context.Background(), attackHostParams(c), node.WithLogger(quiet), node.WithDataDir(c.Dir))
	if err != nil {
		return fmt.Errorf("bench: attack host: %w", err)
	}
	started := time.Since(start)
	report := func(kind string) hostReport {
		r := hostReport{Kind: kind}
		r.RSSBytes, r.PeakRSSBytes = processRSS()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.HeapBytes = ms.HeapAlloc
		r.Goroutines = runtime.NumGoroutine()
		r.Hosted = n.HostedCount()
		r.Joined = n.Relay().JoinedCount()
		r.StoreBytes = n.Store().Usage().Bytes
		st := n.AdmissionState()
		r.UnderPressure = st.UnderPressure
		r.Refusals = map[string]uint64{}
		for _, rc := range st.Refusals {
			r.Refusals[string(rc.Reason)] = rc.Total
			r.RecentRefusals += rc.Recent
		}
		r.NewRefused = st.Store.NewRefused
		return r
	}
	ready := report("ready")
	ready.Peer = n.ID().String()
	for _, a := range n.Host().Addrs() {
		ready.Addrs = append(ready.Addrs, a.String())
	}
	ready.NodeStartSeconds = started.Seconds()
	if err := enc.Encode(ready); err != nil {
		n.Close()
		return err
	}
	// Sample until the harness closes stdin.
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, br)
		close(done)
	}()
	interval := c.SampleInterval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := enc.Encode(report("sample")); err != nil {
				n.Close()
				return err
			}
		case <-done:
			last := report("closed")
			if err := n.Close(); err != nil {
				return fmt.Errorf("bench: attack host: close: %w", err)
			}
			return enc.Encode(last)
		}
	}
}

// processRSS returns this process's resident set size and its peak, from
// /proc/self/status (Linux); elsewhere the memory the Go runtime holds
// from the system, for both.
func processRSS() (rss, peak int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				continue
			}
			switch f[0] {
			case "VmRSS:":
				rss = kb << 10
			case "VmHWM:":
				peak = kb << 10
			}
		}
		if rss > 0 {
			return rss, peak
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Sys), int64(ms.Sys)
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
