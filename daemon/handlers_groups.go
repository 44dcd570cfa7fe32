package daemon

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

// nodeCallTimeout bounds the node work of one call (dialling hosts,
// relaying, fetching) so the answer comes before the server's write
// timeout; what is not done by then is reported (failed hosts) or left to
// the background catch-up.
const nodeCallTimeout = 20 * time.Second

// defaultFollowBuffer is the node subscription's buffer per message
// stream. A stream that falls further behind re-reads the group to find
// what it missed (see follow).
const defaultFollowBuffer = 256

// groupRoutes: the member's groups, their members and messages.
func (s *server) groupRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathGroups, methods{http.MethodGet: s.listGroups, http.MethodPost: s.createGroup})
	s.handle(mux, api.PathJoin, methods{http.MethodPost: s.joinGroup})
	s.handle(mux, api.PathGroup, methods{http.MethodGet: s.getGroup})
	s.handle(mux, api.PathGroupInvite, methods{http.MethodGet: s.getInvite})
	s.handle(mux, api.PathGroupMembers, methods{http.MethodGet: s.getMembers})
	s.handle(mux, api.PathGroupMessages, methods{http.MethodGet: s.getMessages, http.MethodPost: s.sendMessage})
	s.handle(mux, api.PathGroupStream, methods{http.MethodGet: s.streamMessages})
	s.handle(mux, api.PathGroupCatchUp, methods{http.MethodPost: s.catchUp})
	s.handle(mux, api.PathOutbox, methods{http.MethodGet: s.getOutbox})
}

func (s *server) listGroups(w http.ResponseWriter, _ *http.Request) error {
	gs, err := s.d.node.Groups()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.GroupInfo, 0, len(gs))
	for _, g := range gs {
		out = append(out, groupInfo(&g))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) createGroup(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateGroupRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	g, invite, err := s.d.node.CreateGroup(ctx, req.Name, req.Hosts)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusCreated, api.CreatedGroup{Group: groupInfo(g), Invite: invite})
	return nil
}

