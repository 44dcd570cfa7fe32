package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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
	cmd.AddCommand(newTestnetRunCmd(), newTestnetCompareCmd(), newTestnetScheduleCmd(), newTestnetReportCmd(), newTestnetAgentCmd(), newTestnetExportCmd(), newTestnetCollectCmd())
	return cmd
}

// scenarioFlags are the flags that override a scenario file's keys: one
// per key (scenarioFlagKeys in the tests checks that none is missing).
type scenarioFlags struct {
	file                                string
	name                                string
	seed                                uint64
	duration, warmup, catchup, deadline time.Duration
	catchupInterval                     time.Duration
	peers, hosts, bots, peerHosts       int
	groups                              string
	groupSize                           int
	strategies                          []string
	rate                                float64
	size                                int
	churn                               float64
	online, offline                     time.Duration
	distribution                        string
	latency, jitter                     time.Duration
	bandwidth                           int64
	loss                                float64
	partitions                          string
	noBaseline, managed                 bool
	removals, rotations                 string
	removeEvery, rotateEvery            time.Duration
}

func (f *scenarioFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.file, "scenario", "", "scenario file: JSON, or YAML when it ends in .yaml or .yml (see testnet/scenarios); the other flags override its keys")
	fs.StringVar(&f.name, "name", "", "scenario name (shown in the report)")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of groups, churn, traffic, partitions and removed members")
	fs.DurationVar(&f.duration, "duration", 0, "traffic phase duration")
	fs.DurationVar(&f.warmup, "warmup", 0, "wait between forming the groups and the traffic")
	fs.DurationVar(&f.catchup, "catchup", 0, "limit of the final catch-up phase")
	fs.DurationVar(&f.deadline, "deadline", 0, "delivery deadline for the delivery ratio")
	fs.DurationVar(&f.catchupInterval, "catchup-interval", 0, "members' background catch-up period")
	fs.IntVar(&f.peers, "peers", 0, "member nodes")
	fs.IntVar(&f.hosts, "hosts", 0, "community hosts (server, hybrid)")
	fs.IntVar(&f.bots, "bots", 0, "bots (bot strategy)")
	fs.IntVar(&f.peerHosts, "peer-hosts", 0, "members hosting each group (peers, hybrid)")
	fs.StringVar(&f.groups, "groups", "", "groups, replacing the file's: a count N (of --group-size members, default the\n"+
		"file's first size) or COUNTxSIZE[,COUNTxSIZE...], such as 10x20,1x100")
	fs.IntVar(&f.groupSize, "group-size", 0, "members per group (with --groups N, or alone: the file's first count)")
	fs.StringSliceVar(&f.strategies, "strategies", nil, "strategies to run: server,bot,peers,hybrid")
	fs.Float64Var(&f.rate, "rate", 0, "messages per second per group")
	fs.IntVar(&f.size, "size", 0, "message size in bytes")
	fs.Float64Var(&f.churn, "churn", 0, "fraction of members that churn")
	fs.DurationVar(&f.online, "online", 0, "mean online period of churning members")
	fs.DurationVar(&f.offline, "offline", 0, "mean offline period of churning members")
	fs.StringVar(&f.distribution, "churn-distribution", "", "distribution of churn periods: exponential or fixed")
	fs.DurationVar(&f.latency, "latency", 0, "link latency")
	fs.DurationVar(&f.jitter, "jitter", 0, "link jitter (uniform, added per write)")
	fs.Int64Var(&f.bandwidth, "bandwidth", 0, "link bandwidth in bytes per second (0: unlimited)")
	fs.Float64Var(&f.loss, "loss", 0, "segment loss probability (modelled as retransmission delay)")
	fs.StringVar(&f.partitions, "partitions", "", "partitions, replacing the file's: AT/DURATION[/SPLIT],... such as 5s/10s/0.5,20s/5s\n"+
		"(SPLIT: fraction of members on the infrastructure's side, default 0.5; \"\": none)")
	fs.BoolVar(&f.noBaseline, "no-baseline", false, "skip the plain gossipsub baseline (--no-baseline=false: run it)")
	fs.BoolVar(&f.managed, "managed", false, "run every group as a managed group (implied by removals and rotations)")
	fs.StringVar(&f.removals, "removals", "", "member removals by the manager, replacing the file's: AT[/GROUP],... such as 8s,20s/1\n"+
		"(no GROUP: in every group; groups are numbered from 0 in the order of --groups; \"\": none)")
	fs.StringVar(&f.rotations, "rotations", "", "key rotations by the manager, replacing the file's: AT[/GROUP],... such as 14s (\"\": none)")
	fs.DurationVar(&f.removeEvery, "remove-every", 0, "also remove a member from every group at this period (at D, 2D, ... before --duration)")
	fs.DurationVar(&f.rotateEvery, "rotate-every", 0, "also rotate every group's keys at this period (at D, 2D, ... before --duration)")
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
	if err := f.apply(fs, &s); err != nil {
		return s, err
	}
	return s, s.Validate()
}

