package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/internal/errtext"
	"github.com/meshnode/meshnode/webui"
)

// Server timeouts. Streaming handlers lift the write timeout for their own
// response (see stream).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	// streamWriteTimeout bounds one write of a stream, so a client that
	// stops reading cannot hold a handler forever.
	streamWriteTimeout = 30 * time.Second
)

// server is the control API. Each area of the API has its own file
// (handlers_*.go) with a routes method registering its endpoints.
type server struct {
	d     *Daemon
	token []byte
	// routes are the endpoints served ("GET /v1/status"), which
	// docs/api.md must name (docs_test.go).
	routes []string
	log    *slog.Logger
	http   *http.Server
	// ui serves the web app to requests without the API token (nil when
	// the web app is off).
	ui *webui.UI
	// events hands daemon-made events to the event streams.
	events eventHub
}

func newServer(d *Daemon, token []byte, withUI bool) (*server, error) {
	s := &server{d: d, token: token, log: d.c.log.With("component", "api")}
	h, err := s.handler(withUI)
	if err != nil {
		return nil, err
	}
	s.http = newStreamingServer(h, d.c.log)
	return s, nil
}

// newStreamingServer is newHTTPServer for servers with streams: they
// watch the base context, which Shutdown cancels, so they end instead of
// holding Shutdown until its timeout.
func newStreamingServer(h http.Handler, log *slog.Logger) *http.Server {
	srv := newHTTPServer(h, log)
	base, cancel := context.WithCancel(context.Background())
	srv.BaseContext = func(net.Listener) context.Context { return base }
	srv.RegisterOnShutdown(cancel)
	return srv
}

// newHTTPServer sets the timeouts and limits every server of the daemon
// uses.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn),
	}
}

// handler is the middleware chain: count, recover, authenticate, limit
// the body, route. A request without an Authorization header goes to the
// web app (when it is on), which checks its host, session, origin and
// CSRF token before it passes API calls on to the same routes.
func (s *server) handler(withUI bool) (http.Handler, error) {
	mux := http.NewServeMux()
	s.nodeRoutes(mux)
	s.arrivalRoutes(mux)
	s.groupRoutes(mux)
	s.refRoutes(mux)
	s.fileRoutes(mux)
	s.searchRoutes(mux)
	s.contactRoutes(mux)
	s.managedRoutes(mux)
	s.rejectionRoutes(mux)
	s.webappRoutes(mux)
	s.eventRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errorf(api.CodeNotFound, "no endpoint %s (this daemon speaks API %s)", r.URL.Path, api.Version))
	})
	routes := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(api.MaxRequestBody)
		if isFileUpload(r) {
			// A file's bytes (handlers_files.go): the node refuses more
			// than its limit before reading any.
			limit = max(limit, s.d.node.MaxFileSize()+1)
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		mux.ServeHTTP(w, r)
	})
	if withUI {
		var err error
		if s.ui, err = webui.New(routes, s.sessionInfo, webui.WithLogger(s.d.c.log)); err != nil {
			return nil, err
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("API handler panicked", "path", r.URL.Path, "panic", v)
				if !rec.wrote {
					s.writeError(rec, r, errorf(api.CodeInternal, "internal error"))
				}
			}
			s.d.metrics.request(rec.status)
		}()
		if s.ui != nil && r.Header.Get("Authorization") == "" {
			s.ui.ServeHTTP(rec, r)
			return
		}
		if !s.authorized(r) {
			rec.Header().Set("WWW-Authenticate", `Bearer realm="meshnode"`)
			s.writeError(rec, r, errorf(api.CodeUnauthorized, "missing or wrong API token (send Authorization: Bearer <contents of api.token>)"))
			return
		}
		routes.ServeHTTP(rec, r)
	}), nil
}

// sessionInfo describes the node to a web app session.
func (s *server) sessionInfo() api.Session {
	return api.Session{Fingerprint: s.d.Fingerprint(), Nick: s.d.cfg.Nick, PeerID: s.d.node.ID().String()}
}

// authorized compares the bearer token in constant time (the scheme name
// is case-insensitive, RFC 9110 §11.1).
func (s *server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const scheme = "Bearer "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[len(scheme):]), s.token) == 1
}

// handlerFunc is an endpoint: it writes a success answer or returns an
// error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods maps HTTP methods to the handlers of one path.
type methods map[string]handlerFunc

// handle registers the handlers of path; other methods get a JSON 405.
func (s *server) handle(mux *http.ServeMux, path string, m methods) {
	allow := strings.Join(slices.Sorted(maps.Keys(m)), ", ")
	for _, method := range slices.Sorted(maps.Keys(m)) {
		s.routes = append(s.routes, method+" "+path)
	}
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			s.writeError(w, r, errorf(api.CodeMethodNotAllowed, "%s %s: use %s", r.Method, path, allow))
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// errorf makes an API error of the given code.
func errorf(code, format string, args ...any) *api.Error {
	return &api.Error{Code: code, Message: fmt.Sprintf(format, args...), Status: api.HTTPStatus(code)}
}

// writeError answers with the JSON error shape. Errors that are not
// *api.Error are internal: they are logged here (where they are dropped)
// and the client gets a generic message.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *api.Error
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &tooLarge):
		e = errorf(api.CodeTooLarge, "request body over %d bytes", tooLarge.Limit)
	default:
		s.log.Error("API call failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = errorf(api.CodeInternal, "internal error (see the daemon's log)")
	}
	// The message is for a person: without the package names the
	// errors of lower layers start with (the code is for scripts).
	out := *e
	out.Message = errtext.Strip(e.Message)
	writeJSON(w, api.HTTPStatus(e.Code), &out)
}

// writeJSON writes v as the JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", api.ContentTypeJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// An error here means the client went away; nothing to answer.
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads a JSON request body into v: one object, no unknown
// fields, within the body limit set by the middleware.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return errorf(api.CodeBadRequest, "request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return errorf(api.CodeBadRequest, "request body: trailing data after the JSON value")
	}
	return nil
}

// stream prepares w for a newline-delimited JSON stream: no overall write
// timeout but one per write, headers sent at once.
func stream(w http.ResponseWriter) (*api.StreamWriter, error) {
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
	h.Set("Content-Type", api.ContentTypeNDJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, err
	}
	return api.NewStreamWriter(&deadlineWriter{w: w, deadline: deadline}, rc.Flush), nil
}

// deadlineWriter renews the write deadline before every write.
type deadlineWriter struct {
	w        io.Writer
	deadline func() error
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	if err := d.deadline(); err != nil {
		return 0, err
	}
	return d.w.Write(b)
}

// recorder remembers the status for metrics. Unwrap lets
// http.ResponseController reach the underlying writer (flush, deadlines).
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
