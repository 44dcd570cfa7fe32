package daemon

import (
	"net/http"
	"strconv"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

func (s *server) searchRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathSearch, methods{http.MethodGet: s.search})
}

func (s *server) search(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf(api.CodeBadRequest, "limit %q must be a non-negative integer", v)
		}
		limit = n
	}
	hide, err := s.hideFor(r)
	if err != nil {
		return err
	}
	res, err := s.d.node.Search(node.SearchQuery{Text: q.Get("q"), Group: q.Get("group"), Limit: limit, Hide: hide})
	if err != nil {
		return apiError(err)
	}
	out := api.SearchAnswer{Messages: make([]api.PagedMessage, 0, len(res.Messages)), More: res.More}
	for i := range res.Messages {
		out.Messages = append(out.Messages, pagedMessage(&res.Messages[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
