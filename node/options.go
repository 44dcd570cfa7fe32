package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/directory"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/hostsync"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// Role is what a node is run for. It changes defaults, never the protocol:
// every role hosts, relays and fetches the same way.
type Role string

const (
	// RoleMember is a person's node: fresh transport identity per start,
	// hosts its own groups' mailboxes, small connection limits.
	RoleMember Role = "member"
	// RoleHost is an always-on community host: stable transport identity,
	// hosts what its policy allows, larger limits.
	RoleHost Role = "host"
	// RoleBot is an always-on management bot: like a host, and it manages
	// the groups it administers.
	RoleBot Role = "bot"
)

// HostPolicy decides which mailboxes a node stores and serves for others.
type HostPolicy string

const (
	// PolicyOwn serves only the mailboxes of this node's own groups (and
	// those added with Node.HostMailbox).
	PolicyOwn HostPolicy = "own"
	// PolicyAllowlist also serves mailboxes named in Params.Allowlist, and
	// any mailbox relayed to it by a peer named there.
	PolicyAllowlist HostPolicy = "allowlist"
	// PolicyOpen serves any mailbox, within quotas and rate limits.
	PolicyOpen HostPolicy = "open"
)

// ParseHostPolicy parses own|allowlist|open.
func ParseHostPolicy(s string) (HostPolicy, error) {
	switch p := HostPolicy(s); p {
	case PolicyOwn, PolicyAllowlist, PolicyOpen:
		return p, nil
	}
	return "", fmt.Errorf("%w: host policy %q (want own, allowlist or open)", ErrConfig, s)
}

// Params configure a node. Start from DefaultParams(role).
type Params struct {
	Role Role
	// ListenAddrs are multiaddrs to listen on.
	ListenAddrs []string
	// Bootstrap multiaddrs (with /p2p/ID) are dialled at start.
	Bootstrap []string
	// StablePeerID keeps the transport key in PeerKeyFile across starts.
	// Members default to false: a fresh peer ID each start, so hosts cannot
	// link a member's sessions.
	StablePeerID bool
	PeerKeyFile  string

	HostPolicy HostPolicy
	// Allowlist holds peer IDs and mailbox tags (hex) for PolicyAllowlist.
	Allowlist []string

	// Resource limits: the libp2p resource manager gets these fixed
	// numbers instead of sizing itself from the whole machine.
	MemoryLimit int64
	FDLimit     int
	// Connection manager watermarks.
	ConnLow, ConnHigh int
	ConnGrace         time.Duration

	// Admission limits what the node takes from whom (per network prefix
	// as well as per peer; package admission). Its per-prefix limits apply
	// on the node's own libp2p host only (not WithHost).
	Admission admission.Params
	// MaxJoinedTopics bounds the gossip topics joined for hosted
	// mailboxes that are not the node's own (topics.go): those of the
	// most recently active ones. The node's groups' mailboxes, its
	// allowlist's and its directory's stay joined in any case.
	MaxJoinedTopics int

	// ProcessInterval is how often the member re-reads its own store as a
	// safety net (arrivals normally wake it at once).
	ProcessInterval time.Duration
	// CatchUpInterval is how often a member catches up from its groups'
	// hosts in the background.
	CatchUpInterval time.Duration
	// ManageInterval is how often the manager loop fetches pending
	// welcomes and applies managed groups' rotation policies (bot.go).
	ManageInterval time.Duration

	// MemberMemTableSize sizes the member database's memtables (Badger
	// keeps two); the simulator shrinks it to fit hundreds of nodes.
	MemberMemTableSize int64

	Store store.Params
	Relay relay.Params
	Fetch fetch.Params
	// Sync tunes anti-entropy sync (package hostsync). A member's node
	// syncs its groups' mailboxes with their hosts and with a few other
	// members (MemberSyncPeers), within a byte budget per peer.
	Sync hostsync.Params
	// MemberSyncPeers is how many topic peers a member reconciles a
	// mailbox with besides the hosts its group names: the members XOR-
	// closest to it, a sparse overlay that spreads what one host dropped
	// or never had (such as equivocation evidence) and heals a host that
	// comes back empty.
	MemberSyncPeers int
	// Directory runs the connection directory (hosts and bots serve it).
	Directory directory.Params
	// Contacts tune a member's aliases and connection requests.
	Contacts contacts.Params
	// Outbox tunes how a member retries its own envelopes (outbox.go).
	Outbox OutboxParams
	// KeyTreeMin is the smallest managed group this node, as a manager,
	// rotates through the group's key tree; smaller ones get direct HPKE
	// seals (keytree.go). 0: groupstate.TreeMinMembers, or
	// TreeMinMembersPQ in a group with a post-quantum member.
	KeyTreeMin int
	// MaxFileSize is the largest file this node sends (0:
	// DefaultMaxFileSize, 100 MiB).
	MaxFileSize int64
}

