package testnet

import "errors"

var (
	// ErrScenario: the scenario file or a flag is malformed or asks for
	// something impossible. The message names the key and the rule.
	ErrScenario = errors.New("testnet: invalid scenario")
	// ErrTooLarge: the scenario would not fit this machine's memory.
	ErrTooLarge = errors.New("testnet: scenario too large for this machine")
)
