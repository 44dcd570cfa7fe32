package testnet

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Run validates the scenario and runs it WithRuns times (once by
// default), each time on the schedule drawn from the run's seed
// (DeriveSeed), every strategy of it in turn on a fresh network of fresh
// nodes; then it summarises every figure over the runs (aggregate).
func Run(ctx context.Context, s Scenario, opts ...Option) (*Results, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	res := newResults(s, ModeMemory, cfg.runs)
	if os.Getenv("GOMEMLIMIT") == "" {
		res.MemoryLimit = s.memoryLimit()
		prev := debug.SetMemoryLimit(res.MemoryLimit)
		defer debug.SetMemoryLimit(prev)
	}
	for k := range cfg.runs {
		sc := s
		sc.Seed = res.Seeds[k]
		sch := NewSchedule(&sc)
		rr := RunResult{Seed: sc.Seed, Schedule: summarise(sch, len(sc.Partitions))}
		t := time.Now()
		for i, st := range s.Strategies {
			label := fmt.Sprintf("[%d/%d %s]", i+1, len(s.Strategies), st)
			if cfg.runs > 1 {
				label = fmt.Sprintf("[run %d/%d seed %d, %d/%d %s]", k+1, cfg.runs, sc.Seed, i+1, len(s.Strategies), st)
			}
			prog := newProgress(cfg.progress, cfg.lines, label, s.Duration.D())
			r, err := runStrategy(ctx, &sc, sch, st, cfg, prog)
			prog.done(r, err)
			if err != nil {
				return nil, fmt.Errorf("testnet: strategy %s (seed %d): %w", st, sc.Seed, err)
			}
			rr.Strategies = append(rr.Strategies, r)
		}
		rr.Elapsed = round2(time.Since(t).Seconds())
		res.PerRun = append(res.PerRun, rr)
	}
	res.finish()
	res.PeakRSS = peakRSS()
	res.PeakRSSPerNode = res.PeakRSS / int64(s.maxNodes())
	return res, nil
}

// newResults starts the results of runs of s.
func newResults(s Scenario, mode string, runs int) *Results {
	res := &Results{
		Scenario: s,
		Mode:     mode,
		Runs:     runs,
		Machine:  Machine{CPUs: runtime.NumCPU(), AvailableMemory: availableMemory(), GoVersion: runtime.Version()},
		Started:  time.Now().UTC(),
	}
	res.Load[0] = loadAverage()
	for k := range runs {
		res.Seeds = append(res.Seeds, DeriveSeed(s.Seed, k))
	}
	return res
}

// finish summarises the runs (PerRun) into Strategies.
func (res *Results) finish() {
	res.Load[1] = loadAverage()
	res.Elapsed = round2(time.Since(res.Started).Seconds())
	if len(res.PerRun) > 0 {
		res.Schedule = res.PerRun[0].Schedule
	}
	res.Strategies = aggregate(res.PerRun)
	if len(res.PerRun) == 1 {
		res.PerRun = nil
	}
}

func summarise(sch *Schedule, partitions int) ScheduleSummary {
	sum := ScheduleSummary{Groups: len(sch.Groups), Messages: sch.Messages, Churned: len(sch.Churned), Partitions: partitions,
		Removals: sch.Removals, Rotations: sch.Rotations}
	for _, ev := range sch.Events {
		if ev.Kind == EventOffline {
			sum.Offlines++
		}
	}
	return sum
}

func runStrategy(ctx context.Context, s *Scenario, sch *Schedule, st Strategy, cfg *config, prog *progress) (r StrategyResult, err error) {
	m := newSim(s, sch, st, cfg)
	defer func() {
		if cerr := m.close(); cerr != nil && err == nil {
			// Dropped into the log: the metrics are complete; a node that
			// did not close cleanly does not change them.
			cfg.log.Warn("closing the simulation", "strategy", st, "err", cerr)
		}
	}()
	t := time.Now()
	total := s.Peers + infraCount(s, st)
	prog.phase("starting %d nodes and %d groups", total, len(sch.Groups))
	stopTicker := make(chan struct{})
	go func() {
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stopTicker:
				return
			case <-tk.C:
				prog.draw(fmt.Sprintf("setup %s: %d/%d nodes started, %d/%d groups formed", humanMs(ms(time.Since(t))),
					m.started.Load(), total, m.formed.Load(), len(sch.Groups)), prog.lines)
			}
		}
	}()
	err = m.setup(ctx)
	close(stopTicker)
	if err != nil {
		return r, err
	}
	setup := time.Since(t)
	cfg.log.Info("setup done", "strategy", st, "seconds", setup.Seconds(), "memory_per_node", m.memPerNode)
	prog.phase("warming up")
	if err := sleepUntil(ctx, time.Now().Add(s.Warmup.D())); err != nil {
		return r, err
	}
	coverage := 0.0
	if s.BaselineOn() {
		prog.phase("waiting for the baseline's meshes")
		if coverage, err = m.waitBaseline(ctx); err != nil {
			return r, err
		}
		if coverage < 1 {
			cfg.log.Warn("the baseline's meshes did not form in time", "strategy", st, "coverage", coverage)
		}
	}
	if err := m.traffic(ctx, prog); err != nil {
		return r, err
	}
	prog.phase("final catch-up")
	if err := m.finalCatchUp(ctx, prog); err != nil {
		return r, err
	}
	m.env.memPerNode, m.env.finals = m.memPerNode, m.finals()
	r = m.col.result()
	r.SetupSeconds = round2(setup.Seconds())
	if r.Baseline != nil {
		r.Baseline.MeshCoverage = round4(coverage)
	}
	return r, nil
}

