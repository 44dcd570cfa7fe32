package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
)

func newAliasCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alias",
		Short: "Publish, list and remove the aliases people can find you by",
		Long: "An alias is a name people can use with `meshnode contact request NAME` to ask to connect.\n" +
			"Its connection packages are published on directory hosts under a hash of the alias; aliases\n" +
			"cannot be linked to each other or to you by their packages (a host that sees you publish\n" +
			"several from one session can link them by your transport address).",
	}
	cmd.AddCommand(newAliasAddCmd(g), newAliasListCmd(g), newAliasRemoveCmd(g), newAliasPowCmd(g))
	return cmd
}

func newAliasAddCmd(g *globals) *cobra.Command {
	var hosts []string
	var asJSON bool
	var pow int
	cmd := &cobra.Command{
		Use:   "add NAME [--pow BITS]",
		Short: "Publish connection packages under an alias",
		Long: "Publish connection packages under an alias. Requests through it must carry a proof of work\n" +
			"of --pow BITS leading zero bits (default 16: about 22 ms of one core for whoever asks to\n" +
			"connect; each bit doubles it; 0 asks for none). Requests without a valid proof are dropped\n" +
			"unanswered and counted (`meshnode alias list`). To change it later: `meshnode alias pow NAME BITS`.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &api.AddAliasRequest{Name: args[0], Hosts: hosts}
			if cmd.Flags().Changed("pow") {
				req.ProofBits = &pow
			}
			var a *api.Alias
			if err := g.call(func(c *api.Client) (err error) {
				a, err = c.AddAliasWith(cmd.Context(), req)
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, a)
			}
			fmt.Fprintf(g.stdout, "Alias %q published on %d of %d directory host(s), asking for a %d-bit proof of work.\n",
				a.Name, a.Published, len(a.Hosts), a.ProofBits)
			fmt.Fprintf(g.stdout, "People can now run: meshnode contact request %s\n", a.Name)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "directory host multiaddr ending in /p2p/PEERID (repeatable; default: the configured ones)")
	cmd.Flags().IntVar(&pow, "pow", 16, "proof of work requests must carry, in leading zero bits (0: none; at most 32)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAliasListCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your aliases",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var as []api.Alias
			if err := g.call(func(c *api.Client) (err error) {
				as, err = c.Aliases(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, as)
			}
			if len(as) == 0 {
				fmt.Fprintln(g.stdout, "No aliases yet: add one with `meshnode alias add NAME`.")
				return nil
			}
			rows := [][]string{{"ALIAS", "HOSTS", "PUBLISHED", "POW", "DROPPED", "SINCE"}}
			for _, a := range as {
				rows = append(rows, []string{a.Name, fmt.Sprint(len(a.Hosts)), fmt.Sprint(a.Published),
					fmt.Sprint(a.ProofBits), fmt.Sprint(a.DroppedNoProof), a.Created.Format("2006-01-02")})
			}
			return printRows(g.stdout, rows)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAliasRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Withdraw an alias from the directory hosts; requests sent to it are no longer read",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.call(func(c *api.Client) error { return c.RemoveAlias(cmd.Context(), args[0]) }); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "Alias %q removed.\n", args[0])
			return nil
		},
	}
}

func newAliasPowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pow NAME BITS",
		Short: "Change the proof of work requests through an alias must carry",
		Long: "Change the proof of work (leading zero bits, 0 for none, at most 32) that requests through an\n" +
			"alias must carry. The alias's packages are republished at once. Raising it also applies to the\n" +
			"packages already handed out: requests made with them and a weaker proof are dropped unanswered\n" +
			"(what you want under a flood of requests). Lowering it applies to new packages.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			bits, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("BITS %q: want a number of bits, 0 to 32", args[1])
			}
			var a *api.Alias
			if err := g.call(func(c *api.Client) (err error) {
				a, err = c.SetAliasProofBits(cmd.Context(), args[0], bits)
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, a)
			}
			fmt.Fprintf(g.stdout, "Alias %q now asks for a %d-bit proof of work (republished on %d of %d directory host(s)).\n",
				a.Name, a.ProofBits, a.Published, len(a.Hosts))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
