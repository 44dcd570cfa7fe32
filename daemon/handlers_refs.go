package daemon

import (
	"context"
	"net/http"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

// refRoutes: one message by ID — read it with its edit history, edit,
// delete, react (issue 18; replies go through sendMessage).
func (s *server) refRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathMessage, methods{http.MethodGet: s.getMessage, http.MethodPatch: s.editMessage, http.MethodDelete: s.deleteMessage})
	s.handle(mux, api.PathMessageReactions, methods{http.MethodPost: s.react})
}

func (s *server) getMessage(w http.ResponseWriter, r *http.Request) error {
	m, err := s.d.node.Message(r.PathValue("id"))
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, apiMessage(m))
	return nil
}

func (s *server) editMessage(w http.ResponseWriter, r *http.Request) error {
	var req api.EditRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Text == "" {
		return errorf(api.CodeBadRequest, "the new text is empty (delete the message instead)")
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	target, res, err := s.d.node.Edit(ctx, r.PathValue("id"), req.Text)
	return writeRefResult(w, target, res, err)
}

func (s *server) deleteMessage(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	target, res, err := s.d.node.Delete(ctx, r.PathValue("id"))
	return writeRefResult(w, target, res, err)
}

func (s *server) react(w http.ResponseWriter, r *http.Request) error {
	var req api.ReactRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var op node.ReactOp
	switch req.Op {
	case "", api.ReactToggle:
		op = node.ReactToggle
	case api.ReactAdd:
		op = node.ReactAdd
	case api.ReactRemove:
		op = node.ReactRemove
	default:
		return errorf(api.CodeBadRequest, "op %q: use %s, %s or %s", req.Op, api.ReactToggle, api.ReactAdd, api.ReactRemove)
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	target, res, err := s.d.node.React(ctx, r.PathValue("id"), req.Emoji, op)
	return writeRefResult(w, target, res, err)
}

func writeRefResult(w http.ResponseWriter, target string, res *node.SendResult, err error) error {
	if err != nil {
		return apiError(err)
	}
	out := api.RefResult{Target: target, Unchanged: res == nil}
	if res != nil {
		out.SendResult = api.SendResult(*res)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// apiMessage is a node message as the API shows it.
func apiMessage(m *node.Message) api.Message {
	out := api.Message{
		ID: m.ID, Group: m.Group, GroupName: m.GroupName, Author: m.Author, Nick: m.Nick, Text: m.Text,
		Sent: m.Sent, Received: m.Received, Kind: m.Kind, Verified: m.Verified, Seq: m.Seq, Epoch: m.Epoch,
		To: m.To, Own: m.Own, Flags: m.Flags, Delivery: m.Delivery, StoredByCount: m.StoredByCount,
		DeliveryError: m.DeliveryError, ReplyTo: m.ReplyTo, Updated: m.Updated, File: apiFileInfo(m.File),
	}
	v := m.View
	if v == nil {
		return out
	}
	if q := v.Quote; q != nil {
		out.Quote = &api.Quote{ID: q.ID, Author: q.Author, Nick: q.Nick, Text: q.Text, Deleted: q.Deleted, Missing: q.Missing}
	}
	out.Edited, out.EditedAt, out.Deleted, out.DeletedBy = v.Edited, v.EditedAt, v.Deleted, v.DeletedBy
	for _, e := range v.Edits {
		out.Edits = append(out.Edits, api.Edit{Text: e.Text, At: e.At})
	}
	for _, r := range v.Reactions {
		out.Reactions = append(out.Reactions, api.Reaction{Emoji: r.Emoji, Count: r.Count, Mine: r.Mine, By: r.By})
	}
	return out
}
