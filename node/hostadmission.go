package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/store"
)

// Admission on a node (package admission; ARCHITECTURE §11): the node
// owns one admission.Controller. It is built before the libp2p host, so
// the resource manager can count streams per network prefix and tell it
// each peer's prefix (transport.go); relay and fetch admit their streams
// and rates through it; every envelope to store passes DeliverFrom, which
// applies the limits of new traffic and new mailboxes before the store's
// own budgets, and counts every refusal by reason.
//
// The classifier the controller asks: mailboxes this node hosts on
// purpose (its groups, its allowlist, its directory's request mailboxes:
// "pinned") count as established, whatever the store says; the others
// are what the store's admission records say (store.Standing).

// classify is the admission classifier.
func (n *Node) classify(m envelope.MailboxID) admission.Class {
	if n.pinned(m) {
		return admission.ClassEstablished
	}
	switch n.st.Standing(m) {
	case store.StandingEstablished:
		return admission.ClassEstablished
	case store.StandingNew:
		return admission.ClassNew
	}
	return admission.ClassUnknown
}

// Admission is the node's admission controller.
func (n *Node) Admission() *admission.Controller { return n.adm }

// Deliver stores a valid envelope (relay.Handler, hostsync's delivery):
// DeliverFrom with the origin known from the peer alone.
func (n *Node) Deliver(ctx context.Context, env *envelope.Envelope, from peer.ID) (bool, error) {
	return n.DeliverFrom(ctx, env, admission.Origin{Peer: from, Key: n.adm.KeyOfPeer(from), Local: from == n.h.ID()})
}

// DeliverFrom stores a valid envelope that came from o
// (relay.OriginHandler): admitted first (new traffic, new mailboxes,
// per-prefix byte budgets), then stored within the store's quotas. A
// mailbox accepted under an open or allowlist policy becomes hosted; its
// topic is joined while it is active (topics.go). A peer whose envelope
// is newly stored in an established mailbox is trusted for a while: its
// streams may use the capacity reserved for established mailboxes.
func (n *Node) DeliverFrom(ctx context.Context, env *envelope.Envelope, o admission.Origin) (bool, error) {
	m := env.Mailbox()
	if err := n.adm.AdmitStore(m, o, env.Size()); err != nil {
		n.metrics.rejected.Inc()
		return false, err
	}
	res, err := n.st.Put(ctx, env)
	if err != nil {
		n.metrics.rejected.Inc()
		if r, ok := storeRefusal(err); ok {
			n.adm.Refuse(r)
		}
		return false, err
	}
	if res.Duplicate {
		n.metrics.duplicates.Inc()
		return true, nil
	}
	n.metrics.stored.Inc()
	if !o.Local && n.classify(m) == admission.ClassEstablished {
		n.adm.Trust(o.Peer)
	}
	if !n.Hosts(m) {
		if err := n.hostStored(m); err != nil && !errors.Is(err, ErrClosed) {
			n.log.Warn("could not host a newly stored mailbox", "mailbox", m.Short(), "err", err)
		}
	}
	n.touch(m)
	n.notify(Arrival{Envelope: env, From: o.Peer})
	return false, nil
}

// storeRefusal maps a store refusal to its admission reason.
func storeRefusal(err error) (admission.Reason, bool) {
	switch {
	case errors.Is(err, store.ErrNewMailboxQuota):
		return admission.ReasonQuotaNew, true
	case errors.Is(err, store.ErrReserved):
		return admission.ReasonQuotaReserve, true
	case errors.Is(err, store.ErrStoreFull):
		return admission.ReasonQuotaGlobal, true
	case errors.Is(err, store.ErrQuotaExceeded):
		return admission.ReasonQuotaMailbox, true
	}
	return "", false
}

// AdmissionState is what `meshnode status` shows of admission.
type AdmissionState struct {
	// UnderPressure: something was refused within the pressure window,
	// or the store is past the share open to new mailboxes.
	UnderPressure bool
	// Refusals by reason, the most recent first.
	Refusals []admission.ReasonCount
	// Store: the store against its admission budgets.
	Store store.AdmissionUsage
	// JoinedTopics of hosted mailboxes now (pinned ones included), and
	// the bound on those joined for activity.
	JoinedTopics, MaxJoinedTopics int
	// RelayStreams, FetchStreams and SyncStreams are the gates'
	// occupancy.
	RelayStreams, FetchStreams, SyncStreams admission.GateUsage
}

// AdmissionState reports the node's admission state now.
func (n *Node) AdmissionState() AdmissionState {
	st := AdmissionState{
		Refusals:        n.adm.Refusals().Counts(),
		Store:           n.st.AdmissionUsage(),
		JoinedTopics:    n.relay.JoinedCount(),
		MaxJoinedTopics: n.params.MaxJoinedTopics,
		RelayStreams:    n.adm.Relay().Usage(),
		FetchStreams:    n.adm.Fetch().Usage(),
		SyncStreams:     n.adm.Sync().Usage(),
	}
	for _, r := range st.Refusals {
		if r.Recent > 0 {
			st.UnderPressure = true
		}
	}
	st.UnderPressure = st.UnderPressure || st.Store.NewRefused
	return st
}

// newAdmission builds the node's admission controller.
func newAdmission(p *Params, cfg *config) (*admission.Controller, error) {
	c, err := admission.New(p.Admission, cfg.reg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return c, nil
}

// registerAdmissionGauges exports the admission state: under pressure
// (0 or 1), topics joined, other peers' subscriptions tracked, and the
// relay, fetch and sync gates' streams.
func (n *Node) registerAdmissionGauges(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "meshnode", Subsystem: "admission", Name: name, Help: help}, f)
	}
	cs := []prometheus.Collector{
		gauge("under_pressure", "1 while the host refuses things (refusals within the pressure window, or the store past the share open to new mailboxes).", func() float64 {
			if n.AdmissionState().UnderPressure {
				return 1
			}
			return 0
		}),
		gauge("joined_topics", "Gossip topics joined now.", func() float64 { return float64(n.relay.JoinedCount()) }),
		gauge("hosted_mailboxes", "Mailboxes this node hosts (on disk; only active ones have a topic joined).", func() float64 { return float64(n.HostedCount()) }),
		gauge("subscriptions", "Other peers' gossip subscriptions (peer, topic) tracked now, within max_subscriptions.", func() float64 { return float64(n.subs.Usage().Pairs) }),
	}
	for _, g := range []struct {
		svc  string
		gate func() admission.GateUsage
	}{{"relay", n.adm.Relay().Usage}, {"fetch", n.adm.Fetch().Usage}, {"sync", n.adm.Sync().Usage}} {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "meshnode", Subsystem: "admission", Name: "streams",
				Help: "Inbound streams of a service by state: pending (no request yet), active.", ConstLabels: prometheus.Labels{"service": g.svc, "state": "pending"}},
				func() float64 { return float64(g.gate().Pending) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "meshnode", Subsystem: "admission", Name: "streams",
				Help: "Inbound streams of a service by state: pending (no request yet), active.", ConstLabels: prometheus.Labels{"service": g.svc, "state": "active"}},
				func() float64 { return float64(g.gate().Active) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("node: admission metrics: %w", err)
		}
	}
	return nil
}
