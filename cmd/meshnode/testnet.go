package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/meshnode/meshnode/testnet"
)

// newTestnetCmd is `meshnode testnet`: the simulator researchers run
// (package testnet). N real nodes in this process over an in-memory
// network, compared across hosting strategies.
func newTestnetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Simulate many real nodes in memory and compare hosting strategies (server, bot, peers, hybrid)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newTestnetRunCmd(), newTestnetCompareCmd(), newTestnetScheduleCmd())
	return cmd
}

// scenarioFlags are the flags that override a scenario file's keys.
type scenarioFlags struct {
	file                          string
	seed                          uint64
	duration, catchup, deadline   time.Duration
	peers, hosts, bots, peerHosts int
	groups, groupSize             int
	strategies                    []string
	rate                          float64
	size                          int
	churn                         float64
	online, offline               time.Duration
	latency, jitter               time.Duration
	bandwidth                     int64
	loss                          float64
	noBaseline                    bool
}

func (f *scenarioFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.file, "scenario", "", "scenario file (JSON; see testnet/scenarios); flags below override its keys")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of groups, churn, traffic and partitions")
	fs.DurationVar(&f.duration, "duration", 0, "traffic phase duration")
	fs.DurationVar(&f.catchup, "catchup", 0, "limit of the final catch-up phase")
	fs.DurationVar(&f.deadline, "deadline", 0, "delivery deadline for the delivery ratio")
	fs.IntVar(&f.peers, "peers", 0, "member nodes")
	fs.IntVar(&f.hosts, "hosts", 0, "community hosts (server, hybrid)")
	fs.IntVar(&f.bots, "bots", 0, "bots (bot strategy)")
	fs.IntVar(&f.peerHosts, "peer-hosts", 0, "members hosting each group (peers, hybrid)")
	fs.IntVar(&f.groups, "groups", 0, "number of groups (replaces the file's groups, with --group-size)")
	fs.IntVar(&f.groupSize, "group-size", 0, "members per group (replaces the file's groups, with --groups)")
	fs.StringSliceVar(&f.strategies, "strategies", nil, "strategies to run: server,bot,peers,hybrid")
	fs.Float64Var(&f.rate, "rate", 0, "messages per second per group")
	fs.IntVar(&f.size, "size", 0, "message size in bytes")
	fs.Float64Var(&f.churn, "churn", 0, "fraction of members that churn")
	fs.DurationVar(&f.online, "online", 0, "mean online period of churning members")
	fs.DurationVar(&f.offline, "offline", 0, "mean offline period of churning members")
	fs.DurationVar(&f.latency, "latency", 0, "link latency")
	fs.DurationVar(&f.jitter, "jitter", 0, "link jitter (uniform, added per write)")
	fs.Int64Var(&f.bandwidth, "bandwidth", 0, "link bandwidth in bytes per second (0: unlimited)")
	fs.Float64Var(&f.loss, "loss", 0, "segment loss probability (modelled as retransmission delay)")
	fs.BoolVar(&f.noBaseline, "no-baseline", false, "skip the plain gossipsub baseline")
}

// scenario loads the file (or the defaults) and applies the flags given.
func (f *scenarioFlags) scenario(fs *pflag.FlagSet) (testnet.Scenario, error) {
	s := testnet.DefaultScenario()
	if f.file != "" {
		var err error
		if s, err = testnet.Load(f.file); err != nil {
			return s, err
		}
	}
	set := fs.Changed
	if set("seed") {
		s.Seed = f.seed
	}
	if set("duration") {
		s.Duration = testnet.Duration(f.duration)
	}
	if set("catchup") {
		s.CatchUp = testnet.Duration(f.catchup)
	}
	if set("deadline") {
		s.Deadline = testnet.Duration(f.deadline)
	}
	if set("peers") {
		s.Peers = f.peers
	}
	if set("hosts") {
		s.Hosts = f.hosts
	}
	if set("bots") {
		s.Bots = f.bots
	}
	if set("peer-hosts") {
		s.PeerHosts = f.peerHosts
	}
	if set("groups") || set("group-size") {
		g := testnet.GroupSpec{Count: 1, Size: s.Peers}
		if len(s.Groups) > 0 {
			g = s.Groups[0]
		}
		if set("groups") {
			g.Count = f.groups
		}
		if set("group-size") {
			g.Size = f.groupSize
		}
		s.Groups = []testnet.GroupSpec{g}
	}
	if set("strategies") {
		s.Strategies = nil
		for _, name := range f.strategies {
			st, err := testnet.ParseStrategy(name)
			if err != nil {
				return s, err
			}
			s.Strategies = append(s.Strategies, st)
		}
	}
	if set("rate") {
		s.Traffic.Rate = f.rate
	}
	if set("size") {
		s.Traffic.Size = f.size
	}
	if set("churn") {
		s.Churn.Fraction = f.churn
	}
	if set("online") {
		s.Churn.Online = testnet.Duration(f.online)
	}
	if set("offline") {
		s.Churn.Offline = testnet.Duration(f.offline)
	}
	if set("latency") {
		s.Link.Latency = testnet.Duration(f.latency)
	}
	if set("jitter") {
		s.Link.Jitter = testnet.Duration(f.jitter)
	}
	if set("bandwidth") {
		s.Link.Bandwidth = f.bandwidth
	}
	if set("loss") {
		s.Link.Loss = f.loss
	}
	if f.noBaseline {
		off := false
		s.Baseline = &off
	}
	return s, s.Validate()
}

