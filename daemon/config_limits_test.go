package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/internal/status"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/relay"
)

func TestLimitsInConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"version":1,"role":"host","limits":{"new_mailbox_rate":2,"request_timeout":"3s","exempt_loopback":false,"sync_max_streams":30}}`))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultLimits()
	if c.Limits.NewMailboxRate != 2 || c.Limits.RequestTimeout != Duration(3*time.Second) || c.Limits.ExemptLoopback ||
		c.Limits.NewMailboxBurst != d.NewMailboxBurst || c.Limits.GlobalQuotaBytes != d.GlobalQuotaBytes {
		t.Fatalf("limits %+v", *c.Limits)
	}
	p := node.DefaultParams(node.RoleHost)
	c.applyTo(&p)
	if p.Admission.NewMailboxRate != 2 || p.Relay.RequestTimeout != 3*time.Second || p.Fetch.RequestTimeout != 3*time.Second || p.Admission.ExemptLoopback ||
		p.Sync.HelloTimeout != 3*time.Second || p.Admission.Sync.MaxStreams != 30 || p.Admission.Sync.ReservedStreams != d.SyncReservedStreams {
		t.Fatalf("node params %+v", p.Admission)
	}
	// The file init writes names every limit, and reads back the same.
	b, err := DefaultConfig(node.RoleHost).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"new_mailbox_proof_bits": 20`, `"reserve_fraction": 0.25`, `"request_timeout": "5s"`, `"ipv6_prefix_bits": 48`, `"sync_reserved_streams": 12`, `"subscriptions_per_peer": 1024`} {
		if !strings.Contains(string(b), name) {
			t.Errorf("config.json lacks %s", name)
		}
	}
	for _, tc := range []struct{ name, in, want string }{
		{"unknown limit", `{"version":1,"role":"host","limits":{"new_mailboxes":2}}`, "unknown field"},
		{"bad duration", `{"version":1,"role":"host","limits":{"request_timeout":"soon"}}`, "duration"},
		{"duration as a number", `{"version":1,"role":"host","limits":{"trust_for":30}}`, "duration"},
		{"proof too hard", `{"version":1,"role":"host","limits":{"new_mailbox_proof_bits":33}}`, "new_mailbox_proof_bits"},
		{"reserve", `{"version":1,"role":"host","limits":{"reserve_fraction":1}}`, "ReserveFraction"},
		{"gate", `{"version":1,"role":"host","limits":{"fetch_reserved_streams":500}}`, "ReservedStreams"},
		{"subscriptions", `{"version":1,"role":"host","limits":{"reserved_subscriptions":99999999}}`, "ReservedSubscriptions"},
		{"sync gate", `{"version":1,"role":"host","limits":{"sync_reserved_streams":500}}`, "Sync"},
		{"prefix", `{"version":1,"role":"host","limits":{"ipv4_prefix_bits":40}}`, "IPv4PrefixBits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestSetLimit(t *testing.T) {
	l := DefaultLimits()
	for _, kv := range [][2]string{{"new_mailbox_rate", "0.5"}, {"exempt_loopback", "false"}, {"trust_for", "10m"}, {"global_quota_bytes", "1048576"},
		{"sync_max_streams", "30"}, {"subscriptions_per_peer", "10"}} {
		if err := l.SetLimit(kv[0], kv[1]); err != nil {
			t.Fatalf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
	if l.NewMailboxRate != 0.5 || l.ExemptLoopback || l.TrustFor != Duration(10*time.Minute) || l.GlobalQuotaBytes != 1<<20 ||
		l.SyncMaxStreams != 30 || l.SubscriptionsPerPeer != 10 {
		t.Fatalf("limits %+v", l)
	}
	for _, kv := range [][2]string{{"no_such_limit", "1"}, {"conns_per_ip", "many"}, {"trust_for", "1"}} {
		if err := l.SetLimit(kv[0], kv[1]); !errors.Is(err, ErrConfig) {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
}

// The status shows when the host refuses things and why.
func TestStatusShowsAdmission(t *testing.T) {
	leakCheck(t)
	res := initHome(t, node.RoleHost)
	d := startDaemon(t, res.Home, func(c *Config) {
		c.HostPolicy = node.PolicyOpen
		c.Limits.ExemptLoopback = false
		c.Limits.NewMailboxBurstPerPrefix = 1
		c.Limits.NewMailboxRatePerPrefix = 0.001
		c.Limits.PressureWindow = Duration(time.Hour)
	})
	c := client(t, res.Home)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Admission.State != api.AdmissionNormal || st.Admission.Refusals == nil || len(st.Admission.Refusals) != 0 {
		t.Fatalf("a fresh host's admission %+v", st.Admission)
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	n := d.Node()
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		k := tu.WriteKey(t)
		err := relay.Send(ctx, h, n.ID(), tu.Mailbox(k), tu.Envelope(t, k, 200), 5*time.Second)
		if i == 1 && !errors.Is(err, status.ErrRateLimited) {
			t.Fatalf("second new mailbox from one network: %v", err)
		}
	}
	if st, err = c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	a := st.Admission
	if a.State != api.AdmissionUnderPressure || len(a.Refusals) == 0 || a.Refusals[0].Reason != "new_mailbox_rate_prefix" || a.Refusals[0].Recent != 1 {
		t.Fatalf("admission after a refusal %+v", a)
	}
}
