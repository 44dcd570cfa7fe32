package testnet

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

type config struct {
	runs     int
	setup    time.Duration // processes: time to start and form groups (0: defaultSetup)
	progress io.Writer
	lines    bool
	log      *slog.Logger
	nodeLog  *slog.Logger
}

// Option configures a run.
type Option func(*config) error

// WithRuns runs the scenario n times (n ≥ 1), on seeds derived from its
// own (DeriveSeed), and summarises every figure over the runs.
func WithRuns(n int) Option {
	return func(c *config) error {
		if n < 1 || n > maxRuns {
			return fmt.Errorf("%w: runs %d: want 1 to %d", ErrScenario, n, maxRuns)
		}
		c.runs = n
		return nil
	}
}

// maxRuns bounds the repetitions of a scenario.
const maxRuns = 1000

// WithSetup gives real processes d to start and form their groups
// before the warm-up (default: 15 s, or 300 ms per node if more).
func WithSetup(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Second || d > time.Hour {
			return fmt.Errorf("%w: setup %v: want 1s to 1h", ErrScenario, d)
		}
		c.setup = d
		return nil
	}
}

// WithProgress draws a progress bar on w (a terminal) while running.
func WithProgress(w io.Writer) Option {
	return func(c *config) error { c.progress = w; return nil }
}

// WithProgressLines writes one line per phase and per finished strategy
// to w, without the bar (for logs and pipes).
func WithProgressLines(w io.Writer) Option {
	return func(c *config) error { c.progress, c.lines = w, true; return nil }
}

// WithLogger sets the simulator's logger (phases, dropped errors).
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.log = l; return nil } }

// WithNodeLogger sets the logger of every simulated node (default: none;
// hundreds of nodes log a lot).
func WithNodeLogger(l *slog.Logger) Option {
	return func(c *config) error { c.nodeLog = l; return nil }
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newConfig(opts []Option) (*config, error) {
	c := &config{runs: 1}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.log == nil {
		c.log = discard
	}
	if c.nodeLog == nil {
		c.nodeLog = discard
	}
	return c, nil
}
