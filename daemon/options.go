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
	homeCheck       time.Duration
}

// Option configures Start and Run.
type Option func(*config) error

// DefaultShutdownTimeout bounds Close: API calls in progress get up to
// half of it, and the node (its libp2p host and stores) the rest; a node
// that has not stopped by then is left behind (see Daemon.Close).
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

// WithShutdownTimeout bounds how long Close takes (DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("%w: shutdown timeout %v must be positive", ErrConfig, d)
		}
		c.shutdownTimeout = d
		return nil
	}
}
