package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
)

// Managed groups (issue 4): `group add|remove|role|rotate|policy|splits`,
// `group add-manager|transfer-manager|hosts|leave`, `keypackage`, and the
// --managed flags of `group create`.

// managedCreateFlags are the flags of `group create --managed`.
type managedCreateFlags struct {
	managed     bool
	history     string
	rotateEvery time.Duration
	rotateAfter uint64
}

func (f *managedCreateFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.managed, "managed", false, "create a managed group: members join when you add their key package (no invite); removals rotate the keys")
	fl.StringVar(&f.history, "history", "", "managed group: what newcomers read, shared (default) or from-join")
	fl.DurationVar(&f.rotateEvery, "rotate-every", 0, "managed group: rotate the keys this often (at least 1m; 0: never)")
	fl.Uint64Var(&f.rotateAfter, "rotate-after", 0, "managed group: rotate the keys after this many messages (0: never)")
}

// used reports whether a managed-only flag was given without --managed.
func (f *managedCreateFlags) misused(cmd *cobra.Command) bool {
	fl := cmd.Flags()
	return !f.managed && (fl.Changed("history") || fl.Changed("rotate-every") || fl.Changed("rotate-after"))
}

// createManaged runs `group create --managed`.
func createManaged(cmd *cobra.Command, g *globals, name string, hosts []string, f *managedCreateFlags) error {
	req := &api.CreateManagedRequest{Name: name, Hosts: hosts, History: f.history, RotateAfter: f.rotateAfter}
	if f.rotateEvery > 0 {
		req.RotateEvery = f.rotateEvery.String()
	}
	var res *api.CreatedGroup
	var all []api.GroupInfo
	if err := g.call(func(c *api.Client) (err error) {
		if res, err = c.CreateManagedGroup(cmd.Context(), req); err != nil {
			return err
		}
		all, err = c.Groups(cmd.Context())
		return err
	}); err != nil {
		return err
	}
	out := g.stdout
	fmt.Fprintf(out, "Created managed group %q (you manage it)\n", res.Group.Name)
	warnSameName(g.stderr, &res.Group, all)
	if err := printGroup(out, &res.Group, "  "); err != nil {
		return err
	}
	fmt.Fprintf(out, "  policy  %s\n", res.Group.Policy)
	fmt.Fprintln(out, "Add people with their key package (they print one with `meshnode keypackage`):")
	fmt.Fprintf(out, "  meshnode group add %s KEYPACKAGE --role write\n", res.Group.ID)
	return nil
}

func newManagedGroupCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{newGroupAddCmd(g), newGroupRemoveCmd(g), newGroupRoleCmd(g),
		newGroupRotateCmd(g), newGroupPolicyCmd(g), newGroupSplitsCmd(g),
		newGroupAddManagerCmd(g), newGroupTransferManagerCmd(g), newGroupHostsCmd(g), newGroupLeaveCmd(g)}
}

// viaBotFlag registers --via-bot.
func viaBotFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "via-bot", false, "ask the group's bot to do it (a signed request; you still need the manage role)")
}

func newGroupAddCmd(g *globals) *cobra.Command {
	var role, contact string
	var bot, via bool
	cmd := &cobra.Command{
		Use:   "add GROUP KEYPACKAGE | add GROUP --contact CONTACT",
		Short: "Add the person of a key package, or a contact, to a managed group",
		Long: "Add the person who printed KEYPACKAGE (`meshnode keypackage`) to a managed group with a role:\n" +
			"read (reads only), write (reads and writes) or manage (also adds, removes and rotates).\n" +
			"Their welcome travels sealed to them through the group's hosts. Under from-join history\n" +
			"the keys rotate first, so they cannot read what was said before.\n\n" +
			"With --contact, add a connected contact (see `meshnode contact list`: group ID, fingerprint,\n" +
			"nick or the name you reached them by) with the key package their node offered you; the\n" +
			"welcome also travels inside your connection group, so they join without knowing the hosts.\n" +
			"If their node has offered none yet (it has not been online since you connected), the add is\n" +
			"queued and your daemon completes it when their offer arrives: `meshnode contact adds` lists\n" +
			"queued adds, `meshnode contact cancel-add ID` cancels one.",
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("contact") {
				return cobra.ExactArgs(1)(cmd, args)
			}
			return cobra.ExactArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("contact") {
				if bot || via {
					return fmt.Errorf("--contact does not combine with --bot or --via-bot")
				}
				return addContactToGroup(cmd, g, args[0], &api.AddContactToGroupRequest{Contact: contact, Role: role})
			}
			req := &api.AddMemberRequest{KeyPackage: args[1], Role: role, Bot: bot, ViaBot: via}
			return manageCall(cmd, g, func(c *api.Client) (*api.ManageResult, error) {
				return c.AddMember(cmd.Context(), args[0], req)
			})
		},
	}
	cmd.Flags().StringVar(&role, "role", "write", "read, write or manage")
	cmd.Flags().BoolVar(&bot, "bot", false, "the key package is an always-on manager's (listed as a bot)")
	cmd.Flags().StringVar(&contact, "contact", "", "add this connected contact (instead of a KEYPACKAGE argument)")
	viaBotFlag(cmd, &via)
	return cmd
}

