package daemon

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/meshnode/meshnode/node"
)

type config struct {
	log             *slog.Logger
	nodeParams      func(*node.Params)
	shutdownTimeout time.Duration
	heartbeat       time.Duration
	followBuffer    int
}

// Option configures Start and Run.
type Option func(*config) error

// DefaultShutdownTimeout bounds how long Close waits for API calls in
// progress.
const DefaultShutdownTimeout = 10 * time.Second

// defaultHeartbeat is the period of blank lines on idle streams.
const defaultHeartbeat = 15 * time.Second

// WithLogger sets the daemon's logger (also given to the node).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.log = l; return nil }
}

// WithNodeParams adjusts the node parameters derived from Config before
// the node starts (tests use an in-memory store; embedders tune limits).
func WithNodeParams(fn func(*node.Params)) Option {
	return func(c *config) error { c.nodeParams = fn; return nil }
}

// WithShutdownTimeout bounds how long Close waits for API calls in
// progress before cutting them off.
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: shutdown timeout %v must be positive", ErrConfig, d)
		}
		c.shutdownTimeout = d
		return nil
	}
}
