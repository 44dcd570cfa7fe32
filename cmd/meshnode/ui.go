package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/webui"
)

// openBrowser is webui.OpenBrowser; tests replace it.
var openBrowser = webui.OpenBrowser

func newUICmd(g *globals) *cobra.Command {
	var (
		open   bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "ui",
		Aliases: []string{"open"},
		Short:   "Print a one-time login URL for the web app (--open, or `meshnode open`, opens it)",
		Long: "Print a one-time login URL for the web app the running daemon serves. The URL works once,\n" +
			"within " + webui.LoginTTL.String() + "; opening it logs that browser in (a session cookie) until the daemon\n" +
			"restarts or the session ends. --open opens it in the default browser; `meshnode open` does too.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l *api.LoginURL
			if err := g.call(func(c *api.Client) (err error) {
				l, err = c.UILogin(cmd.Context())
				return err
			}); err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(g.stdout, l); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(g.stdout, l.URL)
				fmt.Fprintf(g.stderr, "one login, until %s; anyone who gets this URL before you use it can read your conversations\n",
					l.Expires.Local().Format(time.TimeOnly))
			}
			if open || cmd.CalledAs() == "open" {
				if err := openBrowser(l.URL); err != nil {
					// The URL is printed: the person can open it.
					fmt.Fprintf(g.stderr, "could not open a browser: %v\n", err)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&open, "open", false, "open the URL in the default browser")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newVerifyCmd(g *globals) *cobra.Command {
	var (
		remove bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "verify [FINGERPRINT]",
		Short: "Mark a fingerprint as verified after comparing it out of band (no argument: list them)",
		Long: "Mark a person's fingerprint as verified once you compared it with them out of band (in person,\n" +
			"by phone): the web app then shows a mark beside their messages and in member lists. The mark\n" +
			"is local and belongs to that identity key. --remove clears it.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return g.call(func(c *api.Client) error {
				if len(args) == 0 {
					vs, err := c.Verified(ctx)
					if err != nil {
						return err
					}
					if asJSON {
						return printJSON(g.stdout, vs)
					}
					for _, v := range vs {
						fmt.Fprintf(g.stdout, "%s  since %s\n", v.Fingerprint, v.Since.Local().Format(time.DateOnly))
					}
					return nil
				}
				v, err := c.SetVerified(ctx, args[0], !remove)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, v)
				}
				if remove {
					fmt.Fprintf(g.stdout, "%s is no longer marked as verified\n", args[0])
				} else {
					fmt.Fprintf(g.stdout, "%s marked as verified\n", v.Fingerprint)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&remove, "remove", false, "clear the mark")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
