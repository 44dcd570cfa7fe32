package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/bench"
)

func newBenchAttackCmd() *cobra.Command {
	p := bench.DefaultAttackParams()
	var asJSON bool
	var attacks []string
	cmd := &cobra.Command{
		Use:   "attack",
		Short: "Run the attacks on open hosts (slowloris, sync, subscriptions, new mailboxes, flood, store-full) and measure what members get",
		Long: "Seeds a host's store (Badger on disk) with --mailboxes mailboxes and --members established mailboxes,\n" +
			"starts the host node in a process of its own (open policy, loopback counted like any network) and\n" +
			"measures its start. Then, for each attack, throwaway peer IDs from a network of their own (the\n" +
			"first attack's 127.0.10.0/24, the next 127.0.11.0/24, ...) attack it for\n" +
			"--duration while members from 127.0.1.0/24 catch up and send over and over, and reports the\n" +
			"members' success ratios (goals: catch-up >= 0.9, send >= 0.99), the host process's peak RSS and\n" +
			"goroutines (goals: <= 300 MiB, <= 5,000), the refusals by reason, and how soon members are\n" +
			"served and the host is back to normal after the attack. Finally the host restarts on everything\n" +
			"the attackers left (goal: <= 10 s) and every envelope it acknowledged to a member must be there.\n" +
			"Attacks: " + strings.Join(bench.AllAttacks, ", ") + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(attacks) > 0 {
				p.Attacks = attacks
			}
			r, err := bench.Attack(cmd.Context(), p)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSONLine(cmd.OutOrStdout(), r)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "attack: host with %d mailboxes, %d members, %.0f s per attack\n", r.Mailboxes, r.Members, r.AttackSecs)
			fmt.Fprintf(out, "  start     %.2f s (node %.2f s), RSS %.0f MiB, %d goroutines, %d topics joined\n",
				r.Restart.Seconds, r.Restart.NodeSeconds, r.Restart.RSSMiB, r.Restart.Goroutines, r.Restart.Joined)
			for _, a := range r.Attacks {
				fmt.Fprintf(out, "  %-10s catch-up %d/%d (%.3f), send %d/%d (%.3f); host peak %.0f MiB, %d goroutines; recovered in %.1f s, normal in %.1f s\n",
					a.Name, a.CatchUp.OK, a.CatchUp.Attempts, a.CatchUp.Ratio, a.Send.OK, a.Send.Attempts, a.Send.Ratio,
					a.PeakRSSMiB, a.PeakGoroutines, a.RecoverySeconds, a.PressureClearedSeconds)
				fmt.Fprintf(out, "             attackers: %d peers from %s, %d sent, %d accepted (%.0f/s), refusals %s\n",
					a.Attacker.Peers, a.Network, a.Attacker.Sent, a.Attacker.Accepted, a.Attacker.StoredPerSecond, counts(a.Refusals))
			}
			if r.RestartAfter != nil {
				fmt.Fprintf(out, "  restart   %.2f s (node %.2f s) with %d mailboxes, RSS %.0f MiB, %d goroutines\n",
					r.RestartAfter.Seconds, r.RestartAfter.NodeSeconds, r.RestartAfter.Hosted, r.RestartAfter.RSSMiB, r.RestartAfter.Goroutines)
			}
			fmt.Fprintf(out, "  peaks     RSS %.0f MiB, %d goroutines; lost %d; goals met: %v\n", r.PeakRSSMiB, r.PeakGoroutines, r.Lost, r.Met)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.Mailboxes, "mailboxes", p.Mailboxes, "mailboxes in the host's store before it starts")
	f.IntVar(&p.Members, "members", p.Members, "members, each with an established mailbox")
	f.IntVar(&p.History, "history", p.History, "envelopes in each member's mailbox before the attacks")
	f.DurationVar(&p.Duration, "duration", p.Duration, "how long each attack lasts")
	f.StringSliceVar(&attacks, "attacks", nil, "the attacks to run, comma-separated (default all: "+strings.Join(bench.AllAttacks, ",")+")")
	f.Int64Var(&p.GlobalQuota, "quota", p.GlobalQuota, "the host store's global quota in bytes during the benchmark")
	f.BoolVar(&p.AdmissionOff, "admission-off", false, "run the host without the admission limits that can be turned off (for comparison)")
	f.StringVar(&p.Dir, "dir", "", "directory for the host's store (kept); default a temporary directory removed after")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// counts formats reason counts, largest first.
func counts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	type rc struct {
		r string
		n uint64
	}
	var rs []rc
	for r, n := range m {
		rs = append(rs, rc{r, n})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n || (rs[i].n == rs[j].n && rs[i].r < rs[j].r) })
	parts := make([]string, len(rs))
	for i, x := range rs {
		parts[i] = fmt.Sprintf("%s %d", x.r, x.n)
	}
	return strings.Join(parts, ", ")
}
