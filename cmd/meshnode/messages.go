package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/groupstate"
)

func newSendCmd(g *globals) *cobra.Command {
	var (
		to, replyTo, file string
		asJSON            bool
	)
	cmd := &cobra.Command{
		Use:   "send [--to FINGERPRINT|NICK | --reply-to ID] GROUP TEXT... | send --file PATH GROUP",
		Short: "Send a message to a group, or a direct message to one member",
		Long: "Send a message to everyone in GROUP (an ID or unique name), or with --to a direct message\n" +
			"only that member can read. The words of TEXT are joined by spaces; TEXT - reads the\n" +
			"message from standard input (one trailing newline dropped). --reply-to ID answers the\n" +
			"message ID of the group (its start, as `meshnode messages` shows it, suffices). Prints\n" +
			"the message ID and the hosts that stored it, and warns when none did. --file PATH sends\n" +
			"a file instead (encrypted, in chunks the group's hosts keep like messages; members fetch\n" +
			"it with `meshnode download ID`).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				if len(args) != 1 || to != "" || replyTo != "" {
					return &usageError{fmt.Errorf("--file takes the group only: a file message carries no text, recipient or reply")}
				}
				return sendFile(cmd, g, args[0], file, asJSON)
			}
			if len(args) < 2 {
				return &usageError{fmt.Errorf("requires at least 2 arg(s), only received %d: send needs GROUP and TEXT (or --file PATH)", len(args))}
			}
			text, err := messageText(args[1:], os.Stdin)
			if err != nil {
				return err
			}
			if to != "" && replyTo != "" {
				return &usageError{fmt.Errorf("--to and --reply-to exclude each other: a direct message cannot be a reply")}
			}
			var res *api.SendResult
			if err := g.call(func(c *api.Client) (err error) {
				switch {
				case to != "":
					res, err = c.SendDirect(cmd.Context(), args[0], to, text)
				case replyTo != "":
					res, err = c.SendReply(cmd.Context(), args[0], replyTo, text)
				default:
					res, err = c.Send(cmd.Context(), args[0], text)
				}
				return err
			}); err != nil {
				return err
			}
			warnDelivery(g, res)
			if asJSON {
				return printJSON(g.stdout, res)
			}
			fields := [][2]string{{"id", res.ID}, {"state", res.State}, {"stored_by", storedBy(res)}}
			for _, h := range sortedKeys(res.Failed) {
				fields = append(fields, [2]string{"failed", h + ": " + res.Failed[h]})
			}
			return printFields(g.stdout, fields)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "send a direct message to the member with this fingerprint or nick (listed by \"meshnode group members\"; an ambiguous nick lists the candidates)")
	cmd.Flags().StringVar(&file, "file", "", "send the file at PATH (at most 100 MiB unless the daemon's limit says otherwise)")
	cmd.Flags().StringVar(&replyTo, "reply-to", "", "answer the message with this ID (or its start, as \"meshnode messages\" shows it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// messageText joins the words of the command line, or reads stdin for
// "-". It refuses a text over groupstate.MaxTextLen, the limit the
// daemon enforces too, before calling it.
func messageText(words []string, stdin io.Reader) (string, error) {
	text := strings.Join(words, " ")
	size := fmt.Sprint(len(text))
	if len(words) == 1 && words[0] == "-" {
		// Room for the limit and a trailing "\r\n", and one byte more to
		// tell a longer input.
		limit := int64(groupstate.MaxTextLen) + 3
		b, err := io.ReadAll(io.LimitReader(stdin, limit))
		if err != nil {
			return "", fmt.Errorf("reading the message from standard input: %w", err)
		}
		text = string(b)
		text = strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")
		size = fmt.Sprint(len(text))
		if int64(len(b)) == limit {
			size = "over " + fmt.Sprint(groupstate.MaxTextLen)
		}
	}
	if text == "" {
		return "", errors.New("the message is empty")
	}
	if len(text) > groupstate.MaxTextLen {
		return "", fmt.Errorf("the message is %s bytes; one message holds at most %d bytes, so split it",
			size, groupstate.MaxTextLen)
	}
	return text, nil
}

func newMessagesCmd(g *globals) *cobra.Command {
	var (
		asJSON, follow, all, unread bool
		limit                       int
	)
	cmd := &cobra.Command{
		Use:   "messages GROUP",
		Short: "Show a group's messages, oldest first; --follow keeps showing new ones",
		Long: "Show the messages of GROUP (an ID or unique name), oldest first: time, nick, short\n" +
			"fingerprint and text, with direct messages and gap notices marked. --json prints one\n" +
			"JSON object per line. --follow then shows new messages as they arrive until interrupted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit %d: use a positive number, or 0 for all", limit)
			}
			if unread && (follow || limit > 0) {
				return &usageError{fmt.Errorf("--unread shows everything after your read marker: without --follow or --limit")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if unread {
				return g.call(func(c *api.Client) error {
					return unreadMessages(ctx, c, args[0], all, func(m *api.Message) error {
						if asJSON {
							return printJSONLine(g.stdout, m)
						}
						return printMessage(g.stdout, m)
					})
				})
			}
			online := func() error {
				return g.call(func(c *api.Client) error {
					s, err := c.MessageStreamWith(ctx, args[0], api.MessageQuery{Limit: limit, Follow: follow, All: all})
					if err != nil {
						return err
					}
					defer s.Close()
					for {
						m, err := s.Next()
						switch {
						case err != nil && ctx.Err() != nil:
							return nil // interrupted
						case errors.Is(err, io.EOF) && !follow:
							return nil
						case errors.Is(err, io.EOF):
							// A follow ends only when interrupted: anything
							// else means the daemon went away.
							return errors.New("the daemon ended the message stream; no more messages will come")
						case errors.Is(err, api.ErrUnavailable):
							return fmt.Errorf("%s; no more messages will come", apiMessage(err))
						case err != nil && follow && !isAPIError(err):
							return fmt.Errorf("the daemon stopped or the connection to it broke: %w", err)
						case err != nil:
							return err
						}
						if asJSON {
							err = printJSONLine(g.stdout, m)
						} else {
							err = printMessage(g.stdout, &m)
						}
						if err != nil {
							return err
						}
					}
				})
			}
			if follow || unread {
				return online()
			}
			return g.orOffline(online, func(o *daemon.Offline) error {
				msgs, err := o.Messages(args[0], api.MessageQuery{Limit: limit, All: all})
				if err != nil {
					return err
				}
				for i := range msgs {
					if asJSON {
						err = printJSONLine(g.stdout, &msgs[i])
					} else {
						err = printMessage(g.stdout, &msgs[i])
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	f.BoolVar(&follow, "follow", false, "keep showing new messages until interrupted")
	f.IntVar(&limit, "limit", 0, "show only the latest N messages (0: all)")
	f.BoolVar(&unread, "unread", false, "show only what came after your read marker (\"meshnode read GROUP\" moves it)")
	f.BoolVar(&all, "all", false, "also show the messages nodes exchange in a connection group (key package offers, welcome frames)")
	return cmd
}

// apiMessage is the daemon's message of an API error (err's text
// otherwise).
func apiMessage(err error) string {
	var e *api.Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return err.Error()
}

// isAPIError reports an error answered by the daemon (as opposed to a
// broken connection).
func isAPIError(err error) bool {
	var e *api.Error
	return errors.As(err, &e)
}

// printMessage prints one readable line (continuation lines indented):
//
//	2006-01-02 15:04:05  alice (abcd-efgh)  text  (edited)  [👍 2]  #1a2b3c4d
//	2006-01-02 15:04:05  bob (ijkl-mnop)  [reply to #1a2b3c4d alice: "text"] yes  #5e6f7a8b
//	2006-01-02 15:04:05  alice (abcd-efgh)  [direct to you] text
//	2006-01-02 15:04:05  [gap] 2 message(s) from bob ... are missing
func printMessage(w io.Writer, m *api.Message) error {
	when := m.Sent.Local().Format("2006-01-02 15:04:05")
	var head string
	switch m.Kind {
	case api.KindGap:
		head = fmt.Sprintf("%s  [gap] ", when)
	case api.KindSplit:
		head = fmt.Sprintf("%s  [split] ", when)
	case api.KindEquivocation:
		head = fmt.Sprintf("%s  [equivocation] ", when)
	case api.KindEvent:
		head = fmt.Sprintf("%s  %s (%s)  [group] ", when, displayNick(m.Nick), shortFP(m.Author))
	case api.KindDirect:
		// A member reads only the directs it sent or received.
		to := "you"
		if m.Own {
			to = shortFP(m.To)
		}
		head = fmt.Sprintf("%s  %s (%s)  [direct to %s] ", when, displayNick(m.Nick), shortFP(m.Author), to)
	default:
		head = fmt.Sprintf("%s  %s (%s)  ", when, displayNick(m.Nick), shortFP(m.Author))
	}
	head += flagMarks(m.Flags)
	refPrefix, refSuffix := refMarks(m)
	head += refPrefix
	if m.Kind == api.KindText || m.Kind == api.KindReply || m.Kind == api.KindFile {
		// The ID that names it in a reply, reaction, edit or delete.
		refSuffix += "  #" + shortMsgID(m.ID)
	}
	text := strings.ReplaceAll(printable(m.Text), "\n", "\n"+strings.Repeat(" ", len(when)+2)) + refSuffix
	switch m.Delivery {
	case api.DeliveryPending:
		text += "  (not stored by a host yet; retrying)"
	case api.DeliveryFailed:
		text += "  (NOT DELIVERED: " + printable(m.DeliveryError) + ")"
	}
	_, err := fmt.Fprintln(w, head+text)
	return err
}

// flagMarks says in brackets why a message is shown with a reservation.
func flagMarks(flags []string) string {
	var out string
	for _, f := range flags {
		switch f {
		case api.FlagSentInFuture:
			out += "[claims a time in the future] "
		case api.FlagSentBeforeJoin:
			out += "[claims a time before its author joined] "
		case api.FlagUnseenByRemover:
			out += "[sent as its author was removed; others refuse it] "
		case api.FlagNotDelivered:
			out += "[not delivered: you were removed first] "
		default:
			out += "[" + printable(f) + "] "
		}
	}
	return out
}

func newOutboxCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "List your messages that no host has stored yet (the node retries them), and those it gave up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var es []api.OutboxEntry
			if err := g.call(func(c *api.Client) (err error) {
				es, err = c.Outbox(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, es)
			}
			if len(es) == 0 {
				fmt.Fprintln(g.stdout, "Nothing waiting: every message you sent is stored by a host.")
				return nil
			}
			rows := [][]string{{"ID", "GROUP", "STATE", "SENT", "ATTEMPTS", "NEXT", "REASON"}}
			for _, e := range es {
				name, next := e.GroupName, "-"
				if name == "" {
					name = e.Group
				}
				if !e.NextAttempt.IsZero() {
					next = e.NextAttempt.Local().Format("15:04:05")
				}
				rows = append(rows, []string{shortID(e.ID), printable(name), e.State, e.Created.Local().Format("2006-01-02 15:04:05"),
					fmt.Sprint(e.Attempts), next, printable(e.Reason)})
			}
			return printRows(g.stdout, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

// printable replaces control and bidirectional-override characters (which
// another member could use to rewrite the terminal) except newlines and
// tabs.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			return '\uFFFD'
		}
		return r
	}, s)
}

func displayNick(nick string) string {
	if nick == "" {
		return "?"
	}
	return printable(nick)
}

// shortFP is the first two groups of a fingerprint (40 bits): enough to
// tell members apart on screen, not to verify anyone.
func shortFP(fp string) string {
	if len(fp) > 9 {
		return fp[:9]
	}
	return fp
}

func newFetchCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "fetch GROUP",
		Short: "Catch up on a group now: fetch what its hosts hold and report gaps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res *api.CatchUpResult
			if err := g.call(func(c *api.Client) (err error) {
				res, err = c.CatchUp(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, res)
			}
			out := g.stdout
			fmt.Fprintf(out, "Fetched %d envelope(s) from %d host(s).\n", res.Fetched, res.Hosts)
			for _, h := range sortedKeys(res.Failed) {
				fmt.Fprintf(out, "  failed %s: %s\n", h, res.Failed[h])
			}
			if len(res.Gaps) == 0 {
				fmt.Fprintln(out, "No gaps.")
				return nil
			}
			for _, gap := range res.Gaps {
				fmt.Fprintf(out, "Missing %d message(s) from %s (%s), numbers %d-%d: no host could supply them.\n",
					gap.Last-gap.First+1, displayNick(gap.Nick), shortFP(gap.Author), gap.First, gap.Last)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
