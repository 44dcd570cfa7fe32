package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
)

func newSearchCmd(g *globals) *cobra.Command {
	var (
		group  string
		asJSON bool
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "search QUERY... [--group GROUP]",
		Short: "Search your groups' messages for words (newest first)",
		Long: "Find the messages whose current text has, for every word of QUERY, a word starting with\n" +
			"it (case does not matter): \"meet tue\" finds \"Meeting on Tuesday\". Newest first, at most\n" +
			"--limit. The index is kept in this node's encrypted database.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res *api.SearchAnswer
			query := strings.Join(args, " ")
			if err := g.orOffline(func() error {
				return g.call(func(c *api.Client) (err error) {
					res, err = c.Search(cmd.Context(), query, group, limit)
					return err
				})
			}, func(o *daemon.Offline) (err error) {
				res, err = o.Search(query, group, limit)
				return err
			}); err != nil {
				return err
			}
			for i := range res.Messages {
				m := &res.Messages[i].Message
				if asJSON {
					if err := printJSONLine(g.stdout, m); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(g.stdout, "[%s] ", printable(m.GroupName))
				if err := printMessage(g.stdout, m); err != nil {
					return err
				}
			}
			if !asJSON && len(res.Messages) == 0 {
				fmt.Fprintln(g.stderr, "No message matches.")
			}
			if !asJSON && res.More {
				fmt.Fprintln(g.stderr, "More messages may match: narrow the search, or raise --limit.")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&group, "group", "", "search this group only (an ID or unique name)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	f.IntVar(&limit, "limit", 50, "show at most N messages (up to 500)")
	return cmd
}
