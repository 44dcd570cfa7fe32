package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

// ConfigVersion is the version of the config.json layout this package
// writes and reads.
const ConfigVersion = 1

// maxConfigSize bounds config.json.
const maxConfigSize = 256 << 10

// UIOff as the ui_addr turns the web app off.
const UIOff = "off"

// DefaultUnixUIAddr serves the web app when the control API listens on a
// Unix socket, which browsers cannot reach.
const DefaultUnixUIAddr = "127.0.0.1:0"

// Defaults written by init.
const (
	DefaultAPIAddr = "127.0.0.1:0"
	// DefaultHostPort is where hosts and bots listen by default, so their
	// stable peer ID comes with a stable address.
	DefaultHostPort = 4001
)

// Config is config.json: what a daemon runs with, unless a command-line
// flag overrides it. The JSON field names are a contract with users who
// edit the file.
type Config struct {
	// Version is ConfigVersion.
	Version int `json:"version"`
	// Role is member, host or bot.
	Role node.Role `json:"role"`
	// Nick is a display name offered to contacts (never sent to hosts).
	Nick string `json:"nick"`
	// ListenAddrs are libp2p multiaddrs to listen on.
	ListenAddrs []string `json:"listen_addrs"`
	// APIAddr is the control API address: host:port (port 0 picks a free
	// one) or unix:/path/to/sock.
	APIAddr string `json:"api_addr"`
	// HostPolicy is own, allowlist or open.
	HostPolicy node.HostPolicy `json:"host_policy"`
	// Allowlist holds peer IDs and mailbox tags served under the
	// allowlist policy.
	Allowlist []string `json:"allowlist"`
	// Bootstrap are multiaddrs (with /p2p/ID) dialled at start.
	Bootstrap []string `json:"bootstrap"`
	// UIAddr is where the web app is served: "" on the control API's
	// address (127.0.0.1:0 when that is a Unix socket), "off" for no web
	// app, or host:port (loopback unless bound elsewhere explicitly).
	UIAddr string `json:"ui_addr,omitempty"`
	// MetricsAddr is where Prometheus metrics are served (empty: off).
	MetricsAddr string `json:"metrics_addr"`
	// LogLevel is debug, info, warn or error; LogFormat text or json.
	LogLevel  string `json:"log_level"`
	LogFormat string `json:"log_format"`
	// UserIDProofBits is the proof of work (leading zero bits, 0 for
	// none, at most keymgmt.MaxProofBits) that contact requests through
	// the published user ID must carry. Changing it republishes the user
	// ID's packages at the next start; raising it also applies to the
	// packages already handed out. Aliases have their own (`meshnode
	// alias add --pow`, `alias pow`).
	UserIDProofBits int `json:"user_id_proof_bits"`
	// DirectoryHosts are the directory hosts (multiaddrs with /p2p/ID)
	// where contact requests look names up by default (`contact request`
	// without --host) and where names are published without --host; empty
	// means the bootstrap peers.
	DirectoryHosts []string `json:"directory_hosts"`
	// DiskMinFreeMiB and DiskMinFreePercent are the free-space watermark
	// of the node's envelope store: below the smaller of the two it
	// refuses writes (relays, sends) with a disk-full error and keeps
	// serving reads, and it resumes by itself when space is freed. 0
	// means the default (256 MiB, 5%). DiskBallastMiB is the size of the
	// emergency ballast file kept in the data directory so the store can
	// open on a full disk (0: the role's default, 64 MiB for a host or a
	// bot, 16 MiB for a member; -1: none).
	DiskMinFreeMiB     int64   `json:"disk_min_free_mib"`
	DiskMinFreePercent float64 `json:"disk_min_free_percent"`
	DiskBallastMiB     int64   `json:"disk_ballast_mib"`
	// MemoryLimitMiB is the daemon's soft memory limit (Go's GOMEMLIMIT,
	// which an environment variable of that name overrides): the garbage
	// collector works harder as the process nears it, so memory stays
	// bounded under a steady load. 0: the role's default, 128 MiB for a
	// member, 1024 MiB for a host or a bot; -1: none.
	MemoryLimitMiB int64 `json:"memory_limit_mib"`
	// MaxFileMiB is the largest file this node sends (`meshnode send
	// --file`); 0: 100 MiB.
	MaxFileMiB int64 `json:"max_file_mib,omitempty"`
	// Limits are the hosting limits (config_limits.go); fields it does
	// not name keep their defaults.
	Limits *Limits `json:"limits,omitempty"`
}

