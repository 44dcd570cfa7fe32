package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

// Limits are the hosting limits of config.json ("limits"): what the node
// takes from whom (package admission), the store's quotas and the budgets
// that protect established mailboxes. Every field may also be set on the
// command line (`meshnode run --limit name=value`, SetLimit). A limits
// object in the file may name only some fields; the others keep their
// defaults (DefaultLimits), sized for a small community host (2 cores,
// 4 GB). A rate of 0 means no limit.
type Limits struct {
	// Networks: remotes are counted by address prefix.
	IPv4PrefixBits int  `json:"ipv4_prefix_bits"`
	IPv6PrefixBits int  `json:"ipv6_prefix_bits"`
	ExemptLoopback bool `json:"exempt_loopback"`
	// Connections and streams per address and per prefix.
	ConnsPerIP       int `json:"conns_per_ip"`
	ConnsPerPrefix   int `json:"conns_per_prefix"`
	StreamsPerPrefix int `json:"streams_per_prefix"`
	// RequestTimeout: a relay or fetch stream must send its request,
	// and a sync stream its hello, within this.
	RequestTimeout Duration `json:"request_timeout"`
	// The relay service's stream gate (admission.GateParams).
	RelayMaxPending          int `json:"relay_max_pending"`
	RelayPendingPerPrefix    int `json:"relay_pending_per_prefix"`
	RelayPendingPerPeer      int `json:"relay_pending_per_peer"`
	RelayMaxStreams          int `json:"relay_max_streams"`
	RelayReservedStreams     int `json:"relay_reserved_streams"`
	RelayStreamsPerPrefix    int `json:"relay_streams_per_prefix"`
	RelayPrivilegedPerPrefix int `json:"relay_privileged_per_prefix"`
	RelayStreamsPerPeer      int `json:"relay_streams_per_peer"`
	// The fetch service's stream gate.
	FetchMaxPending          int `json:"fetch_max_pending"`
	FetchPendingPerPrefix    int `json:"fetch_pending_per_prefix"`
	FetchPendingPerPeer      int `json:"fetch_pending_per_peer"`
	FetchMaxStreams          int `json:"fetch_max_streams"`
	FetchReservedStreams     int `json:"fetch_reserved_streams"`
	FetchStreamsPerPrefix    int `json:"fetch_streams_per_prefix"`
	FetchPrivilegedPerPrefix int `json:"fetch_privileged_per_prefix"`
	FetchStreamsPerPeer      int `json:"fetch_streams_per_peer"`
	// The sync service's stream gate.
	SyncMaxPending          int `json:"sync_max_pending"`
	SyncPendingPerPrefix    int `json:"sync_pending_per_prefix"`
	SyncPendingPerPeer      int `json:"sync_pending_per_peer"`
	SyncMaxStreams          int `json:"sync_max_streams"`
	SyncReservedStreams     int `json:"sync_reserved_streams"`
	SyncStreamsPerPrefix    int `json:"sync_streams_per_prefix"`
	SyncPrivilegedPerPrefix int `json:"sync_privileged_per_prefix"`
	SyncStreamsPerPeer      int `json:"sync_streams_per_peer"`
	// The directory service's stream gate (hosts that serve one).
	DirectoryMaxPending          int `json:"directory_max_pending"`
	DirectoryPendingPerPrefix    int `json:"directory_pending_per_prefix"`
	DirectoryPendingPerPeer      int `json:"directory_pending_per_peer"`
	DirectoryMaxStreams          int `json:"directory_max_streams"`
	DirectoryReservedStreams     int `json:"directory_reserved_streams"`
	DirectoryStreamsPerPrefix    int `json:"directory_streams_per_prefix"`
	DirectoryPrivilegedPerPrefix int `json:"directory_privileged_per_prefix"`
	DirectoryStreamsPerPeer      int `json:"directory_streams_per_peer"`
	// Remote gossip subscriptions tracked (relay.SubscriptionFilter):
	// topics per peer, general (peer, topic) pairs per prefix, pairs in
	// all, and the share of them kept for established mailboxes.
	SubscriptionsPerPeer   int `json:"subscriptions_per_peer"`
	SubscriptionsPerPrefix int `json:"subscriptions_per_prefix"`
	MaxSubscriptions       int `json:"max_subscriptions"`
	ReservedSubscriptions  int `json:"reserved_subscriptions"`
	// Rates per peer (envelopes relayed, pages fetched per second).
	EnvelopeRatePerPeer  float64 `json:"envelope_rate_per_peer"`
	EnvelopeBurstPerPeer int     `json:"envelope_burst_per_peer"`
	PageRatePerPeer      float64 `json:"page_rate_per_peer"`
	PageBurstPerPeer     int     `json:"page_burst_per_peer"`
	// Rates per prefix, and of envelopes into mailboxes that are not
	// established, from everyone together.
	EnvelopeRatePerPrefix  float64 `json:"envelope_rate_per_prefix"`
	EnvelopeBurstPerPrefix int     `json:"envelope_burst_per_prefix"`
	PageRatePerPrefix      float64 `json:"page_rate_per_prefix"`
	PageBurstPerPrefix     int     `json:"page_burst_per_prefix"`
	NewTrafficRate         float64 `json:"new_traffic_rate"`
	NewTrafficBurst        int     `json:"new_traffic_burst"`
	// New mailboxes per prefix and in total; past the total, a proof of
	// work of new_mailbox_proof_bits (0: refused instead).
	NewMailboxRatePerPrefix  float64 `json:"new_mailbox_rate_per_prefix"`
	NewMailboxBurstPerPrefix int     `json:"new_mailbox_burst_per_prefix"`
	NewMailboxRate           float64 `json:"new_mailbox_rate"`
	NewMailboxBurst          int     `json:"new_mailbox_burst"`
	NewMailboxProofBits      int     `json:"new_mailbox_proof_bits"`
	// Bytes one prefix may store into new mailboxes per window.
	NewBytesPerPrefix int64    `json:"new_bytes_per_prefix"`
	NewBytesWindow    Duration `json:"new_bytes_window"`
	// TrustFor: how long a peer that wrote to an established mailbox
	// counts as privileged. PressureWindow: how far back refusals make
	// the host report pressure.
	TrustFor       Duration `json:"trust_for"`
	PressureWindow Duration `json:"pressure_window"`
	// MaxJoinedTopics bounds the topics joined for active hosted
	// mailboxes (0: the role's default).
	MaxJoinedTopics int `json:"max_joined_topics"`
	// Store quotas (0: none) and the budgets of new mailboxes.
	GlobalQuotaBytes      int64    `json:"global_quota_bytes"`
	MailboxQuotaBytes     int64    `json:"mailbox_quota_bytes"`
	NewMailboxQuotaBytes  int64    `json:"new_mailbox_quota_bytes"`
	EstablishAfter        Duration `json:"establish_after"`
	EstablishMinEnvelopes int      `json:"establish_min_envelopes"`
	ReserveFraction       float64  `json:"reserve_fraction"`
}