func newGroupRemoveCmd(g *globals) *cobra.Command {
	var via bool
	cmd := &cobra.Command{
		Use:   "remove GROUP FINGERPRINT",
		Short: "Remove a member from a managed group (the keys rotate: they read nothing new)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return manageCall(cmd, g, func(c *api.Client) (*api.ManageResult, error) {
				return c.RemoveMember(cmd.Context(), args[0], args[1], via)
			})
		},
	}
	viaBotFlag(cmd, &via)
	return cmd
}

func newGroupRoleCmd(g *globals) *cobra.Command {
	var via bool
	cmd := &cobra.Command{
		Use:   "role GROUP FINGERPRINT ROLE",
		Short: "Change a member's role in a managed group (read, write or manage)",
		Long: "Change a member's role. Losing or gaining write access rotates the keys, so a former\n" +
			"writer cannot post and a new writer gets the write key.",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return manageCall(cmd, g, func(c *api.Client) (*api.ManageResult, error) {
				return c.SetRole(cmd.Context(), args[0], args[1], &api.SetRoleRequest{Role: args[2], ViaBot: via})
			})
		},
	}
	viaBotFlag(cmd, &via)
	return cmd
}

func newGroupRotateCmd(g *globals) *cobra.Command {
	var via bool
	cmd := &cobra.Command{
		Use:   "rotate GROUP",
		Short: "Rotate a managed group's keys now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return manageCall(cmd, g, func(c *api.Client) (*api.ManageResult, error) {
				return c.Rotate(cmd.Context(), args[0], via)
			})
		},
	}
	viaBotFlag(cmd, &via)
	return cmd
}

