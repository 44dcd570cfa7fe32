package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
)

func newContactCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contact",
		Short: "Ask people to connect, answer their requests, list your contacts",
	}
	cmd.AddCommand(newContactRequestCmd(g), newContactRequestsCmd(g), newContactAcceptCmd(g),
		newContactRejectCmd(g), newContactListCmd(g), newContactAddsCmd(g), newContactCancelAddCmd(g),
		newContactRemoveCmd(g))
	return cmd
}

// addContactToGroup runs `group add GROUP --contact CONTACT`: the add is
// done at once, or queued until the contact's node offers a key package.
func addContactToGroup(cmd *cobra.Command, g *globals, group string, req *api.AddContactToGroupRequest) error {
	var res *api.ContactAddResult
	if err := g.call(func(c *api.Client) (err error) {
		res, err = c.AddContactToGroup(cmd.Context(), group, req)
		return err
	}); err != nil {
		return err
	}
	if q := res.Queued; q != nil {
		fmt.Fprintf(g.stdout, "Queued (add %s): %s has not offered a key package yet; your daemon adds them as %s\n",
			q.ID, printable(displayContact(q.Nick, q.Fingerprint)), q.Role)
		fmt.Fprintln(g.stdout, "when their node comes online. `meshnode contact adds` lists queued adds; `meshnode contact cancel-add ID` cancels.")
		return nil
	}
	return printManageResult(g.stdout, &res.ManageResult)
}

func displayContact(nick, fp string) string {
	if nick != "" {
		return nick + " (" + fp + ")"
	}
	return fp
}

func newContactAddsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "adds",
		Short: "List the group adds waiting for a contact's key package (`group add GROUP --contact`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []api.PendingContactAdd
			if err := g.call(func(c *api.Client) (err error) {
				ps, err = c.PendingContactAdds(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(g.stdout, "No queued contact adds.")
				return nil
			}
			rows := [][]string{{"ID", "GROUP", "CONTACT", "ROLE", "STATE", "QUEUED", "LAST ERROR"}}
			for _, p := range ps {
				gname := p.Group
				if p.GroupName != "" {
					gname = p.GroupName
				}
				rows = append(rows, []string{p.ID, printable(gname), printable(displayContact(p.Nick, p.Fingerprint)), p.Role, p.State,
					p.Queued.Local().Format("2006-01-02 15:04"), printable(p.LastError)})
			}
			return printRows(g.stdout, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newContactCancelAddCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel-add ID",
		Short: "Cancel a queued group add (see `meshnode contact adds`)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.call(func(c *api.Client) error { return c.CancelContactAdd(cmd.Context(), args[0]) }); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "Queued add cancelled.")
			return nil
		},
	}
}

func newContactRequestCmd(g *globals) *cobra.Command {
	var asJSON bool
	var hosts []string
	cmd := &cobra.Command{
		Use:   "request NAME|USERID [--host MULTIADDR]",
		Short: "Ask the person published under an alias or user ID (fingerprint) to connect",
		Long: "Ask the person published under an alias or user ID (fingerprint) to connect. The name is\n" +
			"looked up at the directory hosts given with --host (the host they published it on, with\n" +
			"\"meshnode alias add NAME --host\"), else at directory_hosts of config.json, else at the\n" +
			"bootstrap peers. Once they accept, the two of you talk in the connection group it prints.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ct *api.Contact
			if err := g.call(func(c *api.Client) (err error) {
				ct, err = c.RequestContact(cmd.Context(), args[0], hosts...)
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, ct)
			}
			fmt.Fprintf(g.stdout, "Request sent to %s. They see your nick and fingerprint only.\n", args[0])
			fmt.Fprintf(g.stdout, "Once they accept, \"meshnode contact list\" shows them as connected, and your conversation is\n")
			fmt.Fprintf(g.stdout, "group %s:\n  meshnode send %s TEXT\n  meshnode messages %s\n", ct.Group, ct.Group, ct.Group)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "multiaddr ending in /p2p/PEERID of a directory host to look the name up at (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newContactRequestsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "requests",
		Short: "Fetch and list the requests waiting for your answer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rs []api.ContactRequest
			if err := g.call(func(c *api.Client) (err error) {
				rs, err = c.ContactRequests(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, rs)
			}
			if len(rs) == 0 {
				fmt.Fprintln(g.stdout, "No pending contact requests.")
				return nil
			}
			rows := [][]string{{"ID", "NICK", "FINGERPRINT", "VIA", "RECEIVED"}}
			for _, r := range rs {
				rows = append(rows, []string{r.ID, r.Nick, r.Fingerprint, r.Via, r.Received.Local().Format("2006-01-02 15:04")})
			}
			if err := printRows(g.stdout, rows); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "Compare the fingerprint with the person out of band, then `meshnode contact accept ID` or `reject ID`.")
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newContactAcceptCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "accept ID",
		Short: "Accept a contact request: join its connection group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ct *api.Contact
			if err := g.call(func(c *api.Client) (err error) {
				ct, err = c.AcceptContact(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Connected to %s (%s); your conversation is group %s:\n  meshnode send %s TEXT\n  meshnode messages %s\n",
				printable(ct.Nick), ct.Fingerprint, ct.Group, ct.Group, ct.Group)
			return nil
		},
	}
}

func newContactRejectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reject ID",
		Short: "Reject a contact request; the sender is told nothing and later requests from them are dropped",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.call(func(c *api.Client) error { return c.RejectContact(cmd.Context(), args[0]) }); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "Request rejected.")
			return nil
		},
	}
}

func newContactRemoveCmd(g *globals) *cobra.Command {
	var block, asJSON bool
	cmd := &cobra.Command{
		Use:   "remove CONTACT",
		Short: "End a contact (requested or connected): leave the connection group and forget it",
		Long: "End a contact, given by nick, fingerprint, alias or connection group ID: your node leaves the\n" +
			"connection group (its keys and messages are deleted) and forgets the contact. The other side is\n" +
			"not told. --block also drops their later requests unread (as `contact reject` does).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ct *api.Contact
			if err := g.call(func(c *api.Client) (err error) {
				ct, err = c.RemoveContact(cmd.Context(), args[0], block)
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, ct)
			}
			who := ct.Nick
			if who == "" {
				who = ct.Via
			}
			fmt.Fprintf(g.stdout, "Removed contact %s", who)
			if block {
				fmt.Fprint(g.stdout, " (blocked)")
			}
			fmt.Fprintln(g.stdout)
			return nil
		},
	}
	cmd.Flags().BoolVar(&block, "block", false, "also drop their later requests unread")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the removed contact as JSON")
	return cmd
}

func newContactListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your contacts (and the requests you sent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cs []api.Contact
			if err := g.call(func(c *api.Client) (err error) {
				cs, err = c.Contacts(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, cs)
			}
			if len(cs) == 0 {
				fmt.Fprintln(g.stdout, "No contacts yet: `meshnode contact request NAME|USERID` asks someone to connect.")
				return nil
			}
			rows := [][]string{{"NICK", "FINGERPRINT", "STATE", "VIA", "GROUP"}}
			for _, c := range cs {
				// Until a request is accepted, the other side is known
				// only by the name it was asked under (VIA).
				nick, fp := printable(c.Nick), c.Fingerprint
				if nick == "" {
					nick = "-"
				}
				if fp == "" {
					fp = "(known once they accept)"
				}
				rows = append(rows, []string{nick, fp, c.State, printable(c.Via), c.Group})
			}
			if err := printRows(g.stdout, rows); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "A contact's conversation is its GROUP: meshnode send GROUP TEXT, meshnode messages GROUP.")
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
