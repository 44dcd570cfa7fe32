package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/daemon"
)

func newGroupCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Create, join, list and share groups",
		Long: "Create, join, list and share groups. GROUP is a group ID or a unique group name\n" +
			"(see `meshnode group list`).",
	}
	cmd.AddCommand(newGroupCreateCmd(g), newGroupJoinCmd(g), newGroupListCmd(g),
		newGroupInviteCmd(g), newGroupMembersCmd(g), newGroupRejectionsCmd(g))
	cmd.AddCommand(newManagedGroupCmds(g)...)
	return cmd
}

func newGroupCreateCmd(g *globals) *cobra.Command {
	var hosts []string
	var mf managedCreateFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a group and print its invite (the last line of the output)",
		Long: "Create a group whose history is kept by this node and the given hosts, and print its\n" +
			"invite as the last line. Anyone holding the invite can read and write in the group:\n" +
			"share it only with the members, over a channel you trust.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mf.misused(cmd) {
				return fmt.Errorf("--history, --rotate-every and --rotate-after need --managed")
			}
			if mf.managed {
				return createManaged(cmd, g, args[0], hosts, &mf)
			}
			var res *api.CreatedGroup
			var all []api.GroupInfo
			if err := g.call(func(c *api.Client) (err error) {
				if res, err = c.CreateGroup(cmd.Context(), args[0], hosts); err != nil {
					return err
				}
				all, err = c.Groups(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			out := g.stdout
			fmt.Fprintf(out, "Created group %q\n", res.Group.Name)
			warnSameName(g.stderr, &res.Group, all)
			if err := printGroup(out, &res.Group, "  "); err != nil {
				return err
			}
			if len(res.Group.Hosts) == 0 {
				fmt.Fprintln(out, "With no --host, the history lives only on the members' nodes while they run.")
			}
			fmt.Fprintln(out, "Invite (lets whoever holds it read and write; share it privately):")
			fmt.Fprintln(out, res.Invite)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "multiaddr ending in /p2p/PEERID of a node that keeps the group's history (repeatable; the host's \"meshnode id\" prints it)")
	mf.register(cmd)
	return cmd
}

// warnSameName tells that other groups share the new group's name: the
// name then no longer names one group, and commands need the ID.
func warnSameName(w io.Writer, gr *api.GroupInfo, all []api.GroupInfo) {
	var others []string
	for _, o := range all {
		if o.Name == gr.Name && o.ID != gr.ID {
			others = append(others, o.ID)
		}
	}
	if len(others) == 0 {
		return
	}
	fmt.Fprintf(w, "note: you already have %d other group(s) named %q (%s); name this one by its ID, %s\n",
		len(others), gr.Name, strings.Join(others, ", "), gr.ID)
}

func newGroupJoinCmd(g *globals) *cobra.Command {
	var nick string
	cmd := &cobra.Command{
		Use:   "join INVITE",
		Short: "Join the group of an invite",
		Long:  "Join the group of an invite; the node then fetches its history from the group's hosts in the background.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var info *api.GroupInfo
			var all []api.GroupInfo
			if err := g.call(func(c *api.Client) (err error) {
				if info, err = c.JoinGroup(cmd.Context(), args[0], nick); err != nil {
					return err
				}
				all, err = c.Groups(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Joined group %q\n", info.Name)
			warnSameName(g.stderr, info, all)
			if err := printGroup(g.stdout, info, "  "); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Fetching its history in the background; read it with:\n  meshnode messages %s\n", info.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&nick, "nick", "", "your nickname in this group (default: the one given to init)")
	return cmd
}

func newGroupListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var groups []api.GroupInfo
			if err := g.orOffline(func() error {
				return g.call(func(c *api.Client) (err error) {
					groups, err = c.Groups(cmd.Context())
					return err
				})
			}, func(o *daemon.Offline) (err error) {
				groups, err = o.Groups()
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, groups)
			}
			if len(groups) == 0 {
				fmt.Fprintln(g.stdout, "No groups yet: create one with `meshnode group create NAME` or join one with `meshnode group join INVITE`.")
				return nil
			}
			rows := [][]string{{"NAME", "ID", "MEMBERS", "MESSAGES", "UNREAD", "HOSTS", "ACCESS"}}
			for _, gr := range groups {
				unread := fmt.Sprint(gr.Unread)
				if gr.Unread >= 1000 {
					unread = "1000+"
				}
				rows = append(rows, []string{gr.Name, gr.ID, fmt.Sprint(gr.Members), fmt.Sprint(gr.Messages), unread,
					fmt.Sprint(len(gr.Hosts)), accessOf(&gr)})
			}
			return printRows(g.stdout, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupInviteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "invite GROUP",
		Short: "Print an invite to the group (read-only if you may only read)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var invite string
			if err := g.call(func(c *api.Client) (err error) {
				invite, err = c.Invite(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			_, err := fmt.Fprintln(g.stdout, invite)
			return err
		},
	}
}

func newGroupMembersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members GROUP",
		Short: "List the members of a group (of a managed group: with their roles; bots are marked)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var members []api.MemberInfo
			if err := g.call(func(c *api.Client) (err error) {
				members, err = c.Members(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			var info *api.GroupInfo
			if err := g.call(func(c *api.Client) (err error) {
				info, err = c.Group(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			if info.Splits > 0 {
				// On stderr, so that --json output stays parseable.
				warnSplits(g.stderr, args[0], info.Splits)
			}
			if asJSON {
				return printJSON(g.stdout, members)
			}
			rows := [][]string{{"FINGERPRINT", "NICK", ""}}
			if info.Managed {
				rows[0] = []string{"FINGERPRINT", "NICK", "ROLE", ""}
			}
			for _, m := range members {
				self := ""
				if m.Self {
					self = "(you)"
				}
				if info.Managed {
					rows = append(rows, []string{m.Fingerprint, printable(m.Nick), roleOf(&m), self})
				} else {
					rows = append(rows, []string{m.Fingerprint, m.Nick, self})
				}
			}
			if info.Removed {
				fmt.Fprintln(g.stdout, "You were removed from this group: this is the last state you saw.")
			}
			return printRows(g.stdout, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printGroup prints a group's fields, indented.
func printGroup(w io.Writer, gr *api.GroupInfo, indent string) error {
	hosts := strings.Join(gr.Hosts, "\n")
	if hosts == "" {
		hosts = "none"
	}
	fields := [][2]string{
		{indent + "id", gr.ID},
		{indent + "access", accessOf(gr)},
		{indent + "nick", gr.Nick},
		{indent + "hosts", hosts},
	}
	return printFields(w, fields)
}

// accessOf says what this member may do in a group: read-write,
// read-only, or removed (a managed group that removed this member: read-only,
// and what it sent would be refused).
func accessOf(gr *api.GroupInfo) string {
	if gr.Removed {
		return "removed (read-only)"
	}
	return access(gr.CanWrite)
}

func access(canWrite bool) string {
	if canWrite {
		return "read-write"
	}
	return "read-only"
}

// printRows prints rows in aligned columns; the first row is the header.
func printRows(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.TrimRight(strings.Join(r, "\t"), "\t"))
	}
	return tw.Flush()
}