// apply overrides the keys of s whose flags were given.
func (f *scenarioFlags) apply(fs *pflag.FlagSet, s *testnet.Scenario) error {
	set := fs.Changed
	flagErr := func(name string, err error) error { return fmt.Errorf("--%s: %w", name, err) }
	if set("name") {
		s.Name = f.name
	}
	if set("seed") {
		s.Seed = f.seed
	}
	if set("duration") {
		s.Duration = testnet.Duration(f.duration)
	}
	if set("warmup") {
		s.Warmup = testnet.Duration(f.warmup)
	}
	if set("catchup") {
		s.CatchUp = testnet.Duration(f.catchup)
	}
	if set("deadline") {
		s.Deadline = testnet.Duration(f.deadline)
	}
	if set("catchup-interval") {
		s.CatchUpInterval = testnet.Duration(f.catchupInterval)
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
	if err := f.applyGroups(set, s); err != nil {
		return err
	}
	if set("strategies") {
		s.Strategies = nil
		for _, name := range f.strategies {
			st, err := testnet.ParseStrategy(name)
			if err != nil {
				return flagErr("strategies", err)
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
	if set("churn-distribution") {
		s.Churn.Distribution = f.distribution
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
	if set("partitions") {
		p, err := testnet.ParsePartitions(f.partitions)
		if err != nil {
			return flagErr("partitions", err)
		}
		s.Partitions = p
	}
	if set("no-baseline") {
		on := !f.noBaseline
		s.Baseline = &on
	}
	if set("managed") {
		s.Managed = f.managed
	}
	for _, l := range []struct {
		list, every string
		text        string
		period      time.Duration
		ops         *[]testnet.ManageOp
	}{
		{"removals", "remove-every", f.removals, f.removeEvery, &s.Removals},
		{"rotations", "rotate-every", f.rotations, f.rotateEvery, &s.Rotations},
	} {
		if set(l.list) {
			ops, err := testnet.ParseManageOps(l.text)
			if err != nil {
				return flagErr(l.list, err)
			}
			*l.ops = ops
		}
		if set(l.every) {
			ops, err := testnet.Every(l.period, s.Duration.D())
			if err != nil {
				return flagErr(l.every, err)
			}
			*l.ops = append(*l.ops, ops...)
		}
	}
	return nil
}

// applyGroups applies --groups and --group-size: --groups N and
// --group-size S give N groups of S members, each alone changes the
// file's first group spec, and --groups COUNTxSIZE,... replaces the list.
func (f *scenarioFlags) applyGroups(set func(string) bool, s *testnet.Scenario) error {
	if !set("groups") && !set("group-size") {
		return nil
	}
	g := testnet.GroupSpec{Count: 1, Size: s.Peers}
	if len(s.Groups) > 0 {
		g = s.Groups[0]
	}
	if set("groups") {
		if n, err := strconv.Atoi(strings.TrimSpace(f.groups)); err == nil {
			g.Count = n
		} else {
			specs, err := testnet.ParseGroups(f.groups)
			if err != nil {
				return fmt.Errorf("--groups: %w", err)
			}
			if set("group-size") {
				return fmt.Errorf("--groups %s gives each group's size: %w: leave out --group-size", f.groups, testnet.ErrScenario)
			}
			s.Groups = specs
			return nil
		}
	}
	if set("group-size") {
		g.Size = f.groupSize
	}
	s.Groups = []testnet.GroupSpec{g}
	return nil
}

func newTestnetRunCmd() *cobra.Command {
	var f scenarioFlags
	var out string
	var quiet bool
	var runs int
	var pf processFlags
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
			opts := []testnet.Option{testnet.WithRuns(runs)}
			if !quiet {
				opts = append(opts, progressOption(cmd.ErrOrStderr()))
			}
			var res *testnet.Results
			if pf.processes || pf.validate {
				res, err = pf.run(cmd, s, out, opts)
			} else {
				res, err = testnet.Run(cmd.Context(), s, opts...)
			}
			if err != nil {
				return err
			}
			if err := testnet.Write(out, res); err != nil {
				return err
			}
			printTable(cmd.OutOrStdout(), res)
			if res.PeakRSS > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "\npeak RSS %.1f MiB (%.2f MiB per node), elapsed %.0f s, load average %.1f → %.1f\n",
					float64(res.PeakRSS)/(1<<20), float64(res.PeakRSSPerNode)/(1<<20), res.Elapsed, res.Load[0], res.Load[1])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nwrote %s/results.json and %s/report.html\n", out, out)
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", "", "output directory (created if needed)")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress bar")
	cmd.Flags().IntVar(&runs, "runs", 1, "run the scenario N times on seeds derived from --seed; every figure gets its mean and 95% confidence interval")
	pf.register(cmd)
	return cmd
}

func newTestnetCompareCmd() *cobra.Command {
	var f scenarioFlags
	var out string
	var runs int
	var all, asJSON bool
	cmd := &cobra.Command{
		Use:   "compare [A/results.json B/results.json]",
		Short: "Compare two results files (differences and their significance), or run strategies side by side",
		Long: "With two results files (two versions of meshnode, two scenarios, memory and processes):\n" +
			"prints, per strategy both have and per figure, A and B (mean ± half-width of the 95% confidence\n" +
			"interval), B − A with its 95% interval, the relative difference and Welch's t-test p-value. Runs\n" +
			"made with --runs 5 or more give meaningful intervals; with one run per file the significance is n/a.\n" +
			"--all compares every figure of results.json, not only the headline ones.\n\n" +
			"Without files: like run, for the strategies of --strategies (default: all four) on one seed,\n" +
			"printing a table per strategy; with --out, also writes results.json and report.html.",
		Args: cobra.MatchAll(cobra.RangeArgs(0, 2), func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				return fmt.Errorf("%w: compare takes two results files (A and B), or none", testnet.ErrScenario)
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				return compareFiles(cmd, args[0], args[1], all, asJSON)
			}
			if !cmd.Flags().Changed("strategies") {
				f.strategies = []string{"server", "bot", "peers", "hybrid"}
				_ = cmd.Flags().Set("strategies", strings.Join(f.strategies, ","))
			}
			s, err := f.scenario(cmd.Flags())
			if err != nil {
				return err
			}
			res, err := testnet.Run(cmd.Context(), s, testnet.WithRuns(runs), progressOption(cmd.ErrOrStderr()))
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
	cmd.Flags().IntVar(&runs, "runs", 1, "run the scenario N times on seeds derived from --seed")
	cmd.Flags().BoolVar(&all, "all", false, "with two files: compare every figure, not only the headline ones")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with two files: print the comparison as JSON")
	return cmd
}

// compareFiles prints the comparison of two results files.
func compareFiles(cmd *cobra.Command, pathA, pathB string, all, asJSON bool) error {
	for _, name := range []string{"scenario", "out", "runs"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("%w: --%s does not apply to comparing two results files", testnet.ErrScenario, name)
		}
	}
	a, err := testnet.ReadResults(pathA)
	if err != nil {
		return err
	}
	b, err := testnet.ReadResults(pathB)
	if err != nil {
		return err
	}
	rows := testnet.Compare(a, b, all)
	if asJSON {
		return writeJSONLine(cmd.OutOrStdout(), rows)
	}
	testnet.WriteComparison(cmd.OutOrStdout(), pathA, pathB, a, b, rows)
	return nil
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

func newTestnetReportCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "report RESULTS.json",
		Short: "Write report.html again from a results.json (into --out, default the file's directory)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := testnet.ReadResults(args[0])
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Dir(args[0])
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			f, err := os.Create(filepath.Join(out, "report.html"))
			if err != nil {
				return err
			}
			if err := testnet.WriteReport(f, res); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", filepath.Join(out, "report.html"))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory (default: the results file's)")
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
	fmt.Fprintf(w, "scenario %q, seed %d: %d groups, %d messages, %d churning members, %d partitions",
		res.Scenario.Name, res.Scenario.Seed, res.Schedule.Groups, res.Schedule.Messages, res.Schedule.Churned, res.Schedule.Partitions)
	if res.Runs > 1 {
		fmt.Fprintf(w, "; %d runs (seeds %v): means ± half-width of the 95%% confidence interval", res.Runs, res.Seeds)
	}
	fmt.Fprint(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tnodes\tdelivery\teventual\tp50 ms\tp99 ms\tbaseline delivery\tbaseline p50/p99 ms\tp99 / baseline p99\tcatch-up p50/p99 ms\tdup/msg\tgaps det/fill/open\tKiB/node\tMiB/node\t")
	for _, r := range res.Strategies {
		est := func(path string, scale float64, format string) string {
			e, ok := r.Stats[path]
			if !ok || e.N == 0 {
				return "n/a"
			}
			v := fmt.Sprintf(format, scale*e.Mean)
			if e.HasCI() {
				v += " ± " + fmt.Sprintf(format, scale**e.Half)
			}
			return v
		}
		base, baseLat, ratio := "-", "-", "-"
		if r.Baseline != nil {
			base = est("baseline.delivery_ratio", 100, "%.1f") + "%"
			baseLat = est("baseline.latency_ms.p50", 1, "%.0f") + "/" + est("baseline.latency_ms.p99", 1, "%.0f")
			if r.LatencyMs.N > 0 && r.Baseline.LatencyMs.P99 > 0 {
				ratio = fmt.Sprintf("%.2f", r.LatencyMs.P99/r.Baseline.LatencyMs.P99)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s%%\t%s%%\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%.1f\t%d/%d/%d\t%.0f\t%.1f\t\n",
			r.Strategy, r.Nodes, est("delivery_ratio", 100, "%.1f"), est("eventual_delivery_ratio", 100, "%.1f"),
			est("latency_ms.p50", 1, "%.0f"), est("latency_ms.p99", 1, "%.0f"), base, baseLat, ratio,
			est("catchup_ms.p50", 1, "%.0f"), est("catchup_ms.p99", 1, "%.0f"),
			r.Duplicates.StoredPerMessage, r.Gaps.Detected, r.Gaps.Filled, r.Gaps.Open,
			r.BytesPerNode/1024, float64(r.MemoryPerNode)/(1<<20))
	}
	tw.Flush()
}