// applyTo sets the node parameters that come from the config file alone
// (the listen, bootstrap and hosting ones are set by New).
func (c Config) applyTo(p *node.Params) {
	p.Contacts.UserIDProofBits = uint8(c.UserIDProofBits)
	p.Contacts.DirectoryHosts = append([]string(nil), c.DirectoryHosts...)
	p.Store.Disk.MinFreeBytes = c.DiskMinFreeMiB << 20
	p.Store.Disk.MinFreePercent = c.DiskMinFreePercent
	if c.DiskBallastMiB != 0 {
		p.Store.Disk.BallastBytes = max(c.DiskBallastMiB, 0) << 20
	}
	if c.Limits != nil {
		c.Limits.applyTo(p)
	}
	p.MaxFileSize = c.MaxFileMiB << 20
}

// DefaultMemoryLimitMiB is the soft memory limit of a role's daemon.
// Measured with `meshnode bench soak` (issue 15): a member sending 50
// messages a second has a live heap of 21 to 28 MiB after a collection,
// but its anonymous memory swings between 45 and 180 MiB: the buffers of
// Badger's flushes and compactions (tables built in memory, up to ~30
// MiB each, several at once) raise the heap between two collections,
// and Go keeps what it grew to. With a 128 MiB limit the collector and
// the scavenger keep a member's anonymous memory under ~105 MiB in the
// same run; a host, whose store serves many, gets room for its caches.
func DefaultMemoryLimitMiB(role node.Role) int64 {
	if role == node.RoleHost || role == node.RoleBot {
		return 1024
	}
	return 128
}

// roleOrMember is the role, member when unset or unknown (defaults only).
func (c *Config) roleOrMember() node.Role {
	switch c.Role {
	case node.RoleHost, node.RoleBot:
		return c.Role
	}
	return node.RoleMember
}

// DefaultConfig is what init writes for a role.
//
// The host policy follows the role: a host is run to keep the history of
// groups that name it, so it serves any mailbox relayed to it (open,
// within the store's quotas and the relay's per-peer rate limits); a
// member and a bot serve only their own groups (own). An operator who
// wants a host for listed peers or groups only sets allowlist.
func DefaultConfig(role node.Role) Config {
	listen := "/ip4/0.0.0.0/tcp/0"
	if role == node.RoleHost || role == node.RoleBot {
		listen = fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultHostPort)
	}
	policy := node.PolicyOwn
	if role == node.RoleHost {
		policy = node.PolicyOpen
	}
	return Config{
		Version:     ConfigVersion,
		Role:        role,
		ListenAddrs: []string{listen},
		APIAddr:     DefaultAPIAddr,
		HostPolicy:  policy,
		Allowlist:   []string{},
		Bootstrap:   []string{},
		LogLevel:    "info",
		LogFormat:   "text",
	}
}

