package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/bench"
	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/internal/errtext"
	"github.com/meshnode/meshnode/keymgmt"
)

func main() {
	if bench.ChildRole() != "" {
		// A process `meshnode bench attack` started for its host.
		os.Exit(bench.RunChild(os.Stdin, os.Stdout))
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status: 0 on
// success, 1 on any error (printed to stderr).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if cmd, err := root.ExecuteContextC(ctx); err != nil {
		fmt.Fprintf(stderr, "meshnode: %s\n", errtext.Strip(explain(err).Error()))
		var ue *usageError
		if errors.As(err, &ue) {
			// A command line that does not parse: show how it goes.
			fmt.Fprintf(stderr, "usage: %s\nrun '%s --help' for more\n", cmd.UseLine(), cmd.CommandPath())
		}
		return 1
	}
	return 0
}

// usageError is a command line that does not parse (unknown flag, wrong
// number of arguments): run prints the command's usage line after it.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// markUsageErrors makes the argument and flag errors of cmd and its
// subcommands usage errors.
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return &usageError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}

// globals are the flags every command shares.
type globals struct {
	home           string
	stdout, stderr io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "meshnode",
		Short:         "A peer-to-peer node for end-to-end encrypted group conversations",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       daemon.Version(),
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.home, "home", "", "home directory (default $"+daemon.EnvHome+" or ~/.meshnode)")
	root.AddCommand(newInitCmd(g), newRunCmd(g), newIDCmd(g), newStatusCmd(g))
	root.AddCommand(newGroupCmd(g), newSendCmd(g), newMessagesCmd(g), newFetchCmd(g))
	root.AddCommand(newReactCmd(g), newEditCmd(g), newDeleteCmd(g), newReadCmd(g), newDownloadCmd(g), newSearchCmd(g))
	root.AddCommand(newBenchCmd())
	root.AddCommand(newTestnetCmd())
	root.AddCommand(newAliasCmd(g), newContactCmd(g))
	root.AddCommand(newKeyPackageCmd(g))
	root.AddCommand(newVersionCmd(g), newOutboxCmd(g))
	markUsageErrors(root)
	root.AddCommand(newUICmd(g), newVerifyCmd(g))
	return root
}

// homeDir is --home or its default.
func (g *globals) homeDir() (string, error) {
	if g.home != "" {
		return g.home, nil
	}
	return daemon.DefaultHomeDir()
}

// call opens the home and calls its running daemon with fn. A daemon
// that is not running is reported with how to start it.
func (g *globals) call(fn func(*api.Client) error) error {
	dir, err := g.homeDir()
	if err != nil {
		return err
	}
	h, err := daemon.OpenHome(dir)
	if err != nil {
		return err
	}
	c, err := h.Client()
	if err == nil {
		defer c.Close()
		err = fn(c)
	}
	if errors.Is(err, api.ErrDaemonNotRunning) {
		return fmt.Errorf("%w on home %s; start one with:\n  meshnode run --home %s", api.ErrDaemonNotRunning, h.Dir(), h.Dir())
	}
	return err
}

// explain adds advice to errors users meet often.
func explain(err error) error {
	switch {
	case errors.Is(err, keymgmt.ErrWrongPassphrase):
		return fmt.Errorf("%w\nthe passphrase does not open this keystore (it comes from $%s when set)", err, keymgmt.EnvPassphrase)
	case errors.Is(err, api.ErrUnauthorized):
		return fmt.Errorf("%w\nthe daemon refused the token in api.token: is it the daemon of this home?", err)
	}
	return err
}
