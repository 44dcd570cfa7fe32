package daemon

import (
	"net/http"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

// rejectionRoutes: a group's rejection log (issue 13): what this member
// refused, flagged or holds aside, and why.
func (s *server) rejectionRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathGroupRejections, methods{http.MethodGet: s.getRejections})
}

func (s *server) getRejections(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	rs, err := s.d.node.GroupRejections(r.PathValue("group"), limit)
	if err != nil {
		return apiError(err)
	}
	out := make([]api.Rejection, 0, len(rs))
	for _, x := range rs {
		out = append(out, rejection(x))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func rejection(x node.GroupRejection) api.Rejection {
	return api.Rejection{At: x.At, Kind: x.Kind.String(), Reason: x.Reason, Detail: x.Detail, Author: x.Author,
		Envelope: x.Envelope.String(), Seq: x.Seq, Epoch: x.Epoch}
}
