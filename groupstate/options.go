package groupstate

import (
	"fmt"
	"time"
)

// Option adjusts NewGroup.
type Option func(*config) error

type config struct {
	history HistoryMode
	created time.Time
}

func defaultConfig() config {
	return config{history: HistoryShared}
}

// WithHistory sets whether newcomers receive past read secrets
// (HistoryShared, the default) or only see messages from their join on
// (HistoryFromJoin).
func WithHistory(m HistoryMode) Option {
	return func(c *config) error {
		if !m.valid() {
			return fmt.Errorf("%w: history mode %d", ErrGroupMalformed, m)
		}
		c.history = m
		return nil
	}
}

// WithCreated sets the creation time instead of time.Now (for imports and
// reproducible tests).
func WithCreated(t time.Time) Option {
	return func(c *config) error {
		c.created = t
		return nil
	}
}
