package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/daemon"
	"github.com/meshnode/meshnode/node"
)

func newRunCmd(g *globals) *cobra.Command {
	var (
		listen, allow, bootstrap       []string
		limits                         []string
		apiAddr, policy, metrics, role string
		uiAddr                         string
		logLevel, logFormat            string
		bot                            bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node and its control API until interrupted",
		Long: "Run the node and its control API until SIGINT or SIGTERM. Flags override config.json.\n" +
			"The API address actually bound is written to api.addr in the home while the daemon runs.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := g.homeDir()
			if err != nil {
				return err
			}
			h, err := daemon.OpenHome(dir)
			if err != nil {
				return err
			}
			cfg, err := h.Config()
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("listen") {
				cfg.ListenAddrs = listen
			}
			if f.Changed("api") {
				cfg.APIAddr = apiAddr
			}
			if f.Changed("ui") {
				cfg.UIAddr = uiAddr
			}
			if f.Changed("host-policy") {
				cfg.HostPolicy = node.HostPolicy(policy)
			}
			if f.Changed("allow") {
				cfg.Allowlist = allow
			}
			if f.Changed("bootstrap") {
				cfg.Bootstrap = bootstrap
			}
			if f.Changed("metrics") {
				cfg.MetricsAddr = metrics
			}
			if f.Changed("log-level") {
				cfg.LogLevel = logLevel
			}
			if f.Changed("log-format") {
				cfg.LogFormat = logFormat
			}
			was := cfg.Role
			if f.Changed("role") {
				cfg.Role = node.Role(role)
			}
			if err := setLimits(&cfg, limits); err != nil {
				return err
			}
			if bot {
				if f.Changed("role") && cfg.Role != node.RoleBot {
					return fmt.Errorf("--bot conflicts with --role %s", role)
				}
				cfg.Role = node.RoleBot
			}
			if cfg.Role != was && !f.Changed("host-policy") && cfg.HostPolicy == daemon.DefaultConfig(was).HostPolicy {
				// Another role than the home's: its default hosting
				// policy comes with it, unless config.json chose one.
				cfg.HostPolicy = daemon.DefaultConfig(cfg.Role).HostPolicy
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if os.Getenv("GOMEMLIMIT") == "" && cfg.MemoryLimitMiB > 0 {
				// A soft limit: the garbage collector works harder near it
				// (the environment variable, when set, wins).
				debug.SetMemoryLimit(cfg.MemoryLimitMiB << 20)
			}
			log, err := daemon.NewLogger(g.stderr, cfg.LogLevel, cfg.LogFormat)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				// After the first signal, a second one kills at once.
				<-ctx.Done()
				stop()
			}()
			pass := func() ([]byte, error) { return readPassphrase(g.stderr, false) }
			return daemon.Run(ctx, h, cfg, pass, daemon.WithLogger(log))
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&listen, "listen", nil, "libp2p multiaddr to listen on (repeatable)")
	f.StringVar(&apiAddr, "api", "", "control API address: host:port or unix:/path/to/sock (default 127.0.0.1:0)")
	f.StringVar(&uiAddr, "ui", "", "serve the web app on `ADDR` (host:port), or \"off\" (default: the control API's address; log in with meshnode ui)")
	f.StringVar(&policy, "host-policy", "", "which mailboxes to host for others: own, allowlist or open")
	f.StringArrayVar(&allow, "allow", nil, "peer ID or mailbox tag served under the allowlist policy (repeatable)")
	f.StringArrayVar(&bootstrap, "bootstrap", nil, "multiaddr with /p2p/ID to dial at start (repeatable)")
	f.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this host:port at /metrics")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "", "text or json")
	f.StringVar(&role, "role", "", "member, host or bot")
	f.StringArrayVar(&limits, "limit", nil, "set a hosting limit, name=value (repeatable): any field of config.json's \"limits\" object, e.g. --limit new_mailbox_rate=2 --limit request_timeout=3s")
	f.BoolVar(&bot, "bot", false, "run as an always-on manager (--role bot): host its groups, apply their policies, serve managers' requests")
	return cmd
}

// setLimits applies --limit name=value overrides to the config's limits.
func setLimits(cfg *daemon.Config, kvs []string) error {
	if len(kvs) == 0 {
		return nil
	}
	if cfg.Limits == nil {
		l := daemon.DefaultLimits()
		cfg.Limits = &l
	}
	for _, kv := range kvs {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("%w: --limit %q: want name=value", daemon.ErrConfig, kv)
		}
		if err := cfg.Limits.SetLimit(strings.TrimSpace(name), value); err != nil {
			return err
		}
	}
	return nil
}
