package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/bench"
)

// newBenchSyncCmd is `meshnode bench sync`: anti-entropy sync between two
// hosts (real libp2p over loopback) whose stores differ by d envelopes.
func newBenchSyncCmd() *cobra.Command {
	p := bench.DefaultSyncParams()
	var asJSON, onDisk, both, progress bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Measure host-to-host sync: reconciliation bytes and rounds, transfer bytes, time, peak memory",
		Long: "Runs one sync session per --n and --d between two local hosts over loopback TCP. Their stores\n" +
			"hold n envelopes between them, of which d are held by only one side (half each); each case\n" +
			"fills fresh stores. Targets per case: total bytes <= 2 x the missing envelopes' bytes + 16 KiB,\n" +
			"rounds <= 2 log16(n/d) + 2 (1 for d = 0); and reconciliation <= 100 bytes per difference at\n" +
			"n = 100,000, d = 1,000, <= 3 KB in <= 4 rounds at n = 1,000,000, d = 1.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case both:
				p.Stores = []string{bench.StoreMemory, bench.StoreDisk}
			case onDisk:
				p.Stores = []string{bench.StoreDisk}
			}
			if progress {
				errOut := cmd.ErrOrStderr()
				p.Progress = func(c bench.SyncCase) { _ = writeJSONLine(errOut, c) }
			}
			res, err := bench.Sync(cmd.Context(), p)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSONLine(out, res)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "store\tn\td\treconcile B\tB/diff\trounds\ttransfer B\tseconds\tpeak heap MiB\ttarget B\ttarget rounds\tmeets\t")
			for _, c := range res.Cases {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%d\t%d\t%.3f\t%.1f\t%d\t%.1f\t%v\t\n",
					c.Store, c.N, c.D, c.ReconcileBytes, c.BytesPerDifference, c.Rounds, c.TransferBytes, c.Seconds,
					float64(c.PeakHeapGrowthBytes)/(1<<20), c.TargetBytes, c.TargetRounds, c.MeetsTargets)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "goals met: %v\n", res.Goals.Met)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&p.N, "n", p.N, "envelopes in the union of both stores (comma-separated list)")
	f.IntSliceVar(&p.D, "d", p.D, "differences to measure (comma-separated)")
	f.IntVar(&p.Size, "size", p.Size, "bytes per envelope")
	f.BoolVar(&onDisk, "disk", false, "use on-disk stores instead of memory")
	f.BoolVar(&both, "both", false, "run every case in memory and on disk")
	f.BoolVar(&p.Reuse, "reuse", false, "fill the stores once per n and store kind and run the cases in --d order on them, each adding its d (the last case's union is n, earlier ones hold the later cases' differences fewer)")
	f.StringVar(&p.Dir, "dir", "", "directory for on-disk stores (kept); default a temporary directory removed after")
	f.BoolVar(&asJSON, "json", false, "print one JSON object with a results array")
	f.BoolVar(&progress, "progress", false, "print each case as a JSON line on stderr as it completes")
	return cmd
}
