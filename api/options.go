package api

import (
	"fmt"
	"time"
)

type config struct {
	timeout time.Duration
}

// Option configures a Client.
type Option func(*config) error

// DefaultTimeout bounds a non-streaming call whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// WithTimeout bounds each non-streaming call (streams are bounded only by
// their context).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("api: timeout %v must be positive", d)
		}
		c.timeout = d
		return nil
	}
}
