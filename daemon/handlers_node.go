package daemon

import (
	"errors"
	"net/http"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

// nodeRoutes: what the node is and does.
func (s *server) nodeRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathStatus, methods{http.MethodGet: s.getStatus})
	s.handle(mux, api.PathID, methods{http.MethodGet: s.getID})
}

func (s *server) getStatus(w http.ResponseWriter, _ *http.Request) error {
	n := s.d.node
	p := n.Params()
	u := n.Store().Usage()
	dk := n.Store().Disk()
	writeJSON(w, http.StatusOK, api.Status{
		PeerID:          n.ID().String(),
		Role:            string(p.Role),
		HostPolicy:      string(p.HostPolicy),
		Addrs:           s.addrs(),
		UptimeSeconds:   int64(time.Since(s.d.started) / time.Second),
		ConnectedPeers:  len(n.Host().Network().Peers()),
		HostedMailboxes: n.HostedCount(),
		Store:           api.StoreUsage{Envelopes: u.Count, Bytes: u.Bytes, DiskFreeBytes: dk.Free, DiskFull: dk.Full},
		Version:         Version(),
		Admission:       admissionStatus(n.AdmissionState()),
		Outbox:          s.outboxStatus(),
	})
	return nil
}

// outboxStatus counts the outbox's envelopes (nil for a node without a
// member identity, or when the member database cannot be read: the
// status still answers).
func (s *server) outboxStatus() *api.OutboxStatus {
	es, err := s.d.node.Outbox()
	if err != nil {
		if !errors.Is(err, node.ErrNoIdentity) {
			s.d.log.Warn("status: reading the outbox failed", "err", err)
		}
		return nil
	}
	out := &api.OutboxStatus{}
	now := time.Now()
	for _, e := range es {
		switch e.State {
		case node.DeliveryPending:
			out.Pending++
			out.OldestPendingSeconds = max(out.OldestPendingSeconds, int64(now.Sub(e.Created)/time.Second))
		case node.DeliveryFailed:
			out.Failed++
		}
	}
	return out
}

// admissionStatus is the node's admission state on the wire.
func admissionStatus(st node.AdmissionState) api.AdmissionStatus {
	out := api.AdmissionStatus{
		State:                api.AdmissionNormal,
		Refusals:             make([]api.RefusalCount, 0, len(st.Refusals)),
		JoinedTopics:         st.JoinedTopics,
		MaxJoinedTopics:      st.MaxJoinedTopics,
		NewMailboxLimitBytes: st.Store.NewLimitBytes,
		NewMailboxesRefused:  st.Store.NewRefused,
		RelayStreams:         api.StreamUsage(st.RelayStreams),
		FetchStreams:         api.StreamUsage(st.FetchStreams),
		SyncStreams:          api.StreamUsage(st.SyncStreams),
	}
	if st.UnderPressure {
		out.State = api.AdmissionUnderPressure
	}
	for _, r := range st.Refusals {
		out.Refusals = append(out.Refusals, api.RefusalCount{Reason: string(r.Reason), Recent: r.Recent, Total: r.Total})
	}
	return out
}

func (s *server) getID(w http.ResponseWriter, _ *http.Request) error {
	n := s.d.node
	writeJSON(w, http.StatusOK, api.Identity{
		PeerID:      n.ID().String(),
		Addrs:       s.addrs(),
		Role:        string(n.Params().Role),
		Fingerprint: s.d.Fingerprint(),
	})
	return nil
}

// addrs are the node's full multiaddrs (never null in JSON).
func (s *server) addrs() []string {
	mas := s.d.node.Addrs()
	out := make([]string, 0, len(mas))
	for _, a := range mas {
		out = append(out, a.String())
	}
	return out
}
