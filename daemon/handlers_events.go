package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

// Event stream tuning.
const (
	// eventBuffer is the buffer of one stream's daemon events (read
	// markers); a stream that falls behind is told to resync.
	eventBuffer = 64
	// progressInterval is how often a stream looks at catch-ups and the
	// list of groups for changes.
	progressInterval = 500 * time.Millisecond
	// sseRetry is the reconnection delay Server-Sent Events clients are
	// asked to use.
	sseRetry = 2 * time.Second
)

// eventRoutes: the live event stream of every group.
func (s *server) eventRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathEvents, methods{http.MethodGet: s.streamEvents})
}

// eventHub hands events the daemon makes itself (a read marker moved) to
// every open event stream. A stream whose buffer is full loses the event
// and is told to resync.
type eventHub struct {
	mu   sync.Mutex
	subs map[*eventSub]struct{}
}

type eventSub struct {
	ch   chan api.Event
	lost atomic.Bool
}

func (h *eventHub) subscribe() (*eventSub, func()) {
	sub := &eventSub{ch: make(chan api.Event, eventBuffer)}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*eventSub]struct{}{}
	}
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	return sub, func() {
		h.mu.Lock()
		delete(h.subs, sub)
		h.mu.Unlock()
	}
}

func (h *eventHub) publish(e api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		select {
		case sub.ch <- e:
		default:
			sub.lost.Store(true)
		}
	}
}

// eventWriter writes events as Server-Sent Events or newline-delimited
// JSON.
type eventWriter interface {
	send(api.Event) error
	heartbeat() error
	fail(*api.Error) error
}

type ndjsonEvents struct{ sw *api.StreamWriter }

func (e ndjsonEvents) send(ev api.Event) error   { return e.sw.Send(ev) }
func (e ndjsonEvents) heartbeat() error          { return e.sw.Heartbeat() }
func (e ndjsonEvents) fail(err *api.Error) error { return e.sw.Fail(err) }

// sseEvents writes "data: JSON" records; JSON never holds a raw newline,
// so each event is one data line. Heartbeats are comments.
type sseEvents struct {
	w     *deadlineWriter
	flush func() error
}

func (e sseEvents) write(b []byte) error {
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	return e.flush()
}

func (e sseEvents) send(ev api.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return e.write(append(append([]byte("data: "), b...), '\n', '\n'))
}

func (e sseEvents) heartbeat() error { return e.write([]byte(": ping\n\n")) }

func (e sseEvents) fail(apiErr *api.Error) error {
	b, err := json.Marshal(apiErr)
	if err != nil {
		return err
	}
	return e.write(append(append([]byte("event: error\ndata: "), b...), '\n', '\n'))
}

// acceptsSSE reports whether the client asked for Server-Sent Events.
func acceptsSSE(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == api.ContentTypeEventStream {
			return true
		}
	}
	return false
}

func openEvents(w http.ResponseWriter, r *http.Request) (eventWriter, error) {
	if !acceptsSSE(r) {
		sw, err := stream(w)
		if err != nil {
			return nil, err
		}
		return ndjsonEvents{sw: sw}, nil
	}
	rc := http.NewResponseController(w)
	deadline := func() error {
		err := rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if errors.Is(err, http.ErrNotSupported) {
			return nil
		}
		return err
	}
	if err := deadline(); err != nil {
		return nil, err
	}
	h := w.Header()
	h.Set("Content-Type", api.ContentTypeEventStream)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	e := sseEvents{w: &deadlineWriter{w: w, deadline: deadline}, flush: rc.Flush}
	if err := e.write(fmt.Appendf(nil, "retry: %d\n\n", sseRetry.Milliseconds())); err != nil {
		return nil, err
	}
	return e, nil
}

// streamEvents sends every new message of every group (with its
// position), read marker moves, catch-up progress and changes of the
// list of groups, until the client leaves or the daemon stops. Protocol
// messages of connection groups are left out as in the listings. A
// stream that fell behind gets EventResync: the client re-reads what it
// shows.
func (s *server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	n := s.d.node
	msgs, stop, err := n.Follow(s.d.c.followBuffer)
	if err != nil {
		return apiError(err)
	}
	defer stop()
	sub, unsubscribe := s.events.subscribe()
	defer unsubscribe()
	out, err := openEvents(w, r)
	if err != nil {
		return err
	}
	heartbeat := time.NewTicker(s.d.c.heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(progressInterval)
	defer poll.Stop()
	groups := n.GroupIDs()
	progress := map[string]node.CatchUpProgress{}
	for _, p := range n.CatchUps() {
		progress[p.Group] = p
	}
	resync := false
	for {
		var ev *api.Event
		select {
		case <-r.Context().Done():
			return nil // the client left or the daemon is shutting down
		case <-heartbeat.C:
			if err := out.heartbeat(); err != nil {
				return nil
			}
		case m, ok := <-msgs:
			if !ok {
				_ = out.fail(errorf(api.CodeUnavailable, "the node stopped"))
				return nil
			}
			if len(msgs) >= cap(msgs)-1 {
				resync = true // the node may have dropped messages for us
			}
			if n.IsProtocolMessage(&m) {
				break
			}
			cursor, err := n.Locate(&m)
			if err != nil {
				s.log.Info("locating a new message failed", "err", err)
			}
			if err := n.Decorate(&m); err != nil {
				s.log.Info("reading a new message's replies and reactions failed", "err", err)
			}
			ev = &api.Event{Type: api.EventMessage, Group: m.Group, Message: &api.PagedMessage{Message: apiMessage(&m), Cursor: cursor}}
		case e := <-sub.ch:
			ev = &e
		case <-poll.C:
			if now := n.GroupIDs(); !slices.Equal(now, groups) {
				groups = now
				if err := out.send(api.Event{Type: api.EventGroups}); err != nil {
					return nil
				}
			}
			for _, p := range n.CatchUps() {
				if progress[p.Group] != p {
					progress[p.Group] = p
					if err := out.send(api.Event{Type: api.EventCatchUp, Group: p.Group, CatchUp: catchUpProgress(&p)}); err != nil {
						return nil
					}
				}
			}
		}
		if ev != nil {
			if err := out.send(*ev); err != nil {
				return nil
			}
		}
		if sub.lost.Swap(false) || (resync && len(msgs) == 0) {
			resync = false
			if err := out.send(api.Event{Type: api.EventResync}); err != nil {
				return nil
			}
		}
	}
}