// DefaultParams returns sensible defaults for a role.
func DefaultParams(role Role) Params {
	p := Params{
		Role:        role,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		HostPolicy:  PolicyOwn,
		MemoryLimit: 256 << 20,
		FDLimit:     256,
		ConnLow:     32,
		ConnHigh:    64,
		ConnGrace:   30 * time.Second,

		Admission:       admission.DefaultParams(),
		MaxJoinedTopics: 256,

		MemberMemTableSize: 8 << 20,
		ProcessInterval:    5 * time.Second,
		CatchUpInterval:    2 * time.Minute,
		ManageInterval:     30 * time.Second,
		Store:              store.DefaultParams(),
		Relay:              relay.DefaultParams(),
		Fetch:              fetch.DefaultParams(),
		Sync:               memberSyncParams(),
		MemberSyncPeers:    2,
		Directory:          directory.DefaultParams(),
		Contacts:           contacts.DefaultParams(),
		Outbox:             DefaultOutboxParams(),
	}
	if role == RoleHost || role == RoleBot {
		p.StablePeerID = true
		p.MemoryLimit = 1 << 30
		p.FDLimit = 2048
		p.ConnLow, p.ConnHigh = 200, 400
		p.MaxJoinedTopics = 1024
		p.Directory.Serve = true
		p.Sync = hostsync.DefaultParams()
	}
	if role == RoleMember {
		p.Store = memberStoreParams()
	}
	return p
}

// memberSyncParams bound what a member's node moves by sync with any one
// peer: 64 KiB/s after a burst of 8 MiB (hosts, which catch up from each
// other in bulk, are unlimited).
func memberSyncParams() hostsync.Params {
	p := hostsync.DefaultParams()
	p.PeerRate, p.PeerBurst = 64<<10, 8<<20
	return p
}

func (p *Params) validate() error {
	var errs []error
	switch p.Role {
	case RoleMember, RoleHost, RoleBot:
	default:
		errs = append(errs, fmt.Errorf("role %q (want member, host or bot)", p.Role))
	}
	if _, err := ParseHostPolicy(string(p.HostPolicy)); err != nil {
		errs = append(errs, err)
	}
	if p.StablePeerID && p.PeerKeyFile == "" {
		errs = append(errs, errors.New("StablePeerID needs PeerKeyFile"))
	}
	if p.MemoryLimit < 16<<20 {
		errs = append(errs, fmt.Errorf("MemoryLimit %d below 16 MiB", p.MemoryLimit))
	}
	if p.FDLimit < 16 {
		errs = append(errs, fmt.Errorf("FDLimit %d below 16", p.FDLimit))
	}
	if p.ConnLow <= 0 || p.ConnHigh < p.ConnLow {
		errs = append(errs, fmt.Errorf("connection watermarks %d/%d", p.ConnLow, p.ConnHigh))
	}
	if p.MaxJoinedTopics < 1 {
		errs = append(errs, fmt.Errorf("MaxJoinedTopics %d must be at least 1", p.MaxJoinedTopics))
	}
	if err := p.Admission.Validate(); err != nil {
		errs = append(errs, err)
	}
	if p.MemberMemTableSize < 1<<20 {
		errs = append(errs, fmt.Errorf("MemberMemTableSize %d below 1 MiB", p.MemberMemTableSize))
	}
	if p.KeyTreeMin < 0 || p.KeyTreeMin > groupstate.MaxMembers {
		errs = append(errs, fmt.Errorf("KeyTreeMin %d out of 0..%d", p.KeyTreeMin, groupstate.MaxMembers))
	}
	if p.ProcessInterval <= 0 || p.CatchUpInterval <= 0 || p.ManageInterval <= 0 {
		errs = append(errs, errors.New("ProcessInterval, CatchUpInterval and ManageInterval must be positive"))
	}
	if p.MemberSyncPeers < 0 || p.MemberSyncPeers > 64 {
		errs = append(errs, fmt.Errorf("MemberSyncPeers %d outside [0, 64]", p.MemberSyncPeers))
	}
	if p.Directory.Serve {
		errs = append(errs, p.Directory.Validate())
	}
	errs = append(errs, p.Contacts.Validate(), p.Outbox.validate())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

type config struct {
	log     *slog.Logger
	host    host.Host
	peerKey crypto.PrivKey
	reg     prometheus.Registerer
	dataDir string

	identity  *keymgmt.Identity
	nick      string
	memberDir string
	dataKey   []byte
}

// Option configures a Node.
type Option func(*config) error

// WithLogger sets the node's logger.
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.log = l; return nil } }

// WithHost runs the node on an existing libp2p host (the simulator's
// mocknet hosts). The node does not close it.
func WithHost(h host.Host) Option { return func(c *config) error { c.host = h; return nil } }

// WithPeerKey uses this transport key instead of drawing or loading one.
func WithPeerKey(k crypto.PrivKey) Option { return func(c *config) error { c.peerKey = k; return nil } }

// WithRegisterer registers the node's Prometheus metrics.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(c *config) error { c.reg = r; return nil }
}

// WithIdentity makes the node a member: it can create, join and use
// groups as this profile identity, with nick as the default nickname.
func WithIdentity(id *keymgmt.Identity, nick string) Option {
	return func(c *config) error {
		if id == nil {
			return fmt.Errorf("%w: nil identity", ErrConfig)
		}
		c.identity, c.nick = id, nick
		return nil
	}
}

// WithMemberDB is where the member's private database lives and the key
// that encrypts it at rest (the keystore's DataKey; nil leaves it
// unencrypted). With an in-memory store the directory is ignored.
func WithMemberDB(dir string, key []byte) Option {
	return func(c *config) error {
		if len(key) != 0 && len(key) != 16 && len(key) != 24 && len(key) != 32 {
			return fmt.Errorf("%w: member database key must be 16, 24 or 32 bytes", ErrConfig)
		}
		c.memberDir, c.dataKey = dir, key
		return nil
	}
}

// WithDataDir is the directory of the host store (ignored with
// Params.Store.InMemory).
func WithDataDir(dir string) Option { return func(c *config) error { c.dataDir = dir; return nil } }