// DefaultLimits are the defaults of every limit.
func DefaultLimits() Limits {
	a := admission.DefaultParams()
	p := node.DefaultParams(node.RoleHost)
	s := p.Store
	return Limits{
		IPv4PrefixBits: a.IPv4PrefixBits, IPv6PrefixBits: a.IPv6PrefixBits, ExemptLoopback: a.ExemptLoopback,
		ConnsPerIP: a.ConnsPerIP, ConnsPerPrefix: a.ConnsPerPrefix, StreamsPerPrefix: a.StreamsPerPrefix,
		RequestTimeout:  Duration(p.Relay.RequestTimeout),
		RelayMaxPending: a.Relay.MaxPending, RelayPendingPerPrefix: a.Relay.PendingPerPrefix, RelayPendingPerPeer: a.Relay.PendingPerPeer,
		RelayMaxStreams: a.Relay.MaxStreams, RelayReservedStreams: a.Relay.ReservedStreams, RelayStreamsPerPrefix: a.Relay.PerPrefix,
		RelayPrivilegedPerPrefix: a.Relay.PrivilegedPerPrefix, RelayStreamsPerPeer: a.Relay.PerPeer,
		FetchMaxPending: a.Fetch.MaxPending, FetchPendingPerPrefix: a.Fetch.PendingPerPrefix, FetchPendingPerPeer: a.Fetch.PendingPerPeer,
		FetchMaxStreams: a.Fetch.MaxStreams, FetchReservedStreams: a.Fetch.ReservedStreams, FetchStreamsPerPrefix: a.Fetch.PerPrefix,
		FetchPrivilegedPerPrefix: a.Fetch.PrivilegedPerPrefix, FetchStreamsPerPeer: a.Fetch.PerPeer,
		SyncMaxPending: a.Sync.MaxPending, SyncPendingPerPrefix: a.Sync.PendingPerPrefix, SyncPendingPerPeer: a.Sync.PendingPerPeer,
		SyncMaxStreams: a.Sync.MaxStreams, SyncReservedStreams: a.Sync.ReservedStreams, SyncStreamsPerPrefix: a.Sync.PerPrefix,
		SyncPrivilegedPerPrefix: a.Sync.PrivilegedPerPrefix, SyncStreamsPerPeer: a.Sync.PerPeer,
		DirectoryMaxPending: a.Directory.MaxPending, DirectoryPendingPerPrefix: a.Directory.PendingPerPrefix,
		DirectoryPendingPerPeer: a.Directory.PendingPerPeer, DirectoryMaxStreams: a.Directory.MaxStreams,
		DirectoryReservedStreams: a.Directory.ReservedStreams, DirectoryStreamsPerPrefix: a.Directory.PerPrefix,
		DirectoryPrivilegedPerPrefix: a.Directory.PrivilegedPerPrefix, DirectoryStreamsPerPeer: a.Directory.PerPeer,
		SubscriptionsPerPeer: p.Relay.SubscriptionsPerPeer, SubscriptionsPerPrefix: p.Relay.SubscriptionsPerPrefix,
		MaxSubscriptions: p.Relay.MaxSubscriptions, ReservedSubscriptions: p.Relay.ReservedSubscriptions,
		EnvelopeRatePerPeer: p.Relay.PeerRate, EnvelopeBurstPerPeer: p.Relay.PeerBurst,
		PageRatePerPeer: p.Fetch.PeerRate, PageBurstPerPeer: p.Fetch.PeerBurst,
		EnvelopeRatePerPrefix: a.EnvelopeRatePerPrefix, EnvelopeBurstPerPrefix: a.EnvelopeBurstPerPrefix,
		PageRatePerPrefix: a.PageRatePerPrefix, PageBurstPerPrefix: a.PageBurstPerPrefix,
		NewTrafficRate: a.NewTrafficRate, NewTrafficBurst: a.NewTrafficBurst,
		NewMailboxRatePerPrefix: a.NewMailboxRatePerPrefix, NewMailboxBurstPerPrefix: a.NewMailboxBurstPerPrefix,
		NewMailboxRate: a.NewMailboxRate, NewMailboxBurst: a.NewMailboxBurst, NewMailboxProofBits: int(a.NewMailboxProofBits),
		NewBytesPerPrefix: a.NewBytesPerPrefix, NewBytesWindow: Duration(a.NewBytesWindow),
		TrustFor: Duration(a.TrustFor), PressureWindow: Duration(a.PressureWindow),
		GlobalQuotaBytes: s.GlobalQuotaBytes, MailboxQuotaBytes: s.Default.QuotaBytes,
		NewMailboxQuotaBytes: s.Admission.NewMailboxQuotaBytes, EstablishAfter: Duration(s.Admission.EstablishAfter),
		EstablishMinEnvelopes: int(s.Admission.EstablishMinEnvelopes), ReserveFraction: s.Admission.ReserveFraction,
	}
}