func newGroupPolicyCmd(g *globals) *cobra.Command {
	var (
		every   time.Duration
		after   uint64
		history string
		via     bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "policy GROUP",
		Short: "Show or change a managed group's rotation and history policy",
		Long: "Without flags, show the policy. --rotate-every rotates the keys periodically (0: never,\n" +
			"at least 1m), --rotate-after after that many messages (0: never); --history says what\n" +
			"newcomers read: shared (earlier messages) or from-join (nothing before they joined).\n" +
			"Removals always rotate. The rotations are done by the group's bot, or else by its manager\n" +
			"whose node runs.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			req := &api.PolicyRequest{ViaBot: via}
			if fl.Changed("history") {
				req.History = &history
			}
			if fl.Changed("rotate-every") {
				s := every.String()
				req.RotateEvery = &s
			}
			if fl.Changed("rotate-after") {
				req.RotateAfter = &after
			}
			if req.History != nil || req.RotateEvery != nil || req.RotateAfter != nil {
				return manageCall(cmd, g, func(c *api.Client) (*api.ManageResult, error) {
					return c.SetPolicy(cmd.Context(), args[0], req)
				})
			}
			var p *api.Policy
			if err := g.call(func(c *api.Client) (err error) {
				p, err = c.Policy(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, p)
			}
			every, after := "never", "never"
			if p.RotateEvery != "" {
				every = p.RotateEvery
			}
			if p.RotateAfter > 0 {
				after = fmt.Sprintf("%d messages", p.RotateAfter)
			}
			return printFields(g.stdout, [][2]string{{"history", p.History}, {"rotate_every", every}, {"rotate_after", after}})
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&every, "rotate-every", 0, "rotate the keys this often (0: never)")
	fl.Uint64Var(&after, "rotate-after", 0, "rotate the keys after this many messages (0: never)")
	fl.StringVar(&history, "history", "", "shared or from-join")
	fl.BoolVar(&asJSON, "json", false, "print JSON (showing the policy)")
	viaBotFlag(cmd, &via)
	return cmd
}

func newGroupSplitsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "splits GROUP",
		Short: "List the splits detected in a managed group (its manager showed members different states)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ss []api.Split
			if err := g.call(func(c *api.Client) (err error) {
				ss, err = c.Splits(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, ss)
			}
			if len(ss) == 0 {
				fmt.Fprintln(g.stdout, "No split detected.")
				return nil
			}
			for _, s := range ss {
				fmt.Fprintf(g.stdout, "%s  epoch %d  %s\n", s.Detected.Local().Format("2006-01-02 15:04:05"), s.Epoch, printable(s.Reason))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupAddManagerCmd(g *globals) *cobra.Command {
	return memberOpCmd(g, "add-manager GROUP FINGERPRINT",
		"Make a member of a managed group a manager (it can then add, remove and rotate)",
		"Give a member the manage role. A member who could only read gets the write key too:\n"+
			"the keys rotate.",
		(*api.Client).AddManager)
}

func newGroupTransferManagerCmd(g *globals) *cobra.Command {
	return memberOpCmd(g, "transfer-manager GROUP FINGERPRINT",
		"Hand your management of a managed group to a member (you become a writer)",
		"Make a member a manager and step down to write. A member who could only read gets the\n"+
			"write key first (the keys rotate). The only manager of a group hands over this way before\n"+
			"leaving it.",
		(*api.Client).TransferManager)
}

// memberOpCmd is a `group` command that applies a manager operation to one
// member (GROUP FINGERPRINT), with --via-bot and --json.
func memberOpCmd(g *globals, use, short, long string,
	call func(*api.Client, context.Context, string, string, bool) (*api.ManageResult, error)) *cobra.Command {
	var via, asJSON bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return manageCallOut(cmd, g, asJSON, func(c *api.Client) (*api.ManageResult, error) {
				return call(c, cmd.Context(), args[0], args[1], via)
			})
		},
	}
	viaBotFlag(cmd, &via)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newGroupHostsCmd(g *globals) *cobra.Command {
	var via, asJSON bool
	cmd := &cobra.Command{
		Use:   "hosts GROUP [MULTIADDR...]",
		Short: "Show a group's hosts, or set a managed group's hosts",
		Long: "Without addresses, print the hosts this node relays the group's messages to and fetches\n" +
			"them from. With addresses (multiaddrs ending in /p2p/PEERID, in order of preference), a\n" +
			"manager replaces a managed group's hosts: the change is posted to the old and the new\n" +
			"hosts, and the members' nodes move to the new ones. Keep the old hosts running until\n" +
			"the members have moved (a member offline meanwhile learns of it from an old host).",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return manageCallOut(cmd, g, asJSON, func(c *api.Client) (*api.ManageResult, error) {
					return c.SetHosts(cmd.Context(), args[0], &api.SetHostsRequest{Hosts: args[1:], ViaBot: via})
				})
			}
			if via {
				return fmt.Errorf("--via-bot needs the new hosts")
			}
			var h *api.GroupHosts
			if err := g.call(func(c *api.Client) (err error) {
				h, err = c.GroupHosts(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, h)
			}
			if len(h.Hosts) == 0 {
				fmt.Fprintln(g.stdout, "No hosts: the history lives on the members' nodes while they run.")
			}
			for _, a := range h.Hosts {
				fmt.Fprintln(g.stdout, printable(a))
			}
			return nil
		},
	}
	viaBotFlag(cmd, &via)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newGroupLeaveCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "leave GROUP",
		Short: "Leave a group: your node forgets it (its keys and messages)",
		Long: "Leave a group and delete what your node holds of it: its keys, messages and state.\n" +
			"In a managed group your node first asks the group's manager to remove you (the keys\n" +
			"rotate, so you read nothing new). The only manager of a managed group with other members\n" +
			"cannot leave: hand management over first (group transfer-manager).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res *api.ManageResult
			if err := g.call(func(c *api.Client) (err error) {
				res, err = c.LeaveGroup(cmd.Context(), args[0])
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, res)
			}
			for _, e := range res.Events {
				fmt.Fprintf(g.stdout, "  %s\n", printable(e))
			}
			for h, why := range res.Failed {
				fmt.Fprintf(g.stdout, "warning: host %s did not store it: %s\n", h, printable(why))
			}
			fmt.Fprintln(g.stdout, "Left the group; your node deleted its keys and messages.")
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// manageCallOut is manageCall, printing the result as JSON when asked.
func manageCallOut(cmd *cobra.Command, g *globals, asJSON bool, fn func(*api.Client) (*api.ManageResult, error)) error {
	if !asJSON {
		return manageCall(cmd, g, fn)
	}
	var res *api.ManageResult
	if err := g.call(func(c *api.Client) (err error) {
		res, err = fn(c)
		return err
	}); err != nil {
		return err
	}
	return printJSON(g.stdout, res)
}

// manageCall runs a management call and prints what it did.
func manageCall(cmd *cobra.Command, g *globals, fn func(*api.Client) (*api.ManageResult, error)) error {
	var res *api.ManageResult
	if err := g.call(func(c *api.Client) (err error) {
		res, err = fn(c)
		return err
	}); err != nil {
		return err
	}
	return printManageResult(g.stdout, res)
}

func printManageResult(w io.Writer, res *api.ManageResult) error {
	if res.Requested {
		fmt.Fprintln(w, "Asked the group's bot; it acts when it receives the request (watch `meshnode messages`).")
	}
	for _, e := range res.Events {
		fmt.Fprintf(w, "  %s\n", printable(e))
	}
	if res.Rotated {
		fmt.Fprintf(w, "Keys rotated: the group is now at epoch %d.\n", res.Epoch)
	}
	for h, why := range res.Failed {
		fmt.Fprintf(w, "warning: host %s did not store it: %s\n", h, printable(why))
	}
	return nil
}

// warnSplits prints a warning when splits were detected in a group.
func warnSplits(w io.Writer, group string, n int) {
	if n > 0 {
		fmt.Fprintf(w, "WARNING: %d split(s) detected in this group: its manager showed members different states\n"+
			"or keys. Compare the member list with the others out of band; details: meshnode group splits %s\n", n, group)
	}
}

func newKeyPackageCmd(g *globals) *cobra.Command {
	var (
		ttl    time.Duration
		hosts  []string
		list   bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "keypackage",
		Short: "Print a key package for a manager to add you to a managed group (the last line)",
		Long: "Print a key package: your public keys and nickname, signed, valid for --ttl. Give it to the\n" +
			"manager of a managed group (it is not secret, but anyone holding it can tell when a welcome\n" +
			"for it arrives). Your node then watches for the welcome, fetching it from --host (the\n" +
			"group's hosts) and its bootstrap peers, and joins. Use a fresh key package per group.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if list {
				var kps []api.KeyPackage
				if err := g.call(func(c *api.Client) (err error) {
					kps, err = c.KeyPackages(cmd.Context())
					return err
				}); err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, kps)
				}
				rows := [][]string{{"EXPIRES", "HOSTS", "KEY PACKAGE"}}
				for _, kp := range kps {
					rows = append(rows, []string{kp.Expires.Local().Format("2006-01-02 15:04"), fmt.Sprint(len(kp.Hosts)), kp.KeyPackage[:24] + "…"})
				}
				return printRows(g.stdout, rows)
			}
			req := &api.NewKeyPackageRequest{Hosts: hosts}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			var kp *api.KeyPackage
			if err := g.call(func(c *api.Client) (err error) {
				kp, err = c.NewKeyPackage(cmd.Context(), req)
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, kp)
			}
			fmt.Fprintf(g.stdout, "Key package of %s (%s), valid until %s.\n", kp.Nick, kp.Fingerprint, kp.Expires.Local().Format(time.RFC1123))
			fmt.Fprintln(g.stdout, "Give it to the group's manager; your node joins when the welcome arrives:")
			fmt.Fprintln(g.stdout, kp.KeyPackage)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&ttl, "ttl", 0, "how long the key package is valid (default a week)")
	fl.StringArrayVar(&hosts, "host", nil, "multiaddr with /p2p/ID of a host to fetch the welcome from (repeatable; usually the group's hosts)")
	fl.BoolVar(&list, "list", false, "list the key packages still awaiting a welcome")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// roleOf is a member's role for display.
func roleOf(m *api.MemberInfo) string {
	r := m.Role
	if m.Bot {
		r = strings.TrimSpace(r + " (bot)")
	}
	return r
}
