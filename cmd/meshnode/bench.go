package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/bench"
)

// newBenchCmd is `meshnode bench`: performance benchmarks of the hosting
// core, run in this process on TCP loopback (package bench). Each
// subcommand prints one JSON object with --json.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the hosting core: ingest, fetch and sync throughput against limits measured on this machine",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchIngestCmd(), newBenchFetchCmd(), newBenchSyncCmd(), newBenchAttackCmd(), newBenchSoakCmd())
	return cmd
}

func newBenchIngestCmd() *cobra.Command {
	p := bench.DefaultIngestParams()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Measure envelopes/s durably stored by a host from remote writers (direct relay)",
		Long: "Starts a host node (Badger store on disk, fsync before every acknowledgement) and --writers\n" +
			"member nodes, each its own libp2p host on TCP loopback. Each writer relays its share of --n\n" +
			"envelopes of --size bytes with the direct relay protocol, keeping --inflight requests\n" +
			"outstanding, pipelined on one relay session (protocol 1.2.0; --stream-per-envelope: a stream each, 1.0.0).\n" +
			"Every acknowledged envelope is then checked in the store reopened from disk. --runs pairs are\n" +
			"made: the limit, then a network run into a fresh host store.\n" +
			"limit = n / (time to verify all envelopes on all cores + time to store.Put all of them\n" +
			"into a fresh store from writers x inflight goroutines);\n" +
			"ratio = rate / limit per pair; rate, limit and ratio are the medians, with their spread (target >= 0.8).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := bench.Ingest(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONLine(cmd.OutOrStdout(), r)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ingest: %d envelopes of %d B from %d writers x %d in flight (%s) in %.2f s (runs %s s)\n",
				r.N, r.EnvelopeSize, r.Writers, r.InFlightPerWriter, r.Protocol, r.ElapsedSeconds, secondsList(r.NetworkRuns))
			fmt.Fprintf(out, "  rate   %10.0f %s (%.1f MiB/s), latency p50 %.1f ms, p99 %.1f ms\n",
				r.Rate, r.Units, r.MiBPerSecond, r.Latency.P50, r.Latency.P99)
			fmt.Fprintf(out, "  limit  %10.0f %s (verify alone %.0f/s, store alone %.0f/s)\n",
				r.Limit, r.Units, r.LimitDetail.VerifyRate, r.LimitDetail.StoreRate)
			fmt.Fprintf(out, "  ratio  %10.2f median of %d runs (min %.2f, max %.2f, IQR %.2f; target 0.8)\n",
				r.Ratio, r.Spread.Runs, r.Spread.Min, r.Spread.Max, r.Spread.IQR)
			fmt.Fprintf(out, "  host: %d group commits of %.1f on average, %.2f ms each; CPU %.0f%% busy, %.0f µs per envelope\n",
				r.Breakdown.Commits, r.Breakdown.MeanBatch, r.Breakdown.CommitMeanMs,
				100*r.Breakdown.CPUUtilisation, r.Breakdown.CPUUsPerEnvelope)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.N, "n", p.N, "envelopes to write")
	f.IntVar(&p.Size, "size", p.Size, "bytes per envelope encoding")
	f.IntVar(&p.Writers, "writers", p.Writers, "remote writers, each its own libp2p host")
	f.IntVar(&p.InFlight, "inflight", p.InFlight, "requests each writer keeps outstanding, pipelined on its relay session")
	f.BoolVar(&p.StreamPerEnvelope, "stream-per-envelope", false, "open a stream per envelope (relay protocol 1.0.0, as node.Remote does) instead of sessions")
	f.StringVar(&p.Dir, "dir", "", "directory for the on-disk stores (kept); default a temporary directory removed after")
	f.StringVar(&p.CPUProfile, "cpuprofile", "", "write a CPU profile of the runs to this file (go tool pprof)")
	f.IntVar(&p.Runs, "runs", p.Runs, "paired runs (limit, then network run); the medians count")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newBenchFetchCmd() *cobra.Command {
	p := bench.DefaultFetchParams()
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Measure envelopes/s a member fetches from a remote host (fetch protocol, page by page)",
		Long: "Stores --n envelopes of --size bytes on a host node (Badger on disk) and has a member node\n" +
			"on TCP loopback catch up on all of them with the fetch protocol: --runs times with signature\n" +
			"verification off (a member), each paired with a raw transfer, and once on (a host: host.rate,\n" +
			"host.ratio). Every envelope must arrive exactly once, in the host's order.\n" +
			"limit = the same bytes over one raw libp2p stream between the same hosts, in envelopes/s;\n" +
			"ratio = rate / limit per pair; rate, limit and ratio are the medians, with their spread (target >= 0.6).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := bench.Fetch(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONLine(cmd.OutOrStdout(), r)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "fetch: %d envelopes of %d B (%.1f MiB) in %d pages of up to %d\n",
				r.N, r.EnvelopeSize, float64(r.Bytes)/(1<<20), r.Pages, r.PageSize)
			fmt.Fprintf(out, "  member (no verification) %10.0f %s median, ratio %.2f median of %d (min %.2f, max %.2f, IQR %.2f; target 0.6); runs %s s\n",
				r.Rate, r.Units, r.Ratio, r.Spread.Runs, r.Spread.Min, r.Spread.Max, r.Spread.IQR, secondsList(r.MemberSeconds))
			fmt.Fprintf(out, "  host (verification)      %10.0f %s in %.2f s, ratio %.2f\n",
				r.Host.Rate, r.Units, r.Host.ElapsedSeconds, r.Host.Ratio)
			fmt.Fprintf(out, "  limit (raw stream)       %10.0f %s (%.0f MiB/s)\n",
				r.Limit, r.Units, r.LimitDetail.RawMiBPerSec)
			fmt.Fprintf(out, "  alone: store pages %.2f s, decode %.2f s, verify %.2f s, raw transfer %.2f s\n",
				r.Breakdown.StorePageSeconds, r.Breakdown.DecodeSeconds, r.Breakdown.VerifySeconds, r.Breakdown.RawSeconds)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.N, "n", p.N, "envelopes stored on the host and fetched")
	f.IntVar(&p.Size, "size", p.Size, "bytes per envelope encoding")
	f.StringVar(&p.Dir, "dir", "", "directory for the host's on-disk store (kept); default a temporary directory removed after")
	f.StringVar(&p.CPUProfile, "cpuprofile", "", "write a CPU profile of three member catch-ups (after the measured runs) to this file (go tool pprof)")
	f.StringVar(&p.RawCPUProfile, "raw-cpuprofile", "", "write a CPU profile of three raw transfers (the limit) to this file")
	f.IntVar(&p.Runs, "runs", p.Runs, "paired runs (a catch-up and a raw transfer); the medians count")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// writeJSONLine prints v as one JSON object on one line.
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// secondsList formats durations in seconds, comma-separated.
func secondsList(ds []float64) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.3f", d)
	}
	return strings.Join(parts, ", ")
}