// UnmarshalJSON decodes a limits object: the fields it names over the
// defaults; an unknown field is an error.
func (l *Limits) UnmarshalJSON(b []byte) error {
	*l = DefaultLimits()
	type plain Limits
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*plain)(l)); err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	return nil
}

// SetLimit sets the limit with the JSON name name from its text value
// (a number, true/false, or a duration such as 30s): the command line's
// --limit name=value.
func (l *Limits) SetLimit(name, value string) error {
	value = strings.TrimSpace(value)
	raw := value
	if _, err := strconv.ParseFloat(value, 64); err != nil && value != "true" && value != "false" {
		q, _ := json.Marshal(value)
		raw = string(q)
	}
	obj, _ := json.Marshal(name)
	type plain Limits
	dec := json.NewDecoder(strings.NewReader("{" + string(obj) + ":" + raw + "}"))
	dec.DisallowUnknownFields()
	if err := dec.Decode((*plain)(l)); err != nil {
		return fmt.Errorf("%w: limit %s=%s: %v", ErrConfig, name, value, err)
	}
	return nil
}

// applyTo sets the node parameters the limits stand for.
func (l Limits) applyTo(p *node.Params) {
	a := &p.Admission
	a.IPv4PrefixBits, a.IPv6PrefixBits, a.ExemptLoopback = l.IPv4PrefixBits, l.IPv6PrefixBits, l.ExemptLoopback
	a.ConnsPerIP, a.ConnsPerPrefix, a.StreamsPerPrefix = l.ConnsPerIP, l.ConnsPerPrefix, l.StreamsPerPrefix
	p.Relay.RequestTimeout, p.Fetch.RequestTimeout = time.Duration(l.RequestTimeout), time.Duration(l.RequestTimeout)
	p.Sync.HelloTimeout = time.Duration(l.RequestTimeout)
	p.Directory.RequestTimeout = time.Duration(l.RequestTimeout)
	a.Relay = admission.GateParams{
		MaxPending: l.RelayMaxPending, PendingPerPrefix: l.RelayPendingPerPrefix, PendingPerPeer: l.RelayPendingPerPeer,
		MaxStreams: l.RelayMaxStreams, ReservedStreams: l.RelayReservedStreams, PerPrefix: l.RelayStreamsPerPrefix,
		PrivilegedPerPrefix: l.RelayPrivilegedPerPrefix, PerPeer: l.RelayStreamsPerPeer,
	}
	a.Fetch = admission.GateParams{
		MaxPending: l.FetchMaxPending, PendingPerPrefix: l.FetchPendingPerPrefix, PendingPerPeer: l.FetchPendingPerPeer,
		MaxStreams: l.FetchMaxStreams, ReservedStreams: l.FetchReservedStreams, PerPrefix: l.FetchStreamsPerPrefix,
		PrivilegedPerPrefix: l.FetchPrivilegedPerPrefix, PerPeer: l.FetchStreamsPerPeer,
	}
	a.Sync = admission.GateParams{
		MaxPending: l.SyncMaxPending, PendingPerPrefix: l.SyncPendingPerPrefix, PendingPerPeer: l.SyncPendingPerPeer,
		MaxStreams: l.SyncMaxStreams, ReservedStreams: l.SyncReservedStreams, PerPrefix: l.SyncStreamsPerPrefix,
		PrivilegedPerPrefix: l.SyncPrivilegedPerPrefix, PerPeer: l.SyncStreamsPerPeer,
	}
	a.Directory = admission.GateParams{
		MaxPending: l.DirectoryMaxPending, PendingPerPrefix: l.DirectoryPendingPerPrefix, PendingPerPeer: l.DirectoryPendingPerPeer,
		MaxStreams: l.DirectoryMaxStreams, ReservedStreams: l.DirectoryReservedStreams, PerPrefix: l.DirectoryStreamsPerPrefix,
		PrivilegedPerPrefix: l.DirectoryPrivilegedPerPrefix, PerPeer: l.DirectoryStreamsPerPeer,
	}
	p.Relay.SubscriptionsPerPeer, p.Relay.SubscriptionsPerPrefix = l.SubscriptionsPerPeer, l.SubscriptionsPerPrefix
	p.Relay.MaxSubscriptions, p.Relay.ReservedSubscriptions = l.MaxSubscriptions, l.ReservedSubscriptions
	p.Relay.PeerRate, p.Relay.PeerBurst = l.EnvelopeRatePerPeer, l.EnvelopeBurstPerPeer
	p.Fetch.PeerRate, p.Fetch.PeerBurst = l.PageRatePerPeer, l.PageBurstPerPeer
	a.EnvelopeRatePerPrefix, a.EnvelopeBurstPerPrefix = l.EnvelopeRatePerPrefix, l.EnvelopeBurstPerPrefix
	a.PageRatePerPrefix, a.PageBurstPerPrefix = l.PageRatePerPrefix, l.PageBurstPerPrefix
	a.NewTrafficRate, a.NewTrafficBurst = l.NewTrafficRate, l.NewTrafficBurst
	a.NewMailboxRatePerPrefix, a.NewMailboxBurstPerPrefix = l.NewMailboxRatePerPrefix, l.NewMailboxBurstPerPrefix
	a.NewMailboxRate, a.NewMailboxBurst = l.NewMailboxRate, l.NewMailboxBurst
	a.NewMailboxProofBits = uint8(l.NewMailboxProofBits)
	a.NewBytesPerPrefix, a.NewBytesWindow = l.NewBytesPerPrefix, time.Duration(l.NewBytesWindow)
	a.TrustFor, a.PressureWindow = time.Duration(l.TrustFor), time.Duration(l.PressureWindow)
	if l.MaxJoinedTopics > 0 {
		p.MaxJoinedTopics = l.MaxJoinedTopics
	}
	p.Store.GlobalQuotaBytes = l.GlobalQuotaBytes
	p.Store.Default.QuotaBytes = l.MailboxQuotaBytes
	if l.MailboxQuotaBytes > 0 && p.Store.Default.MaxBytes > l.MailboxQuotaBytes {
		// Retention keeps a mailbox below its quota.
		p.Store.Default.MaxBytes = l.MailboxQuotaBytes
	}
	p.Store.Admission = store.AdmissionParams{
		EstablishAfter:        time.Duration(l.EstablishAfter),
		EstablishMinEnvelopes: uint64(l.EstablishMinEnvelopes),
		NewMailboxQuotaBytes:  l.NewMailboxQuotaBytes,
		ReserveFraction:       l.ReserveFraction,
	}
}

