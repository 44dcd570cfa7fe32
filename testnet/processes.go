package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/node"
)

// hostProcess is one process a plan's host runs: a daemon for one of its
// online periods, or its agent. Start and Stop are offsets from the
// simulation's start (Stop 0: until the end for a daemon; an agent exits
// by itself).
type hostProcess struct {
	Node  int
	Agent bool
	Args  []string // after the meshnode binary
	Start time.Duration
	Stop  time.Duration
}

// nodeRole is the role of node i under a strategy.
func nodeRole(s *Scenario, st Strategy, i int) node.Role {
	switch {
	case i < s.Peers:
		return node.RoleMember
	case st == StrategyBot:
		return node.RoleBot
	}
	return node.RoleHost
}

// defaultSetup is the time given to starting daemons and forming groups.
func defaultSetup(nodes int) time.Duration {
	return max(15*time.Second, time.Duration(nodes)*300*time.Millisecond)
}

// preparePlan lays out a plan in dir: a home per node (daemon.Init,
// unencrypted keystores: nothing here is a real secret), the rendezvous and
// log directories, plan.json. listen gives node i's listen multiaddr.
func preparePlan(dir string, s Scenario, st Strategy, setup time.Duration, listen func(i int) string) (*Plan, string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	p := &Plan{Scenario: s, Strategy: st, Setup: Duration(setup), TrafficAt: Duration(setup) + s.Warmup,
		Rendezvous: filepath.Join(dir, "rendezvous"), Logs: filepath.Join(dir, "logs")}
	for _, d := range []string{dir, p.Rendezvous, p.Logs, filepath.Join(dir, "homes"), filepath.Join(dir, "out")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, "", err
		}
	}
	n := s.Peers + infraCount(&s, st)
	for i := range n {
		role := nodeRole(&s, st, i)
		home := filepath.Join(dir, "homes", fmt.Sprintf("n%04d", i))
		ip := daemon.DefaultInitParams()
		ip.Role, ip.Nick, ip.Unencrypted = role, nick(i), true
		ip.ListenAddrs = []string{listen(i)}
		if _, err := daemon.Init(home, ip, nil); err != nil {
			return nil, "", fmt.Errorf("testnet: home of node %d: %w", i, err)
		}
		p.Nodes = append(p.Nodes, PlanNode{Index: i, Member: i < s.Peers, Role: string(role), Home: home, Listen: listen(i)})
	}
	path, err := WritePlan(dir, p)
	return p, path, err
}

// planProcesses lists the processes of a plan: per node, its daemon for
// each online period (churn stops it while offline) and its agent.
func planProcesses(p *Plan, planPath string) []hostProcess {
	sch := NewSchedule(&p.Scenario)
	var out []hostProcess
	for _, n := range p.Nodes {
		args := []string{"run", "--home", n.Home, "--listen", n.Listen, "--log-level", "warn"}
		if !n.Member {
			args = append(args, "--host-policy", "open")
		}
		start := time.Duration(0)
		for _, ev := range sch.Events {
			if ev.Node != n.Index || !n.Member {
				continue
			}
			at := (p.TrafficAt + Duration(ev.At)).D()
			switch ev.Kind {
			case EventOffline:
				out = append(out, hostProcess{Node: n.Index, Args: args, Start: start, Stop: at})
				start = -1
			case EventOnline:
				start = at
			}
		}
		if start < 0 {
			// Offline at the end of the traffic: back for the final phase.
			start = (p.TrafficAt + p.Scenario.Duration).D()
		}
		out = append(out, hostProcess{Node: n.Index, Args: args, Start: start})
		agentStart := 500 * time.Millisecond
		out = append(out, hostProcess{Node: n.Index, Agent: true, Start: agentStart, Args: []string{
			"testnet", "agent", "--plan", planPath, "--node", strconv.Itoa(n.Index),
			"--started-at", agentStart.String(), "--log", filepath.Join(p.Logs, fmt.Sprintf("agent-%04d.jsonl", n.Index)),
		}})
	}
	return out
}

// launch runs a plan's processes on this machine: each started at its
// offset, daemons stopped at theirs (SIGTERM, then SIGKILL after 10 s),
// until every agent has exited; then it stops the daemons. It returns the
// daemons' mean resident memory when the traffic started.
func launch(ctx context.Context, p *Plan, procs []hostProcess, binary, outDir string, prog *progress) (int64, error) {
	sim0 := time.Now()
	var (
		mu      sync.Mutex
		running = map[int]*exec.Cmd{} // node → its daemon now
		errs    []error
		wg      sync.WaitGroup
	)
	deadline := sim0.Add(p.End() + time.Minute)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	agentsDone := make(chan struct{})
	var agents sync.WaitGroup
	start := func(hp hostProcess, k int) (*exec.Cmd, error) {
		name := fmt.Sprintf("daemon-%04d-%d.log", hp.Node, k)
		if hp.Agent {
			name = fmt.Sprintf("agent-%04d.out", hp.Node)
		}
		f, err := os.Create(filepath.Join(outDir, name))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(binary, hp.Args...)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.Env = append(os.Environ(), "MESHNODE_HOME=")
		if err := cmd.Start(); err != nil {
			f.Close()
			return nil, err
		}
		go func() { _ = cmd.Wait(); f.Close() }()
		return cmd, nil
	}
	for k, hp := range procs {
		if hp.Agent {
			agents.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if hp.Agent {
				defer agents.Done()
			}
			if err := sleepUntil(ctx, sim0.Add(hp.Start)); err != nil {
				return
			}
			cmd, err := start(hp, k)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("testnet: start node %d: %w", hp.Node, err))
				mu.Unlock()
				return
			}
			if hp.Agent {
				waitExit(ctx, cmd)
				if ctx.Err() != nil {
					stop(cmd, 0)
				}
				return
			}
			mu.Lock()
			running[hp.Node] = cmd
			mu.Unlock()
			if hp.Stop == 0 {
				select {
				case <-agentsDone:
				case <-ctx.Done():
				}
			} else {
				_ = sleepUntil(ctx, sim0.Add(hp.Stop))
			}
			stop(cmd, 10*time.Second)
			mu.Lock()
			if running[hp.Node] == cmd {
				delete(running, hp.Node)
			}
			mu.Unlock()
		}()
	}
	// Memory when the traffic starts: every daemon is up and in its groups.
	var mem int64
	if err := sleepUntil(ctx, sim0.Add(p.TrafficAt.D())); err == nil {
		mu.Lock()
		var sum, n int64
		for _, cmd := range running {
			if rss := residentMemory(cmd.Process.Pid); rss > 0 {
				sum, n = sum+rss, n+1
			}
		}
		mu.Unlock()
		if n > 0 {
			mem = sum / n
		}
		prog.phase("traffic (%v) and final catch-up", p.Scenario.Duration.D())
	}
	agents.Wait()
	close(agentsDone)
	wg.Wait()
	return mem, errors.Join(errs...)
}

