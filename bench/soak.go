package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/node"
)

// Soak: the memory of a host and two members over minutes of continuous
// sending, each a real `meshnode run` process of its own (so its resident
// memory is its own), with the configuration init writes for its role
// (and the quota of a new mailbox lifted: the soak sends more than 16 MiB
// into a group less than a day old), started from this executable
// (or SoakParams.Binary) with homes created for the run:
//
//	sender (member) ──send, Rate/s──► its daemon ──relay──► host ──gossip──► receiver (member)
//
// Every SampleInterval the harness reads each process's /proc status
// (VmRSS, and its parts RssAnon: heap, stacks, Badger's in-memory tables;
// RssFile: pages of mapped files, Badger's value logs and tables, which
// the kernel can drop when memory is short) and counts what the receiver
// shows. The result lists every sample and, per process, the first, last
// and largest figures and the growth rate of the second half of the run
// (a bounded process levels off; a leak keeps its slope).

// SoakParams configure a soak run.
type SoakParams struct {
	// Duration of the sending; SampleInterval between samples.
	Duration, SampleInterval time.Duration
	// Rate of messages per second the sender sends, Size bytes of text each.
	Rate float64
	Size int
	// Binary is the meshnode executable to run (default: this one).
	Binary string
	// Dir keeps the homes and logs there (default: a temporary directory,
	// removed after).
	Dir string
	// Progress, if set, is called with each sample as it is taken.
	Progress func(SoakSample)
}

// DefaultSoakParams: 5 minutes of 20 messages of 1 KiB a second, sampled
// every 10 s.
func DefaultSoakParams() SoakParams {
	return SoakParams{Duration: 5 * time.Minute, SampleInterval: 10 * time.Second, Rate: 20, Size: 1 << 10}
}

// ProcMemory is one process's memory at a sample, in bytes.
type ProcMemory struct {
	RSS  int64 `json:"rss_bytes"`
	Anon int64 `json:"rss_anon_bytes"`
	File int64 `json:"rss_file_bytes"`
}

// SoakSample is one sample of the three processes.
type SoakSample struct {
	Seconds  float64    `json:"seconds"`
	Sent     int        `json:"sent"`
	Received int        `json:"received"`
	Host     ProcMemory `json:"host"`
	Sender   ProcMemory `json:"sender"`
	Receiver ProcMemory `json:"receiver"`
}

// SoakSummary sums up one process over the run.
type SoakSummary struct {
	Start ProcMemory `json:"start"`
	End   ProcMemory `json:"end"`
	Max   ProcMemory `json:"max"`
	// GrowthMiBPerMin is the slope of RSS (and of its anonymous part)
	// over the second half of the run, by least squares.
	RSSGrowthMiBPerMin  float64 `json:"rss_growth_mib_per_min"`
	AnonGrowthMiBPerMin float64 `json:"anon_growth_mib_per_min"`
}

// SoakResult is the outcome of Soak.
type SoakResult struct {
	DurationSeconds float64 `json:"duration_seconds"`
	Rate            float64 `json:"rate"`
	Size            int     `json:"size"`
	// LoadStart and LoadEnd are the machine's 1-minute load average
	// before and after (from /proc/loadavg): a loaded machine sends less
	// and collects garbage later.
	LoadStart float64      `json:"load_start"`
	LoadEnd   float64      `json:"load_end"`
	Sent      int          `json:"sent"`
	Received  int          `json:"received"`
	Pending   int          `json:"pending"`
	Samples   []SoakSample `json:"samples"`
	Host      SoakSummary  `json:"host"`
	Sender    SoakSummary  `json:"sender"`
	Receiver  SoakSummary  `json:"receiver"`
}

// soakProc is a running daemon of the soak.
type soakProc struct {
	name string
	home *daemon.Home
	cmd  *exec.Cmd
	c    *api.Client
	done chan error
}