// ParseConfig decodes and checks config.json. Unknown fields are errors
// (a typo must not silently fall back to a default); missing fields take
// their defaults.
func ParseConfig(b []byte) (Config, error) {
	if len(b) > maxConfigSize {
		return Config{}, fmt.Errorf("%w: %d bytes, at most %d", ErrConfig, len(b), maxConfigSize)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%w: trailing data after the JSON object", ErrConfig)
	}
	if c.Version != ConfigVersion {
		return Config{}, fmt.Errorf("%w: version %d, this meshnode reads version %d", ErrConfig, c.Version, ConfigVersion)
	}
	c.fillDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Marshal encodes c as written to config.json (indented, final newline).
func (c Config) Marshal() ([]byte, error) {
	c.fillDefaults()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (c *Config) fillDefaults() {
	d := DefaultConfig(c.Role)
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = d.ListenAddrs
	}
	if c.APIAddr == "" {
		c.APIAddr = d.APIAddr
	}
	if c.HostPolicy == "" {
		c.HostPolicy = d.HostPolicy
	}
	if c.Allowlist == nil {
		c.Allowlist = []string{}
	}
	if c.Bootstrap == nil {
		c.Bootstrap = []string{}
	}
	if c.DirectoryHosts == nil {
		c.DirectoryHosts = []string{}
	}
	if c.LogLevel == "" {
		c.LogLevel = d.LogLevel
	}
	if c.LogFormat == "" {
		c.LogFormat = d.LogFormat
	}
	disk := store.DefaultDiskParams()
	if c.DiskMinFreeMiB == 0 {
		c.DiskMinFreeMiB = disk.MinFreeBytes >> 20
	}
	if c.DiskMinFreePercent == 0 {
		c.DiskMinFreePercent = disk.MinFreePercent
	}
	if c.DiskBallastMiB == 0 {
		c.DiskBallastMiB = node.DefaultParams(c.roleOrMember()).Store.Disk.BallastBytes >> 20
	}
	if c.MemoryLimitMiB == 0 {
		c.MemoryLimitMiB = DefaultMemoryLimitMiB(c.roleOrMember())
	}
	if c.Limits == nil {
		l := DefaultLimits()
		c.Limits = &l
	}
}

// Validate checks every field and reports all problems at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Role {
	case node.RoleMember, node.RoleHost, node.RoleBot:
	default:
		errs = append(errs, fmt.Errorf("role %q (want member, host or bot)", c.Role))
	}
	if err := checkNick(c.Nick); err != nil {
		errs = append(errs, err)
	}
	if len(c.ListenAddrs) == 0 {
		errs = append(errs, errors.New("no listen address"))
	}
	for _, a := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			errs = append(errs, fmt.Errorf("listen address %q: %v", a, err))
		}
	}
	if _, _, err := api.ParseAddress(c.APIAddr); err != nil {
		errs = append(errs, fmt.Errorf("api address: %v", err))
	}
	if _, err := node.ParseHostPolicy(string(c.HostPolicy)); err != nil {
		errs = append(errs, fmt.Errorf("host policy %q (want own, allowlist or open)", c.HostPolicy))
	}
	for _, a := range c.Bootstrap {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			errs = append(errs, fmt.Errorf("bootstrap address %q (want a multiaddr ending in /p2p/<peer id>): %v", a, err))
		}
	}
	for _, a := range c.DirectoryHosts {
		if _, err := peer.AddrInfoFromString(a); err != nil {
			errs = append(errs, fmt.Errorf("directory host %q (want a multiaddr ending in /p2p/<peer id>): %v", a, err))
		}
	}
	for _, a := range c.Allowlist {
		if strings.TrimSpace(a) == "" {
			errs = append(errs, errors.New("empty allowlist entry"))
		}
	}
	if c.UIAddr != "" && c.UIAddr != UIOff {
		if _, port, err := net.SplitHostPort(c.UIAddr); err != nil || !validPort(port) {
			errs = append(errs, fmt.Errorf("ui address %q (want host:port, or %q)", c.UIAddr, UIOff))
		}
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("metrics address %q (want host:port)", c.MetricsAddr))
		}
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.UserIDProofBits < 0 || c.UserIDProofBits > keymgmt.MaxProofBits {
		errs = append(errs, fmt.Errorf("user_id_proof_bits %d (want 0, for none, to %d)", c.UserIDProofBits, keymgmt.MaxProofBits))
	}
	if c.DiskMinFreeMiB < 0 || c.DiskMinFreeMiB > 1<<30 {
		errs = append(errs, fmt.Errorf("disk_min_free_mib %d (want a positive number of MiB)", c.DiskMinFreeMiB))
	}
	if c.DiskMinFreePercent < 0 || c.DiskMinFreePercent >= 100 {
		errs = append(errs, fmt.Errorf("disk_min_free_percent %v (want a percentage below 100)", c.DiskMinFreePercent))
	}
	if c.MaxFileMiB < 0 || c.MaxFileMiB > 1<<20 {
		errs = append(errs, fmt.Errorf("max_file_mib %d (want 0 for the default of 100, or up to 1048576)", c.MaxFileMiB))
	}
	if c.MemoryLimitMiB < -1 || (c.MemoryLimitMiB > 0 && c.MemoryLimitMiB < 64) || c.MemoryLimitMiB > 1<<24 {
		errs = append(errs, fmt.Errorf("memory_limit_mib %d (want at least 64 MiB, or -1 for none)", c.MemoryLimitMiB))
	}
	if c.DiskBallastMiB < -1 || c.DiskBallastMiB > 1<<20 {
		errs = append(errs, fmt.Errorf("disk_ballast_mib %d (want MiB, or -1 for no ballast)", c.DiskBallastMiB))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log format %q (want text or json)", c.LogFormat))
	}
	if c.Limits != nil {
		if err := c.Limits.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

// checkNick: valid UTF-8, at most keymgmt.MaxNickSize bytes, no control
// characters (the same rule as key packages).
func checkNick(s string) error {
	if len(s) > keymgmt.MaxNickSize {
		return fmt.Errorf("nick is %d bytes, at most %d", len(s), keymgmt.MaxNickSize)
	}
	if !utf8.ValidString(s) {
		return errors.New("nick is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("nick contains control characters")
		}
	}
	return nil
}

// ParseLogLevel parses debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q (want debug, info, warn or error)", s)
}

// NewLogger returns the daemon's structured logger writing to w in the
// config's level and format.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	lv, err := ParseLogLevel(level)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: log format %q (want text or json)", ErrConfig, format)
}