// progress draws a one-line progress bar; a nil writer draws nothing.
type progress struct {
	w     io.Writer
	lines bool // one line per phase, no bar
	label string
	total time.Duration

	mu   sync.Mutex
	last time.Time
}

func newProgress(w io.Writer, lines bool, label string, total time.Duration) *progress {
	return &progress{w: w, lines: lines, label: label, total: total}
}

const barWidth = 30

func (p *progress) draw(line string, force bool) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lines {
		if force {
			fmt.Fprintf(p.w, "%s %s\n", p.label, strings.TrimSuffix(line, "\n"))
		}
		return
	}
	if !force && time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r\033[K%s %s", p.label, line)
}

func (p *progress) phase(format string, args ...any) {
	p.draw(fmt.Sprintf(format, args...)+"…", true)
}

func (p *progress) update(m *sim, at time.Duration) {
	if p.w == nil {
		return
	}
	frac := min(1, float64(at)/float64(p.total))
	n := int(frac * barWidth)
	sent, shown, _ := m.col.counts()
	online := 0
	for i := range m.s.Peers {
		if m.fab.isOnline(i) {
			online++
		}
	}
	p.draw(fmt.Sprintf("[%s%s] %3.0f%% %5.1fs/%v sent %d shown %d online %d/%d",
		strings.Repeat("#", n), strings.Repeat(".", barWidth-n), 100*frac, at.Seconds(), p.total, sent, shown, online, m.s.Peers), false)
}

func (p *progress) finalUpdate(m *sim, elapsed time.Duration) {
	_, _, left := m.col.counts()
	p.draw(fmt.Sprintf("final catch-up %4.1fs: %d deliveries missing", elapsed.Seconds(), left), false)
}

func (p *progress) done(r StrategyResult, err error) {
	if p.w == nil {
		return
	}
	if err != nil {
		p.draw("failed: "+err.Error()+"\n", true)
		return
	}
	line := fmt.Sprintf("done: delivery %.1f%%, eventual %.1f%%, p50 %.0f ms, p99 %.0f ms",
		100*r.DeliveryRatio, 100*r.EventualDeliveryRatio, r.LatencyMs.P50, r.LatencyMs.P99)
	if mg := r.Managed; mg != nil {
		line += fmt.Sprintf("; %d rotations, %d removals, key catch-up max %.0f ms, forward-secrecy violations %d",
			mg.Rotations, mg.Removals, mg.KeyCatchUpMs.Max, mg.ForwardSecrecy.Violations)
	}
	p.draw(line+"\n", true)
}
