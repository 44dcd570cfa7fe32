package main

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
)

// Reactions, edits and deletes (issue 18). Replies are `send --reply-to`.

func newReactCmd(g *globals) *cobra.Command {
	var (
		asJSON, add, remove bool
	)
	cmd := &cobra.Command{
		Use:   "react ID EMOJI",
		Short: "React to a message with an emoji; the same reaction again takes it back",
		Long: "React to the message ID (as `meshnode messages` shows it: its start suffices) with\n" +
			"EMOJI. Reacting again with the same emoji removes your reaction; --add and --remove\n" +
			"do only that. Everyone in the group sees the count per emoji.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			op := api.ReactToggle
			switch {
			case add && remove:
				return &usageError{fmt.Errorf("--add and --remove exclude each other")}
			case add:
				op = api.ReactAdd
			case remove:
				op = api.ReactRemove
			}
			var res *api.RefResult
			if err := g.call(func(c *api.Client) (err error) {
				res, err = c.React(cmd.Context(), args[0], args[1], op)
				return err
			}); err != nil {
				return err
			}
			return printRefResult(g, res, asJSON)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&add, "add", false, "only add the reaction (nothing happens if you reacted so already)")
	f.BoolVar(&remove, "remove", false, "only remove your reaction")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newEditCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "edit ID TEXT...",
		Short: "Replace the text of a message you wrote; members see it marked edited",
		Long: "Replace the text of your message ID (its start suffices) with TEXT (words joined by\n" +
			"spaces; - reads standard input). Members see the new text marked edited, and every\n" +
			"version stays in the history (`meshnode messages --json`, the message's \"edits\" in the API).",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := messageText(args[1:], os.Stdin)
			if err != nil {
				return err
			}
			var res *api.RefResult
			if err := g.call(func(c *api.Client) (err error) {
				res, err = c.Edit(cmd.Context(), args[0], text)
				return err
			}); err != nil {
				return err
			}
			return printRefResult(g, res, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newDeleteCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a message you wrote (or, as a manager of a managed group, anyone's)",
		Long: "Delete the message ID (its start suffices). Members' nodes stop showing its text and\n" +
			"drop it from their databases; the group's hosts keep the encrypted envelope until their\n" +
			"retention removes it, so a delete hides a message, it does not unsend it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res *api.RefResult
			if err := g.call(func(c *api.Client) (err error) {
				res, err = c.DeleteMessage(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			return printRefResult(g, res, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printRefResult(g *globals, res *api.RefResult, asJSON bool) error {
	if asJSON {
		return printJSON(g.stdout, res)
	}
	if res.Unchanged {
		fmt.Fprintf(g.stdout, "Nothing to do: your reaction to %s already is as asked.\n", shortID(res.Target))
		return nil
	}
	warnDelivery(g, &res.SendResult)
	return printFields(g.stdout, [][2]string{{"message", res.Target}, {"id", res.ID}, {"state", res.State},
		{"stored_by", storedBy(&res.SendResult)}})
}

// warnDelivery says when no host stored a sent envelope.
func warnDelivery(g *globals, res *api.SendResult) {
	switch res.State {
	case api.DeliveryFailed:
		fmt.Fprintln(g.stderr, "warning: every host refused the message; it will not be delivered (see \"failed\" below)")
	case api.DeliveryStored:
	default:
		fmt.Fprintln(g.stderr, "warning: no host stored the message yet; this node keeps it and tries again "+
			"until one does (\"meshnode outbox\" lists what is waiting)")
	}
}

func storedBy(res *api.SendResult) string {
	if s := strings.Join(res.StoredBy, "\n"); s != "" {
		return s
	}
	return "no host yet"
}

// refMarks describes a message's reply, edit, delete and reactions for
// the readable listing: a prefix before its text and a suffix after it.
func refMarks(m *api.Message) (prefix, suffix string) {
	if f := m.File; f != nil {
		prefix = fmt.Sprintf("[file %s, %s, %s: meshnode download %s] ", printable(f.Name), printable(f.MediaType), humanBytes(int64(f.Size)), shortMsgID(m.ID))
	}
	if q := m.Quote; q != nil {
		switch {
		case q.Missing:
			prefix = fmt.Sprintf("[reply to #%s, not seen here] ", shortMsgID(q.ID))
		case q.Deleted:
			prefix = fmt.Sprintf("[reply to #%s %s: deleted] ", shortMsgID(q.ID), displayNick(q.Nick))
		default:
			prefix = fmt.Sprintf("[reply to #%s %s: %q] ", shortMsgID(q.ID), displayNick(q.Nick), clip(printable(q.Text), 40))
		}
	} else if m.ReplyTo != "" {
		prefix = fmt.Sprintf("[reply to #%s] ", shortMsgID(m.ReplyTo))
	}
	if m.Deleted {
		who := "its author"
		if m.DeletedBy != "" && m.DeletedBy != m.Author {
			who = "a manager (" + shortFP(m.DeletedBy) + ")"
		}
		prefix += "[deleted by " + who + "]"
	}
	if m.Edited {
		suffix += "  (edited)"
	}
	if len(m.Reactions) > 0 {
		var rs []string
		for _, r := range m.Reactions {
			mine := ""
			if r.Mine {
				mine = "*"
			}
			rs = append(rs, fmt.Sprintf("%s %d%s", printable(r.Emoji), r.Count, mine))
		}
		suffix += "  [" + strings.Join(rs, "  ") + "]"
	}
	return prefix, suffix
}

// shortMsgID is what the listing shows of a message ID: enough to name
// it in react, edit, delete and --reply-to.
func shortMsgID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// clip shortens s to n runes on one line.
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