// Soak runs the soak benchmark.
func Soak(ctx context.Context, p SoakParams) (*SoakResult, error) {
	if p.Duration <= 0 || p.SampleInterval <= 0 || p.Rate <= 0 || p.Size < 1 || p.Size > 60000 {
		return nil, fmt.Errorf("%w: soak duration %v, interval %v, rate %v and size %d must be positive (size at most 60000)",
			ErrInvalidParams, p.Duration, p.SampleInterval, p.Rate, p.Size)
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		return nil, fmt.Errorf("bench: soak reads /proc/PID/status, which this system lacks: %w", err)
	}
	exe := p.Binary
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	dir := p.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "meshnode-soak")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	var procs []*soakProc
	defer func() {
		for _, pr := range procs {
			pr.stop()
		}
	}()
	start := func(name string, role node.Role) (*soakProc, error) {
		// The binary's own init, so the home is what that build writes.
		homeDir := filepath.Join(dir, name)
		if out, err := exec.Command(exe, "init", "--home", homeDir, "--role", string(role), "--nick", name,
			"--unencrypted", "--listen", "/ip4/127.0.0.1/tcp/0").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("bench: soak init %s: %v\n%s", name, err, out)
		}
		home, err := daemon.OpenHome(homeDir)
		if err != nil {
			return nil, err
		}
		log, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, err
		}
		// A new group's mailbox may hold 16 MiB by default until it is a
		// day old (store admission, issue 14), in every node's store, the
		// members' own included; the soak sends more than that, and
		// measures memory, not that quota.
		args := []string{"run", "--home", home.Dir(), "--limit", "new_mailbox_quota_bytes=0"}
		cmd := exec.Command(exe, args...)
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Env = soakEnv()
		if err := cmd.Start(); err != nil {
			log.Close()
			return nil, err
		}
		pr := &soakProc{name: name, home: home, cmd: cmd, done: make(chan error, 1)}
		go func() { pr.done <- cmd.Wait(); log.Close() }()
		procs = append(procs, pr)
		for deadline := time.Now().Add(time.Minute); ; {
			if c, err := home.Client(api.WithTimeout(30 * time.Second)); err == nil {
				if _, err := c.Status(ctx); err == nil {
					pr.c = c
					return pr, nil
				}
				c.Close()
			}
			select {
			case err := <-pr.done:
				return nil, fmt.Errorf("bench: soak %s exited at start: %v (see %s)", name, err, log.Name())
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("bench: soak %s did not start (see %s)", name, log.Name())
			}
		}
	}
	host, err := start("host", node.RoleHost)
	if err != nil {
		return nil, err
	}
	sender, err := start("sender", node.RoleMember)
	if err != nil {
		return nil, err
	}
	receiver, err := start("receiver", node.RoleMember)
	if err != nil {
		return nil, err
	}
	id, err := host.c.ID(ctx)
	if err != nil || len(id.Addrs) == 0 {
		return nil, fmt.Errorf("bench: soak host address: %v", err)
	}
	created, err := sender.c.CreateGroup(ctx, "soak", []string{id.Addrs[0]})
	if err != nil {
		return nil, err
	}
	if _, err := receiver.c.JoinGroup(ctx, created.Invite, ""); err != nil {
		return nil, err
	}
	gid := created.Group.ID
	text := strings.Repeat("x", p.Size)

	res := &SoakResult{Rate: p.Rate, Size: p.Size, LoadStart: loadAverage()}
	began := time.Now()
	sample := func() error {
		s := SoakSample{Seconds: time.Since(began).Seconds(), Sent: res.Sent}
		var err error
		if s.Host, err = procMemory(host.cmd.Process.Pid); err != nil {
			return err
		}
		if s.Sender, err = procMemory(sender.cmd.Process.Pid); err != nil {
			return err
		}
		if s.Receiver, err = procMemory(receiver.cmd.Process.Pid); err != nil {
			return err
		}
		if g, err := receiver.c.Group(ctx, gid); err == nil {
			s.Received = g.Messages
		}
		res.Samples = append(res.Samples, s)
		if p.Progress != nil {
			p.Progress(s)
		}
		return nil
	}
	if err := sample(); err != nil {
		return nil, err
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / p.Rate))
	defer tick.Stop()
	next := began.Add(p.SampleInterval)
	for time.Since(began) < p.Duration {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		for _, pr := range procs {
			select {
			case err := <-pr.done:
				return nil, fmt.Errorf("bench: soak %s exited: %v (see its log in %s)", pr.name, err, dir)
			default:
			}
		}
		r, err := sender.c.Send(ctx, gid, fmt.Sprintf("%d %s", res.Sent, text[:p.Size-min(p.Size, 8)]))
		if err != nil {
			return nil, fmt.Errorf("bench: soak send %d: %w", res.Sent, err)
		}
		res.Sent++
		if r.State == api.DeliveryPending {
			res.Pending++
		}
		if time.Now().After(next) {
			if err := sample(); err != nil {
				return nil, err
			}
			next = next.Add(p.SampleInterval)
		}
	}
	// Let the receiver take the last messages in, then the last sample.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if g, err := receiver.c.Group(ctx, gid); err == nil && g.Messages >= res.Sent {
			break
		}
	}
	if err := sample(); err != nil {
		return nil, err
	}
	res.DurationSeconds = time.Since(began).Seconds()
	res.LoadEnd = loadAverage()
	res.Received = res.Samples[len(res.Samples)-1].Received
	res.Host = summarize(res.Samples, func(s SoakSample) ProcMemory { return s.Host })
	res.Sender = summarize(res.Samples, func(s SoakSample) ProcMemory { return s.Sender })
	res.Receiver = summarize(res.Samples, func(s SoakSample) ProcMemory { return s.Receiver })
	return res, nil
}