func (s *server) joinGroup(w http.ResponseWriter, r *http.Request) error {
	var req api.JoinRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkNick(req.Nick); err != nil {
		return errorf(api.CodeBadRequest, "%v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	g, err := s.d.node.JoinGroup(ctx, strings.TrimSpace(req.Invite), req.Nick)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, groupInfo(g))
	return nil
}

func (s *server) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := s.d.node.GroupInfo(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, groupInfo(g))
	return nil
}

func (s *server) getInvite(w http.ResponseWriter, r *http.Request) error {
	invite, err := s.d.node.Invite(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.InviteAnswer{Invite: invite})
	return nil
}

func (s *server) getMembers(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.d.node.Members(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	out := make([]api.MemberInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, api.MemberInfo(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) getMessages(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	group := r.PathValue("group")
	msgs, err := s.d.node.Messages(group, limit)
	if err != nil {
		return apiError(err)
	}
	if !all && slices.ContainsFunc(msgs, func(m node.Message) bool { return s.d.node.IsProtocolMessage(&m) }) {
		// A connection group: leave out what the nodes exchanged, and
		// still return the latest limit of the rest.
		if msgs, err = s.d.node.Messages(group, 0); err != nil {
			return apiError(err)
		}
		msgs = slices.DeleteFunc(msgs, func(m node.Message) bool { return s.d.node.IsProtocolMessage(&m) })
		if limit > 0 && len(msgs) > limit {
			msgs = msgs[len(msgs)-limit:]
		}
	}
	out := make([]api.Message, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, apiMessage(&m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) sendMessage(w http.ResponseWriter, r *http.Request) error {
	var req api.SendRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Text == "" {
		return errorf(api.CodeBadRequest, "the message text is empty")
	}
	group := r.PathValue("group")
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	var (
		res *node.SendResult
		err error
	)
	switch {
	case req.ReplyTo != "" && req.To != "":
		return errorf(api.CodeBadRequest, "a direct message cannot be a reply (send one or the other)")
	case req.ReplyTo != "":
		res, err = s.d.node.Reply(ctx, group, req.ReplyTo, req.Text)
	case req.To == "":
		res, err = s.d.node.Send(ctx, group, req.Text)
	default:
		// A fingerprint, or the nick of exactly one other member.
		// Checked here so that a mistyped fingerprint is the caller's
		// error and not confused with keymgmt errors from the node.
		to, perr := keymgmt.ParseFingerprint(req.To)
		if perr != nil {
			if to, err = s.d.node.MemberByNick(group, req.To); errors.Is(err, node.ErrUnknownMember) {
				return errorf(api.CodeBadRequest, "recipient %q is neither a fingerprint nor the nick of a member (see `meshnode group members`): %v", req.To, err)
			}
			if err != nil {
				return apiError(err)
			}
		}
		res, err = s.d.node.SendDirect(ctx, group, to, req.Text)
	}
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.SendResult(*res))
	return nil
}

func (s *server) getOutbox(w http.ResponseWriter, _ *http.Request) error {
	es, err := s.d.node.Outbox()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.OutboxEntry, 0, len(es))
	for _, e := range es {
		out = append(out, api.OutboxEntry{ID: e.ID, Group: e.Group, GroupName: e.GroupName, State: e.State,
			Created: e.Created, NextAttempt: e.NextAttempt, Attempts: e.Attempts, Reason: e.Reason})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) catchUp(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	res, err := s.d.node.CatchUp(ctx, r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	out := api.CatchUpResult{Group: res.Group, Hosts: res.Hosts, Fetched: res.Fetched, Failed: res.Failed}
	for _, g := range res.Gaps {
		out.Gaps = append(out.Gaps, api.Gap(g))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// streamMessages sends the latest messages of a group and, with follow,
// every new one exactly once. It subscribes before it lists, so nothing
// that arrives in between is lost, and skips what it already sent.
func (s *server) streamMessages(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	follow, err := boolParam(r, "follow")
	if err != nil {
		return err
	}
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	n := s.d.node
	var ch <-chan node.Message
	if follow {
		var stop func()
		if ch, stop, err = n.Follow(s.d.c.followBuffer); err != nil {
			return apiError(err)
		}
		defer stop()
	}
	g, err := n.GroupInfo(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	// Everything listed now counts as sent, including what the limit
	// leaves out, so that a resync sends only messages that are new.
	msgs, err := n.Messages(g.ID, 0)
	if err != nil {
		return apiError(err)
	}
	sw, err := stream(w)
	if err != nil {
		return err
	}
	f := &follower{sw: sw, sent: make(map[string]bool, len(msgs))}
	if !all {
		f.hide = n.IsProtocolMessage
		// The limit counts what is shown.
		msgs = slices.DeleteFunc(msgs, func(m node.Message) bool {
			if n.IsProtocolMessage(&m) {
				f.sent[m.ID] = true
				return true
			}
			return false
		})
	}
	if limit > 0 && len(msgs) > limit {
		for _, m := range msgs[:len(msgs)-limit] {
			f.sent[m.ID] = true
		}
		msgs = msgs[len(msgs)-limit:]
	}
	for _, m := range msgs {
		if err := f.send(m); err != nil {
			return nil // the client went away
		}
	}
	if !follow {
		return nil
	}
	tick := time.NewTicker(s.d.c.heartbeat)
	defer tick.Stop()
	resync := false
	for {
		select {
		case <-r.Context().Done():
			// The client left (the write fails, harmlessly) or the daemon
			// is shutting down: say so, so a follower does not mistake
			// the end of the stream for the end of the conversation.
			_ = sw.Fail(errorf(api.CodeUnavailable, "the daemon is shutting down"))
			return nil
		case <-tick.C:
			if err := sw.Heartbeat(); err != nil {
				return nil // the client went away
			}
		case m, ok := <-ch:
			if !ok {
				_ = sw.Fail(errorf(api.CodeUnavailable, "the node stopped"))
				return nil
			}
			// A full buffer means the node may have dropped messages for
			// this stream: once it is drained, re-read the group and send
			// what is missing.
			if len(ch) >= cap(ch)-1 {
				resync = true
			}
			if m.Group == g.ID {
				if err := n.Decorate(&m); err != nil {
					s.log.Info("reading a new message's replies and reactions failed", "err", err)
				}
				if err := f.send(m); err != nil {
					return nil // the client went away
				}
			}
			if resync && len(ch) == 0 {
				resync = false
				msgs, err := n.Messages(g.ID, 0)
				if err != nil {
					_ = sw.Fail(errorf(api.CodeInternal, "re-reading the group failed (see the daemon's log)"))
					s.log.Error("message stream resync failed", "err", err)
					return nil
				}
				for _, m := range msgs {
					if err := f.send(m); err != nil {
						return nil // the client went away
					}
				}
			}
		}
	}
}

// follower sends the messages of one stream, each at most once.
type follower struct {
	sw   *api.StreamWriter
	sent map[string]bool
	// hide, when set, leaves messages out (node.IsProtocolMessage).
	hide func(*node.Message) bool
}

func (f *follower) send(m node.Message) error {
	// A message sent again: only when a reference changed it.
	if f.sent[m.ID] && !m.Updated {
		return nil
	}
	f.sent[m.ID] = true
	if f.hide != nil && f.hide(&m) {
		return nil
	}
	return f.sw.Send(apiMessage(&m))
}

// groupInfo mirrors node.GroupInfo (Hosts never null in JSON).
func groupInfo(g *node.GroupInfo) api.GroupInfo {
	out := api.GroupInfo(*g)
	if out.Hosts == nil {
		out.Hosts = []string{}
	}
	return out
}

// limitParam reads ?limit=N: absent or a non-negative integer (0: all).
func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errorf(api.CodeBadRequest, "limit %q must be a non-negative integer (0: all)", v)
	}
	return n, nil
}

// boolParam reads a boolean query parameter (absent: false).
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(api.CodeBadRequest, "%s %q must be true or false", name, v)
	}
	return b, nil
}
