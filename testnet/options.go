package testnet

import (
	"io"
	"log/slog"
)

type config struct {
	progress io.Writer
	lines    bool
	log      *slog.Logger
	nodeLog  *slog.Logger
}

// Option configures a run.
type Option func(*config) error

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
	c := &config{}
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
