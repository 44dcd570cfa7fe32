package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/bench"
)

func newBenchSoakCmd() *cobra.Command {
	p := bench.DefaultSoakParams()
	var asJSON, progress bool
	cmd := &cobra.Command{
		Use:   "soak",
		Short: "Measure the memory of a host and two members over minutes of continuous sending",
		Long: "Starts a host and two members, each a \"meshnode run\" process of its own on TCP loopback,\n" +
			"with homes in a temporary directory (--dir keeps them). One member sends --rate messages of\n" +
			"--size bytes a second to a group the host keeps, for --duration; every --interval the resident\n" +
			"memory of each process is read from /proc (RSS, and its parts: anonymous memory, and mapped\n" +
			"files that the kernel may drop). Prints every sample and, per process, the first, last and\n" +
			"largest figures and the growth rate over the second half of the run (Linux only).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if progress && !asJSON {
				p.Progress = func(s bench.SoakSample) {
					fmt.Fprintf(out, "%6.0f s  sent %6d  received %6d  RSS MiB: host %6.1f  sender %6.1f (anon %6.1f)  receiver %6.1f (anon %6.1f)\n",
						s.Seconds, s.Sent, s.Received, mib(s.Host.RSS), mib(s.Sender.RSS), mib(s.Sender.Anon), mib(s.Receiver.RSS), mib(s.Receiver.Anon))
				}
			}
			r, err := bench.Soak(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONLine(out, r)
			}
			fmt.Fprintf(out, "soak: %d messages of %d B in %.0f s (%.1f/s of the %.0f/s asked for); the receiver shows %d; %d sends answered pending; load average %.1f before, %.1f after\n",
				r.Sent, r.Size, r.DurationSeconds, float64(r.Sent)/r.DurationSeconds, r.Rate, r.Received, r.Pending, r.LoadStart, r.LoadEnd)
			for _, pr := range []struct {
				name string
				s    bench.SoakSummary
			}{{"host", r.Host}, {"sender", r.Sender}, {"receiver", r.Receiver}} {
				fmt.Fprintf(out, "  %-8s RSS MiB start %6.1f  end %6.1f  max %6.1f  (anon end %6.1f, files end %6.1f); second half: RSS %+.2f MiB/min, anon %+.2f MiB/min\n",
					pr.name, mib(pr.s.Start.RSS), mib(pr.s.End.RSS), mib(pr.s.Max.RSS), mib(pr.s.End.Anon), mib(pr.s.End.File),
					pr.s.RSSGrowthMiBPerMin, pr.s.AnonGrowthMiBPerMin)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&p.Duration, "duration", p.Duration, "how long the member sends")
	f.DurationVar(&p.SampleInterval, "interval", p.SampleInterval, "time between two samples")
	f.Float64Var(&p.Rate, "rate", p.Rate, "messages per second")
	f.IntVar(&p.Size, "size", p.Size, "bytes of text per message")
	f.StringVar(&p.Dir, "dir", "", "directory for the homes and logs (kept); default a temporary directory removed after")
	f.StringVar(&p.Binary, "binary", "", "meshnode executable to run the three daemons with (default: this one), to compare builds")
	f.BoolVar(&progress, "progress", false, "print each sample as it is taken")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