func newTestnetRunCmd() *cobra.Command {
	var f scenarioFlags
	var out string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run a scenario and write DIR/results.json and DIR/report.html",
		Long: "Runs every strategy of the scenario, one after the other, on the schedule drawn from its seed:\n" +
			"real meshnode nodes (in-memory stores) over libp2p's mocknet, with the link model, churn and\n" +
			"partitions of the scenario, in wall-clock time. Writes results.json (machine-readable) and\n" +
			"report.html (plots) into --out, and prints a summary table.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.scenario(cmd.Flags())
			if err != nil {
				return err
			}
			if out == "" {
				return fmt.Errorf("%w: --out DIR is required", testnet.ErrScenario)
			}
			var opts []testnet.Option
			if !quiet {
				opts = append(opts, progressOption(cmd.ErrOrStderr()))
			}
			res, err := testnet.Run(cmd.Context(), s, opts...)
			if err != nil {
				return err
			}
			if err := testnet.Write(out, res); err != nil {
				return err
			}
			printTable(cmd.OutOrStdout(), res)
			fmt.Fprintf(cmd.OutOrStdout(), "\nwrote %s/results.json and %s/report.html\n", out, out)
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "output directory (created if needed)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	return cmd
}

func newTestnetCompareCmd() *cobra.Command {
	var f scenarioFlags
	var out string
	cmd := &cobra.Command{
		Use:   "compare",
		Short: "Run several strategies on the same seed and print a comparison table",
		Long: "Like run, for the strategies of --strategies (default: all four) on one seed, printing a\n" +
			"table of delivery, latency, catch-up, cost and storage per strategy. With --out, also writes\n" +
			"results.json and report.html.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("strategies") {
				f.strategies = []string{"server", "bot", "peers", "hybrid"}
				_ = cmd.Flags().Set("strategies", strings.Join(f.strategies, ","))
			}
			s, err := f.scenario(cmd.Flags())
			if err != nil {
				return err
			}
			res, err := testnet.Run(cmd.Context(), s, progressOption(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			if out != "" {
				if err := testnet.Write(out, res); err != nil {
					return err
				}
			}
			printTable(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "also write results.json and report.html here")
	return cmd
}

func newTestnetScheduleCmd() *cobra.Command {
	var f scenarioFlags
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Print the schedule a scenario's seed gives (groups, churn, every event) as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := f.scenario(cmd.Flags())
			if err != nil {
				return err
			}
			return writeJSONLine(cmd.OutOrStdout(), testnet.NewSchedule(&s))
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// progressOption draws the progress bar on a terminal; elsewhere (a log
// file, a pipe) only each strategy's outcome line.
func progressOption(w io.Writer) testnet.Option {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return testnet.WithProgress(w)
	}
	return testnet.WithProgressLines(w)
}

func printTable(w io.Writer, res *testnet.Results) {
	fmt.Fprintf(w, "scenario %q, seed %d: %d groups, %d messages, %d churning members, %d partitions\n\n",
		res.Scenario.Name, res.Scenario.Seed, res.Schedule.Groups, res.Schedule.Messages, res.Schedule.Churned, res.Schedule.Partitions)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tnodes\tdelivery\teventual\tp50 ms\tp90 ms\tp99 ms\tgossipsub p50/p99\tcatch-up p50 ms\tdup/msg\tgaps det/fill/open\tKiB/node\tKiB/host\tMiB/node\t")
	for _, r := range res.Strategies {
		base := "-"
		if r.Baseline != nil {
			base = fmt.Sprintf("%.0f/%.0f", r.Baseline.LatencyMs.P50, r.Baseline.LatencyMs.P99)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.1f%%\t%.0f\t%.0f\t%.0f\t%s\t%.0f\t%.1f\t%d/%d/%d\t%.0f\t%.0f\t%.1f\t\n",
			r.Strategy, r.Nodes, 100*r.DeliveryRatio, 100*r.EventualDeliveryRatio,
			r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, base, r.CatchUpMs.P50,
			r.Duplicates.StoredPerMessage, r.Gaps.Detected, r.Gaps.Filled, r.Gaps.Open,
			r.BytesPerNode/1024, r.Storage.MeanBytes/1024, float64(r.MemoryPerNode)/(1<<20))
	}
	tw.Flush()
}
