package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
)

func newIDCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Show the running node's peer ID, addresses, role and profile fingerprint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var id *api.Identity
			if err := g.call(func(c *api.Client) (err error) {
				id, err = c.ID(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, id)
			}
			return printFields(g.stdout, [][2]string{
				{"peer_id", id.PeerID},
				{"role", id.Role},
				{"fingerprint", id.Fingerprint},
				{"addrs", strings.Join(id.Addrs, "\n")},
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the running node is doing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st *api.Status
			if err := g.call(func(c *api.Client) (err error) {
				st, err = c.Status(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, st)
			}
			return printFields(g.stdout, [][2]string{
				{"peer_id", st.PeerID},
				{"role", st.Role},
				{"host_policy", st.HostPolicy},
				{"version", st.Version},
				{"uptime", fmt.Sprintf("%ds", st.UptimeSeconds)},
				{"connected_peers", fmt.Sprint(st.ConnectedPeers)},
				{"hosted_mailboxes", fmt.Sprint(st.HostedMailboxes)},
				{"store", storeLine(&st.Store)},
				{"outbox", outboxLine(st.Outbox)},
				{"admission", admissionLine(st.Admission)},
				{"refusals", refusalLines(st.Admission.Refusals, 5)},
				{"addrs", strings.Join(st.Addrs, "\n")},
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this meshnode binary (module version and the git revision it was built from)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(g.stdout, "meshnode %s %s %s/%s\n", daemon.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// outboxLine sums up the own envelopes not stored by a host yet.
func outboxLine(o *api.OutboxStatus) string {
	switch {
	case o == nil:
		return "-"
	case o.Pending == 0 && o.Failed == 0:
		return "every message sent is stored by a host"
	}
	var parts []string
	if o.Pending > 0 {
		parts = append(parts, fmt.Sprintf("%d pending (the oldest for %v; the node keeps trying)", o.Pending, time.Duration(o.OldestPendingSeconds)*time.Second))
	}
	if o.Failed > 0 {
		parts = append(parts, fmt.Sprintf("%d FAILED", o.Failed))
	}
	return strings.Join(parts, ", ") + "; \"meshnode outbox\" lists them"
}

// storeLine is the status of the store: what it holds and the free disk
// space, loudly when it refuses writes.
func storeLine(s *api.StoreUsage) string {
	line := fmt.Sprintf("%d envelopes, %d bytes", s.Envelopes, s.Bytes)
	if s.DiskFreeBytes > 0 || s.DiskFull {
		line += "; " + humanBytes(s.DiskFreeBytes) + " free on its disk"
	}
	if s.DiskFull {
		line += " (DISK FULL: writes are refused until space is freed)"
	}
	return line
}

// humanBytes writes a size in the largest binary unit under 1024 of it.
func humanBytes(n int64) string {
	v, units := float64(n), []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// admissionLine is the admission state in one line.
func admissionLine(a api.AdmissionStatus) string {
	state := "normal"
	if a.State == api.AdmissionUnderPressure {
		state = "under pressure"
	}
	line := fmt.Sprintf("%s (topics %d joined, at most %d for active mailboxes; relay streams %d pending, %d active; fetch streams %d pending, %d active; sync streams %d pending, %d active)",
		state, a.JoinedTopics, a.MaxJoinedTopics, a.RelayStreams.Pending, a.RelayStreams.Active, a.FetchStreams.Pending, a.FetchStreams.Active,
		a.SyncStreams.Pending, a.SyncStreams.Active)
	if a.NewMailboxesRefused {
		line += "\nthe store is past the share open to new mailboxes: they are refused"
	}
	return line
}

// refusalLines lists the top n refusal reasons, one a line.
func refusalLines(rs []api.RefusalCount, n int) string {
	if len(rs) == 0 {
		return "none"
	}
	var lines []string
	for _, r := range rs[:min(n, len(rs))] {
		lines = append(lines, fmt.Sprintf("%s: %d recently, %d in all", r.Reason, r.Recent, r.Total))
	}
	if len(rs) > n {
		lines = append(lines, fmt.Sprintf("(%d more reasons: --json lists all)", len(rs)-n))
	}
	return strings.Join(lines, "\n")
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printFields prints aligned "name  value" lines; a value with several
// lines continues under the first.
func printFields(w io.Writer, fields [][2]string) error {
	width := 0
	for _, f := range fields {
		width = max(width, len(f[0]))
	}
	var b strings.Builder
	for _, f := range fields {
		for i, line := range strings.Split(f[1], "\n") {
			name := f[0]
			if i > 0 {
				name = ""
			}
			fmt.Fprintf(&b, "%-*s  %s\n", width, name, line)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