func waitExit(ctx context.Context, cmd *exec.Cmd) {
	for ctx.Err() == nil {
		if !alive(cmd.Process.Pid) {
			return
		}
		_ = sleepUntil(ctx, time.Now().Add(agentPoll))
	}
}

// alive reports whether a child has not exited yet (a zombie counts as
// exited: Wait runs in its own goroutine).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// stop ends a process this launcher started: SIGTERM, and SIGKILL if it
// is still there after grace.
func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	end := time.Now().Add(grace)
	for alive(cmd.Process.Pid) && time.Now().Before(end) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(cmd.Process.Pid) {
		_ = cmd.Process.Kill()
	}
}

// residentMemory reads a process's VmRSS in bytes (0 if unknown).
func residentMemory(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// RunProcesses runs a scenario as real processes: for each run and
// strategy, one `meshnode run` daemon per node (TCP on loopback, its own
// home and Badger store on disk) and one agent per node
// (`meshnode testnet agent`), launched from binary; the agents' logs go
// through the same collector as the in-memory simulator. Work directories
// are made under workDir (kept: homes, logs, daemon output).
func RunProcesses(ctx context.Context, s Scenario, binary, workDir string, opts ...Option) (*Results, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := checkProcessScenario(&s); err != nil {
		return nil, err
	}
	if s.ManagedGroups() {
		return nil, fmt.Errorf("%w: managed groups are not run as processes yet (the agents form plain groups); use the in-memory mode", ErrScenario)
	}
	// Processes run no baseline (it is a second gossipsub router inside
	// the simulator): the results say so.
	off := false
	s.Baseline = &off
	res := newResults(s, ModeProcesses, cfg.runs)
	for k := range cfg.runs {
		sc := s
		sc.Seed = res.Seeds[k]
		rr := RunResult{Seed: sc.Seed, Schedule: summarise(NewSchedule(&sc), 0)}
		t := time.Now()
		for i, st := range s.Strategies {
			label := fmt.Sprintf("[processes %d/%d %s]", i+1, len(s.Strategies), st)
			if cfg.runs > 1 {
				label = fmt.Sprintf("[processes run %d/%d seed %d, %d/%d %s]", k+1, cfg.runs, sc.Seed, i+1, len(s.Strategies), st)
			}
			prog := newProgress(cfg.progress, cfg.lines, label, s.Duration.D())
			r, err := runProcessStrategy(ctx, sc, st, binary, filepath.Join(workDir, fmt.Sprintf("run%d-%s", k+1, st)), cfg, prog)
			prog.done(r, err)
			if err != nil {
				return nil, fmt.Errorf("testnet: processes, strategy %s (seed %d): %w", st, sc.Seed, err)
			}
			rr.Strategies = append(rr.Strategies, r)
		}
		rr.Elapsed = round2(time.Since(t).Seconds())
		res.PerRun = append(res.PerRun, rr)
	}
	res.finish()
	return res, nil
}

func runProcessStrategy(ctx context.Context, s Scenario, st Strategy, binary, dir string, cfg *config, prog *progress) (StrategyResult, error) {
	n := s.Peers + infraCount(&s, st)
	setup := cfg.setup
	if setup == 0 {
		setup = defaultSetup(n)
	}
	prog.phase("preparing %d homes", n)
	p, planPath, err := preparePlan(dir, s, st, setup, func(int) string { return "/ip4/127.0.0.1/tcp/0" })
	if err != nil {
		return StrategyResult{}, err
	}
	prog.phase("starting %d daemons and agents; forming groups (%v)", n, setup)
	t := time.Now()
	mem, err := launch(ctx, p, planProcesses(p, planPath), binary, filepath.Join(dir, "out"), prog)
	if err != nil {
		return StrategyResult{}, err
	}
	r, warnings, err := Collect(p, mem)
	for _, w := range warnings {
		cfg.log.Warn("processes", "strategy", st, "warning", w)
	}
	if err != nil {
		return r, err
	}
	r.Warnings = warnings
	r.SetupSeconds = round2(setup.Seconds())
	_ = t
	return r, nil
}