// validate checks the limits as the node will (every problem at once).
func (l Limits) validate() error {
	var errs []error
	if l.NewMailboxProofBits < 0 || l.NewMailboxProofBits > 32 {
		errs = append(errs, fmt.Errorf("limits: new_mailbox_proof_bits %d outside [0, 32]", l.NewMailboxProofBits))
	}
	if l.EstablishMinEnvelopes < 0 || l.MaxJoinedTopics < 0 || l.MailboxQuotaBytes < 0 || l.GlobalQuotaBytes < 0 {
		errs = append(errs, errors.New("limits: establish_min_envelopes, max_joined_topics and quotas must not be negative"))
	}
	if l.RequestTimeout <= 0 {
		errs = append(errs, errors.New("limits: request_timeout must be positive"))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p := node.DefaultParams(node.RoleHost)
	l.applyTo(&p)
	if err := p.Admission.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits: %w", err))
	}
	if err := p.Relay.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("limits: %w", err))
	}
	if err := store.ValidateParams(p.Store); err != nil {
		errs = append(errs, fmt.Errorf("limits: %w", err))
	}
	if p.Relay.PeerRate < 0 || p.Relay.PeerBurst < 0 || p.Fetch.PeerRate < 0 || p.Fetch.PeerBurst < 0 {
		errs = append(errs, errors.New("limits: per-peer rates must not be negative"))
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written as text in config.json ("30s").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads text ("1h30m").
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is text such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %s is negative", s)
	}
	*d = Duration(v)
	return nil
}
