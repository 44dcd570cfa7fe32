package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
)

func newGroupRejectionsCmd(g *globals) *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "rejections GROUP",
		Short: "List what your node refused, flagged or holds aside in a group, and why",
		Long: "List the envelopes of a group's mailboxes that your node refused (sent after their author's\n" +
			"removal, by a non-member, replayed, forged, an equivocation...), showed with a mark (a sent\n" +
			"time out of bounds, a message in flight when its author was removed) or holds until the\n" +
			"group's state reaches it: time, kind, reason code, author fingerprint when known, detail.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit must be 0 (all) or more")
			}
			var rs []api.Rejection
			if err := g.call(func(c *api.Client) (err error) {
				rs, err = c.Rejections(cmd.Context(), args[0], limit)
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, rs)
			}
			if len(rs) == 0 {
				fmt.Fprintln(g.stdout, "Nothing refused or flagged.")
				return nil
			}
			rows := [][]string{{"TIME", "KIND", "REASON", "AUTHOR", "DETAIL"}}
			for _, r := range rs {
				author := r.Author
				if author == "" {
					author = "-"
				}
				rows = append(rows, []string{r.At.Local().Format("2006-01-02 15:04:05"), r.Kind, r.Reason, author, printable(r.Detail)})
			}
			return printRows(g.stdout, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", 0, "show the latest N entries (0: all)")
	return cmd
}
