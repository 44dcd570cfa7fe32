package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

func newInitCmd(g *globals) *cobra.Command {
	var (
		role        string
		nick        string
		listen      []string
		unencrypted bool
		pq          bool
		classic     bool
		kdf         keymgmt.KDFParams
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a home directory: configuration, API token and profile keystore",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := g.homeDir()
			if err != nil {
				return err
			}
			p := daemon.DefaultInitParams()
			p.Role = node.Role(role)
			p.Nick = nick
			p.ListenAddrs = listen
			p.Unencrypted = unencrypted
			// Post-quantum (X-Wing) unless --classic; --pq, the default,
			// is kept for scripts written when it was not.
			p.Suite = keymgmt.SuitePQ
			if classic {
				p.Suite = keymgmt.SuiteX25519
			}
			p.KDF = kdf
			var pass []byte
			if !unencrypted {
				if pass, err = readPassphrase(g.stderr, true); err != nil {
					return err
				}
				defer clear(pass)
			}
			res, err := daemon.Init(dir, p, pass)
			if err != nil {
				return err
			}
			if unencrypted {
				fmt.Fprintf(g.stderr, "WARNING: the keystore %s is NOT encrypted: anyone who can read it can impersonate you.\n",
					res.Home.Path(daemon.FileKeystore))
			}
			out := g.stdout
			fmt.Fprintf(out, "Created meshnode home %s\n", res.Home.Dir())
			fmt.Fprintf(out, "  role         %s\n", res.Config.Role)
			fmt.Fprintf(out, "  fingerprint  %s\n", res.Fingerprint)
			fmt.Fprintf(out, "  key suite    %s\n", suiteName(res.Suite))
			fmt.Fprintf(out, "Compare the fingerprint with your contacts out of band.\n")
			fmt.Fprintf(out, "Next, start the node:\n  meshnode run --home %s\n", res.Home.Dir())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", string(node.RoleMember), "what the node is for: member, host or bot")
	f.StringVar(&nick, "nick", "", "display name offered to contacts")
	f.StringArrayVar(&listen, "listen", nil, "libp2p multiaddr to listen on (repeatable; default depends on the role)")
	f.BoolVar(&unencrypted, "unencrypted", false, "store the keystore without a passphrase (not recommended)")
	f.BoolVar(&classic, "classic", false, "use the classic X25519 key suite instead of the default hybrid post-quantum one (ML-KEM-768 + X25519, X-Wing)")
	f.BoolVar(&pq, "pq", false, "use the hybrid post-quantum key suite (ML-KEM-768 + X25519): the default")
	cmd.MarkFlagsMutuallyExclusive("pq", "classic")
	// Hidden: tests only (see the package doc).
	f.Uint32Var(&kdf.Time, "kdf-time", 0, "Argon2id passes (tests only)")
	f.Uint32Var(&kdf.MemoryKiB, "kdf-memory-kib", 0, "Argon2id memory in KiB (tests only)")
	f.Uint8Var(&kdf.Threads, "kdf-threads", 0, "Argon2id threads (tests only)")
	for _, n := range []string{"kdf-time", "kdf-memory-kib", "kdf-threads"} {
		_ = f.MarkHidden(n)
	}
	return cmd
}

// suiteName says what a profile's key suite protects against.
func suiteName(s keymgmt.Suite) string {
	if s == keymgmt.SuitePQ {
		return "X-Wing (ML-KEM-768 + X25519, post-quantum)"
	}
	return "X25519 (classic: not post-quantum)"
}
