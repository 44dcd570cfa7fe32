package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
)

// Unread and read state (issue 18): `messages --unread` and `read GROUP`
// over the group's read marker, which the node keeps in its encrypted
// member database (never sent to anyone).

// unreadMessages lists what follows the group's read marker, oldest
// first (everything when nothing was marked read yet), a page at a time.
func unreadMessages(ctx context.Context, c *api.Client, group string, all bool, each func(*api.Message) error) error {
	rs, err := c.ReadState(ctx, group)
	if err != nil {
		return err
	}
	after := rs.Cursor
	if after == "" {
		// Nothing read yet: from the oldest message (a position before
		// every one).
		after = strings.Repeat("0", 96)
	}
	for {
		p, err := c.History(ctx, group, api.HistoryQuery{Limit: api.MaxHistoryPage, After: after, All: all})
		if err != nil {
			return err
		}
		for i := range p.Messages {
			if err := each(&p.Messages[i].Message); err != nil {
				return err
			}
		}
		if !p.More || len(p.Messages) == 0 {
			return nil
		}
		after = p.Messages[len(p.Messages)-1].Cursor
	}
}

func newReadCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "read GROUP",
		Short: "Mark everything in a group read (its unread count drops to 0)",
		Long: "Move GROUP's read marker to its latest message, so `meshnode group list` counts nothing\n" +
			"unread there and `meshnode messages --unread` shows only what comes next. The marker is\n" +
			"kept in this node's encrypted database and never sent to anyone.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var before, after *api.ReadState
			if err := g.call(func(c *api.Client) (err error) {
				if before, err = c.ReadState(cmd.Context(), args[0]); err != nil || before.Last == nil {
					after = before
					return err
				}
				after, err = c.MarkRead(cmd.Context(), args[0], before.Last.Cursor)
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, after)
			}
			if before.Last == nil {
				fmt.Fprintln(g.stdout, "Nothing to read: the group has no messages yet.")
				return nil
			}
			n := fmt.Sprint(before.Unread)
			if before.UnreadMore {
				n += " or more"
			}
			fmt.Fprintf(g.stdout, "Marked %s unread message(s) read; %d unread now.\n", n, after.Unread)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the group's read state as JSON")
	return cmd
}
