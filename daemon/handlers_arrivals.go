package daemon

import (
	"net/http"
	"time"

	"github.com/meshnode/meshnode/api"
)

// arrivalBuffer is the node subscription's buffer per stream; a client
// slower than that misses arrivals (they stay in the store).
const arrivalBuffer = 256

// arrivalRoutes: the stream of envelopes newly stored by the node.
func (s *server) arrivalRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathArrivals, methods{http.MethodGet: s.getArrivals})
}

func (s *server) getArrivals(w http.ResponseWriter, r *http.Request) error {
	ch, stop := s.d.node.Subscribe(arrivalBuffer)
	defer stop()
	sw, err := stream(w)
	if err != nil {
		return err
	}
	tick := time.NewTicker(s.d.c.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			// The client left or the daemon is shutting down.
			return nil
		case <-tick.C:
			if err := sw.Heartbeat(); err != nil {
				return nil // the client went away
			}
		case a, ok := <-ch:
			if !ok {
				_ = sw.Fail(errorf(api.CodeUnavailable, "the node stopped"))
				return nil
			}
			if err := sw.Send(api.Arrival{
				Mailbox:    a.Envelope.Mailbox().String(),
				EnvelopeID: a.Envelope.ID().String(),
				Size:       a.Envelope.Size(),
				From:       a.From.String(),
				Time:       time.Now().UTC(),
			}); err != nil {
				return nil // the client went away
			}
		}
	}
}
