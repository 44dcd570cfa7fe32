package daemon

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/webui"
)

// qrSize is the side of an invite's QR code image in pixels.
const qrSize = 512

// webappRoutes: what the web app needs beyond the CLI's endpoints (any
// client may use them): paged history, read markers, verified
// fingerprints, the network view, the invite's QR code and the login
// URL. The event stream is in handlers_events.go.
func (s *server) webappRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathGroupHistory, methods{http.MethodGet: s.getHistory})
	s.handle(mux, api.PathGroupRead, methods{http.MethodGet: s.getRead, http.MethodPut: s.putRead})
	s.handle(mux, api.PathGroupInviteQR, methods{http.MethodGet: s.getInviteQR})
	s.handle(mux, api.PathInbox, methods{http.MethodGet: s.getInbox})
	s.handle(mux, api.PathVerified, methods{http.MethodGet: s.listVerified})
	s.handle(mux, api.PathVerifiedOne, methods{http.MethodPut: s.putVerified, http.MethodDelete: s.deleteVerified})
	s.handle(mux, api.PathNetwork, methods{http.MethodGet: s.getNetwork})
	s.handle(mux, api.PathUILogin, methods{http.MethodPost: s.newLogin})
}

// hideFor is the filter of ?all: connection groups' protocol messages
// are left out unless all=true.
func (s *server) hideFor(r *http.Request) (func(*node.Message) bool, error) {
	all, err := boolParam(r, "all")
	if err != nil || all {
		return nil, err
	}
	return s.d.node.IsProtocolMessage, nil
}

func pagedMessage(m *node.ListedMessage) api.PagedMessage {
	return api.PagedMessage{Message: apiMessage(&m.Message), Cursor: m.Cursor}
}

func readState(group string, rs *node.ReadState) api.ReadState {
	out := api.ReadState{Group: group, Cursor: rs.Cursor, Unread: rs.Unread, UnreadMore: rs.Unread >= node.MaxUnread}
	if rs.Last != nil {
		pm := pagedMessage(rs.Last)
		out.Last = &pm
	}
	return out
}

