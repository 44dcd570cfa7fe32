package daemon

import (
	"net/http"
	"time"

	"github.com/meshnode/meshnode/api"
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
	})
	return nil
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
