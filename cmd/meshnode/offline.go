package main

import (
	"errors"
	"fmt"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
)

// Reading without the daemon (issue 18, item 7): messages, group list
// and search open the home's member database directly when no daemon
// runs, with the keystore passphrase, holding the home's lock meanwhile
// (so a daemon cannot start on it and the database never has two
// writers).

// orOffline runs online; if no daemon answers, it says so and runs
// offline on the home's database instead.
func (g *globals) orOffline(online func() error, offline func(*daemon.Offline) error) error {
	notRunning := online()
	if !errors.Is(notRunning, api.ErrDaemonNotRunning) {
		return notRunning
	}
	dir, err := g.homeDir()
	if err != nil {
		return err
	}
	h, err := daemon.OpenHome(dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(g.stderr, "note: no daemon runs on this home: reading its database directly, as the node last stored it "+
		"(it asks for the keystore passphrase; start the daemon to fetch what is new)")
	o, err := daemon.OpenOffline(h, func() ([]byte, error) { return readPassphrase(g.stderr, false) })
	if err != nil {
		// Say how to start the daemon too (notRunning does).
		return fmt.Errorf("%w\nand reading the database directly failed: %w", notRunning, err)
	}
	defer o.Close()
	return offline(o)
}
