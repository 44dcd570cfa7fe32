package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/contacts"
)

// pollTimeout bounds the request-mailbox fetch done before listing the
// quarantine; what it does not fetch in time the background poll will.
const pollTimeout = 10 * time.Second

// contactRoutes: aliases, contact requests and contacts (issue 7).
func (s *server) contactRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathAliases, methods{http.MethodGet: s.listAliases, http.MethodPost: s.addAlias})
	s.handle(mux, api.PathAlias, methods{http.MethodDelete: s.removeAlias})
	s.handle(mux, api.PathContacts, methods{http.MethodGet: s.listContacts})
	s.handle(mux, api.PathContactRequest, methods{http.MethodGet: s.listContactRequests, http.MethodPost: s.requestContact})
	s.handle(mux, api.PathContactAccept, methods{http.MethodPost: s.acceptContact})
	s.handle(mux, api.PathContactReject, methods{http.MethodPost: s.rejectContact})
	s.handle(mux, api.PathContact, methods{http.MethodDelete: s.removeContact})
	s.handle(mux, api.PathAliasProof, methods{http.MethodPut: s.setAliasProof})
	s.handle(mux, api.PathGroupAddContact, methods{http.MethodPost: s.addContactToGroup})
	s.handle(mux, api.PathContactAdds, methods{http.MethodGet: s.listContactAdds})
	s.handle(mux, api.PathContactAdd, methods{http.MethodDelete: s.cancelContactAdd})
}

func (s *server) listAliases(w http.ResponseWriter, _ *http.Request) error {
	as, err := s.d.node.Aliases()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.Alias, 0, len(as))
	for _, a := range as {
		out = append(out, api.Alias(a))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) addAlias(w http.ResponseWriter, r *http.Request) error {
	var req api.AddAliasRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	var opts []contacts.AliasOption
	if req.ProofBits != nil {
		opts = append(opts, contacts.WithProofBits(*req.ProofBits))
	}
	a, err := s.d.node.AddAlias(ctx, req.Name, req.Hosts, opts...)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusCreated, api.Alias(*a))
	return nil
}

func (s *server) removeAlias(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	if err := s.d.node.RemoveAlias(ctx, r.PathValue("name")); err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *server) listContacts(w http.ResponseWriter, _ *http.Request) error {
	cs, err := s.d.node.Contacts()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.Contact, 0, len(cs))
	for _, c := range cs {
		out = append(out, api.Contact(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) requestContact(w http.ResponseWriter, r *http.Request) error {
	var req api.RequestContactRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	c, err := s.d.node.RequestContact(ctx, req.Name, req.Hosts...)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusCreated, api.Contact(*c))
	return nil
}

func (s *server) listContactRequests(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), pollTimeout)
	defer cancel()
	if _, err := s.d.node.PollRequests(ctx); err != nil {
		// Dropped: the list below still shows what earlier polls found.
		s.log.Info("polling request mailboxes failed", "err", err)
	}
	rs, err := s.d.node.ContactRequests()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.ContactRequest, 0, len(rs))
	for _, q := range rs {
		out = append(out, api.ContactRequest(q))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) acceptContact(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	c, err := s.d.node.AcceptContact(ctx, r.PathValue("id"))
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.Contact(*c))
	return nil
}

// addContactToGroup adds a connected contact to a managed group. Contact
// errors are mapped first, then those of managed groups.
func (s *server) addContactToGroup(w http.ResponseWriter, r *http.Request) error {
	var req api.AddContactToGroupRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	role, err := parseRole(req.Role)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), managedCallTimeout)
	defer cancel()
	res, err := s.d.node.AddContactToGroup(ctx, r.PathValue("group"), req.Contact, role)
	if err != nil {
		return apiError(err)
	}
	out := api.ContactAddResult{ManageResult: api.ManageResult(res.ManageResult)}
	if out.Events == nil {
		out.Events = []string{}
	}
	if res.Queued != nil {
		q := api.PendingContactAdd(*res.Queued)
		out.Queued = &q
		writeJSON(w, http.StatusAccepted, out)
		return nil
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) listContactAdds(w http.ResponseWriter, _ *http.Request) error {
	ps, err := s.d.node.PendingContactAdds()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.PendingContactAdd, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.PendingContactAdd(p))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) cancelContactAdd(w http.ResponseWriter, r *http.Request) error {
	if err := s.d.node.CancelContactAdd(r.PathValue("id")); err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *server) setAliasProof(w http.ResponseWriter, r *http.Request) error {
	var req api.AliasProofRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	a, err := s.d.node.SetAliasProofBits(ctx, r.PathValue("name"), req.ProofBits)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.Alias(*a))
	return nil
}

func (s *server) removeContact(w http.ResponseWriter, r *http.Request) error {
	block, err := boolParam(r, "block")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	ct, err := s.d.node.RemoveContact(ctx, r.PathValue("contact"), block)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.Contact(*ct))
	return nil
}

func (s *server) rejectContact(w http.ResponseWriter, r *http.Request) error {
	if err := s.d.node.RejectContact(r.PathValue("id")); err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}