// soakEnv is this process's environment without MESHNODE_ variables (the
// homes are unencrypted and named by --home).
func soakEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESHNODE_") {
			out = append(out, kv)
		}
	}
	return out
}

// stop ends a daemon: SIGTERM, and SIGKILL if it has not stopped in 20 s.
func (pr *soakProc) stop() {
	if pr.c != nil {
		pr.c.Close()
	}
	if pr.cmd.ProcessState != nil {
		return
	}
	_ = pr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pr.done:
	case <-time.After(20 * time.Second):
		_ = pr.cmd.Process.Kill()
		<-pr.done
	}
}

// procMemory reads VmRSS, RssAnon and RssFile of a process.
func procMemory(pid int) (ProcMemory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMemory{}, err
	}
	defer f.Close()
	var m ProcMemory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) < 1 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "RssAnon":
			m.Anon = n << 10
		case "RssFile":
			m.File = n << 10
		}
	}
	if m.RSS == 0 {
		return m, errors.Join(sc.Err(), fmt.Errorf("bench: no VmRSS in /proc/%d/status", pid))
	}
	return m, nil
}

func summarize(ss []SoakSample, of func(SoakSample) ProcMemory) SoakSummary {
	var s SoakSummary
	s.Start, s.End = of(ss[0]), of(ss[len(ss)-1])
	for _, x := range ss {
		m := of(x)
		s.Max.RSS, s.Max.Anon, s.Max.File = max(s.Max.RSS, m.RSS), max(s.Max.Anon, m.Anon), max(s.Max.File, m.File)
	}
	half := ss[len(ss)/2:]
	slope := func(v func(ProcMemory) int64) float64 {
		if len(half) < 2 {
			return 0
		}
		var sx, sy, sxx, sxy float64
		for _, x := range half {
			t, y := x.Seconds/60, float64(v(of(x)))/(1<<20)
			sx, sy, sxx, sxy = sx+t, sy+y, sxx+t*t, sxy+t*y
		}
		n := float64(len(half))
		d := n*sxx - sx*sx
		if d == 0 {
			return 0
		}
		return (n*sxy - sx*sy) / d
	}
	s.RSSGrowthMiBPerMin = slope(func(m ProcMemory) int64 { return m.RSS })
	s.AnonGrowthMiBPerMin = slope(func(m ProcMemory) int64 { return m.Anon })
	return s
}

// loadAverage is the 1-minute load average (0 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
