package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/hostsync"
)

// newBenchSyncCmd is `meshnode bench sync`: anti-entropy sync between two
// hosts (real libp2p over loopback) whose stores differ by d envelopes.
func newBenchSyncCmd() *cobra.Command {
	bp := hostsync.DefaultBenchParams()
	var asJSON, onDisk bool
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Measure host-to-host sync: reconciliation bytes and rounds, transfer bytes, time",
		Long: "Runs one sync session per --d between two local hosts over loopback TCP. Their stores\n" +
			"hold --n envelopes between them, of which d are held by only one side (half each).\n" +
			"Targets: total bytes <= 2 x the missing envelopes' bytes + 16 KiB, rounds <= 2 log16(n/d) + 2.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if onDisk {
				bp.Dir = cmd.Flags().Lookup("dir").Value.String()
				if bp.Dir == "" {
					dir, err := os.MkdirTemp("", "meshnode-bench-sync-")
					if err != nil {
						return err
					}
					defer os.RemoveAll(dir)
					bp.Dir = dir
				}
			}
			res, err := hostsync.Bench(cmd.Context(), bp)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "n\td\treconcile B\trounds\ttransfer B\tseconds\tnaive B\ttarget B\ttarget rounds\tmeets\t")
			for _, c := range res.Results {
				fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%.3f\t%d\t%d\t%.1f\t%v\t\n",
					c.N, c.D, c.ReconcileBytes, c.Rounds, c.TransferBytes, c.Seconds, c.NaiveBytes, c.TargetBytes, c.TargetRounds, c.MeetsTargets)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.IntVar(&bp.N, "n", bp.N, "envelopes in the union of both stores")
	f.IntSliceVar(&bp.D, "d", bp.D, "differences to measure (comma-separated)")
	f.IntVar(&bp.EnvelopeSize, "size", bp.EnvelopeSize, "bytes per envelope")
	f.BoolVar(&onDisk, "disk", false, "use on-disk stores (in --dir, or a temporary directory) instead of memory")
	f.String("dir", "", "directory for on-disk stores (with --disk)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object with a results array")
	return cmd
}
