package testnet

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Run validates the scenario, draws its schedule from the seed and runs
// every strategy of it in turn on that schedule, each on a fresh network
// of fresh nodes.
func Run(ctx context.Context, s Scenario, opts ...Option) (*Results, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	sch := NewSchedule(&s)
	res := &Results{
		Scenario: s,
		Schedule: summarise(sch, len(s.Partitions)),
		Machine:  Machine{CPUs: runtime.NumCPU(), AvailableMemory: availableMemory(), GoVersion: runtime.Version()},
		Started:  time.Now().UTC(),
	}
	for i, st := range s.Strategies {
		prog := newProgress(cfg.progress, cfg.lines, fmt.Sprintf("[%d/%d %s]", i+1, len(s.Strategies), st), s.Duration.D())
		r, err := runStrategy(ctx, &s, sch, st, cfg, prog)
		prog.done(r, err)
		if err != nil {
			return nil, fmt.Errorf("testnet: strategy %s: %w", st, err)
		}
		res.Strategies = append(res.Strategies, r)
	}
	res.Elapsed = round2(time.Since(res.Started).Seconds())
	return res, nil
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
	prog.phase("starting %d nodes and %d groups", s.Peers+infraCount(s, st), len(sch.Groups))
	if err := m.setup(ctx); err != nil {
		return r, err
	}
	setup := time.Since(t)
	cfg.log.Info("setup done", "strategy", st, "seconds", setup.Seconds(), "memory_per_node", m.memPerNode)
	prog.phase("warming up")
	if err := sleepUntil(ctx, time.Now().Add(s.Warmup.D())); err != nil {
		return r, err
	}
	if err := m.traffic(ctx, prog); err != nil {
		return r, err
	}
	prog.phase("final catch-up")
	if err := m.finalCatchUp(ctx, prog); err != nil {
		return r, err
	}
	r = m.col.result()
	r.SetupSeconds = round2(setup.Seconds())
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