func (s *server) getHistory(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxHistoryPage {
			return errorf(api.CodeBadRequest, "limit %q must be 1 to %d", v, api.MaxHistoryPage)
		}
		limit = n
	}
	hide, err := s.hideFor(r)
	if err != nil {
		return err
	}
	p, err := s.d.node.MessagesPage(r.PathValue("group"), node.PageQuery{
		Before: q.Get("before"), After: q.Get("after"), Limit: limit, Hide: hide,
	})
	if err != nil {
		return apiError(err)
	}
	out := api.MessagePage{Messages: make([]api.PagedMessage, 0, len(p.Messages)), More: p.More}
	for i := range p.Messages {
		out.Messages = append(out.Messages, pagedMessage(&p.Messages[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getRead(w http.ResponseWriter, r *http.Request) error {
	hide, err := s.hideFor(r)
	if err != nil {
		return err
	}
	gid, err := s.d.node.ResolveGroup(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	rs, err := s.d.node.ReadState(gid, hide)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, readState(gid, rs))
	return nil
}

func (s *server) putRead(w http.ResponseWriter, r *http.Request) error {
	var req api.ReadRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	gid, err := s.d.node.ResolveGroup(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	rs, err := s.d.node.MarkRead(gid, req.Cursor, s.d.node.IsProtocolMessage)
	if err != nil {
		return apiError(err)
	}
	out := readState(gid, rs)
	// Other pages (another tab, another device's browser) update their
	// unread counts.
	s.events.publish(api.Event{Type: api.EventRead, Group: gid, Read: &out})
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getInbox(w http.ResponseWriter, _ *http.Request) error {
	n := s.d.node
	gs, err := n.Groups()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.InboxEntry, 0, len(gs))
	for i := range gs {
		rs, err := n.ReadState(gs[i].ID, n.IsProtocolMessage)
		if errors.Is(err, node.ErrUnknownGroup) {
			continue // left meanwhile
		}
		if err != nil {
			return apiError(err)
		}
		out = append(out, api.InboxEntry{Group: groupInfo(&gs[i]), Read: readState(gs[i].ID, rs)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getInviteQR(w http.ResponseWriter, r *http.Request) error {
	invite, err := s.d.node.Invite(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	png, err := qrcode.Encode(invite, qrcode.Low, qrSize)
	if err != nil {
		return errorf(api.CodeTooLarge, "the invite (%d characters) is too long for a QR code; share it as text", len(invite))
	}
	h := w.Header()
	h.Set("Content-Type", "image/png")
	// The invite is a secret: never cached.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(png)
	return nil
}

func (s *server) listVerified(w http.ResponseWriter, _ *http.Request) error {
	vs, err := s.d.node.Verified()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.VerifiedIdentity, 0, len(vs))
	for _, v := range vs {
		out = append(out, api.VerifiedIdentity{Fingerprint: v.Fingerprint, Since: v.Since})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) putVerified(w http.ResponseWriter, r *http.Request) error {
	v, err := s.d.node.SetVerified(r.PathValue("fingerprint"), true)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.VerifiedIdentity{Fingerprint: v.Fingerprint, Since: v.Since})
	return nil
}

func (s *server) deleteVerified(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.d.node.SetVerified(r.PathValue("fingerprint"), false); err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func catchUpProgress(p *node.CatchUpProgress) *api.CatchUpProgress {
	out := api.CatchUpProgress(*p)
	return &out
}

func (s *server) getNetwork(w http.ResponseWriter, _ *http.Request) error {
	n := s.d.node
	h := n.Host()
	ps := h.Peerstore()
	latency := func(p peer.ID) float64 { return float64(ps.LatencyEWMA(p).Microseconds()) / 1000 }
	out := api.Network{Peers: []api.Peer{}, Groups: []api.GroupNetwork{}}
	for _, p := range h.Network().Peers() {
		pe := api.Peer{ID: p.String(), Addrs: []string{}, LatencyMS: latency(p)}
		for _, c := range h.Network().ConnsToPeer(p) {
			pe.Addrs = append(pe.Addrs, c.RemoteMultiaddr().String())
		}
		out.Peers = append(out.Peers, pe)
	}
	progress := map[string]*api.CatchUpProgress{}
	for _, p := range n.CatchUps() {
		progress[p.Group] = catchUpProgress(&p)
	}
	gs, err := n.Groups()
	if err != nil {
		return apiError(err)
	}
	for _, g := range gs {
		gn := api.GroupNetwork{Group: g.ID, Name: g.Name, Hosts: []api.HostReach{}, CatchUp: progress[g.ID]}
		for _, addr := range g.Hosts {
			hr := api.HostReach{Addr: addr}
			if ai, err := peer.AddrInfoFromString(addr); err == nil {
				hr.Peer = ai.ID.String()
				hr.Self = ai.ID == h.ID()
				hr.Connected = hr.Self || h.Network().Connectedness(ai.ID) == network.Connected
				if !hr.Self {
					hr.LatencyMS = latency(ai.ID)
				}
			}
			gn.Hosts = append(gn.Hosts, hr)
		}
		out.Groups = append(out.Groups, gn)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// newLogin makes a one-time login URL. Only the API token may: a browser
// session cannot mint sessions for other browsers.
func (s *server) newLogin(w http.ResponseWriter, r *http.Request) error {
	if webui.FromSession(r.Context()) {
		return errorf(api.CodeForbidden, "a login URL is made with the API token (meshnode ui), not from a browser session")
	}
	if s.ui == nil || s.d.uiBase == "" {
		return errorf(api.CodeConflict, "the web app is off (config ui_addr is \"off\"); start the daemon with --ui ADDR")
	}
	writeJSON(w, http.StatusOK, s.ui.NewLogin(s.d.uiBase))
	return nil
}
