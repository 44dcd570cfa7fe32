package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

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
