package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/testnet"
)

// newTestnetAgentCmd is `meshnode testnet agent`: one node's agent of a
// plan (testnet.RunAgent), started by `testnet run --processes` or by
// Shadow from an exported shadow.yaml.
func newTestnetAgentCmd() *cobra.Command {
	var planPath, logPath string
	var nodeIdx int
	var startedAt time.Duration
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Drive one node's daemon through its control API along a plan's schedule, logging events (used by run --processes and Shadow)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := testnet.ReadPlan(planPath)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			return testnet.RunAgent(cmd.Context(), testnet.AgentConfig{Plan: p, Node: nodeIdx, StartedAt: startedAt, Log: f,
				Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))})
		},
	}
	cmd.Flags().StringVar(&planPath, "plan", "", "plan.json written by run --processes or export shadow")
	cmd.Flags().IntVar(&nodeIdx, "node", -1, "this agent's node index in the plan")
	cmd.Flags().DurationVar(&startedAt, "started-at", 0, "this process's start offset from the simulation's start")
	cmd.Flags().StringVar(&logPath, "log", "", "event log (JSON lines) to append to")
	for _, n := range []string{"plan", "node", "log"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// processFlags are run's flags for real processes.
type processFlags struct {
	processes, validate bool
	binary, work        string
	setup               time.Duration
}

func (f *processFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&f.processes, "processes", false, "run every node as a real meshnode daemon (one process each, TCP on loopback), driven by a per-node agent")
	fs.BoolVar(&f.validate, "validate", false, "run the scenario in memory and as processes, and report their differences")
	fs.StringVar(&f.binary, "binary", "", "meshnode binary the processes run (default: this one)")
	fs.StringVar(&f.work, "work", "", "directory for the processes' homes, logs and output (default: OUT/processes)")
	fs.DurationVar(&f.setup, "setup", 0, "processes: time to start the daemons and form the groups before the warm-up (default 15s, or 300ms per node)")
}

// runProcesses runs s as processes (and, with --validate, in memory too).
func (f *processFlags) run(cmd *cobra.Command, s testnet.Scenario, out string, opts []testnet.Option) (*testnet.Results, error) {
	bin := f.binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin = exe
	}
	work := f.work
	if work == "" {
		work = filepath.Join(out, "processes")
	}
	if f.setup > 0 {
		opts = append(opts, testnet.WithSetup(f.setup))
	}
	if s.BaselineOn() && (f.processes || f.validate) {
		fmt.Fprintln(cmd.ErrOrStderr(), "note: the gossipsub baseline runs only in memory; processes report it as not measured")
	}
	proc, err := testnet.RunProcesses(cmd.Context(), s, bin, work, opts...)
	if err != nil {
		return nil, err
	}
	if !f.validate {
		return proc, nil
	}
	mem, err := testnet.Run(cmd.Context(), s, opts...)
	if err != nil {
		return nil, err
	}
	// The report of the processes run carries both runs (a copy of
	// itself, without the validation, so results.json is not circular).
	self := *proc
	proc.Validation = &testnet.Validation{Memory: mem, Processes: &self}
	return proc, nil
}

// newTestnetExportCmd is `meshnode testnet export shadow DIR`.
func newTestnetExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export a scenario for another simulator (shadow)",
		Args:  cobra.NoArgs,
	}
	var f scenarioFlags
	var strategy, binary string
	var setup time.Duration
	var basePort int
	shadow := &cobra.Command{
		Use:   "shadow DIR",
		Short: "Write DIR/shadow.yaml and DIR/network.gml: one Shadow host per node running `meshnode run` and its agent",
		Long: "Writes a configuration for the Shadow discrete-event network simulator: network.gml, a graph built from\n" +
			"the scenario's link (latency, jitter, loss; bandwidth as each host's up and down bandwidth), and\n" +
			"shadow.yaml with one host per node, whose processes are `meshnode run` (one per online period: churn\n" +
			"stops the daemon) and `meshnode testnet agent`, plus the homes, plan.json and the directories the\n" +
			"agents log to. After `shadow shadow.yaml`, `meshnode testnet collect DIR` makes results.json and\n" +
			"report.html from the agents' logs. One strategy per export (--strategy).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := f.scenario(cmd.Flags())
			if err != nil {
				return err
			}
			st, err := testnet.ParseStrategy(strategy)
			if err != nil {
				return err
			}
			bin := binary
			if bin == "" {
				if bin, err = os.Executable(); err != nil {
					return err
				}
			}
			ex, err := testnet.ExportShadow(args[0], s, st, testnet.ShadowOptions{Binary: bin, Setup: setup, BasePort: basePort})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s: %d hosts, stop time %v\nrun: shadow %s\nthen: meshnode testnet collect %s\n",
				ex.Config, ex.Graph, ex.Hosts, ex.StopTime, ex.Config, args[0])
			return nil
		},
	}
	f.register(shadow.Flags())
	shadow.Flags().StringVar(&strategy, "strategy", "server", "the strategy to export: server, bot, peers or hybrid")
	shadow.Flags().StringVar(&binary, "binary", "", "absolute path of the meshnode binary the hosts run (default: this one)")
	shadow.Flags().DurationVar(&setup, "setup", 0, "time to start the daemons and form the groups before the warm-up (default 15s, or 300ms per node)")
	shadow.Flags().IntVar(&basePort, "base-port", 20000, "node i listens on TCP port base-port + i")
	cmd.AddCommand(shadow)
	return cmd
}

// newTestnetCollectCmd is `meshnode testnet collect DIR`.
func newTestnetCollectCmd() *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "collect DIR",
		Short: "Make DIR/results.json and DIR/report.html from the agents' logs of an exported plan (after Shadow ran it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := testnet.CollectResults(filepath.Join(args[0], "plan.json"), mode)
			if err != nil {
				return err
			}
			if err := testnet.Write(args[0], res); err != nil {
				return err
			}
			printTable(cmd.OutOrStdout(), res)
			fmt.Fprintf(cmd.OutOrStdout(), "\nwrote %s/results.json and %s/report.html\n", args[0], args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "shadow", "the mode the results are labelled with (shadow, processes)")
	return cmd
}
