package webui

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/meshnode/meshnode/api"
)

//go:embed assets
var embedded embed.FS

// Paths the app serves besides the API.
const (
	// PathLogin is the page a login URL opens (its secret travels in the
	// URL fragment, which browsers never send to a server).
	PathLogin = "/login"
	// PathLoginExchange spends a login secret for a session (POST).
	PathLoginExchange = "/ui/login"
	// PathAssets prefixes the embedded assets.
	PathAssets = "/app/"
)

// ContentSecurityPolicy is sent with every page and asset: everything
// from this origin only, no inline script or style, no plugins, no
// framing, and Trusted Types with no policy at all, so that a string can
// never reach an HTML or script sink (innerHTML, eval, ...) even by
// mistake.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; media-src 'none'; object-src 'none'; worker-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// maxLoginBody bounds the body of a login exchange.
const maxLoginBody = 4 << 10

// UI serves the web app to browsers: the embedded assets, the login
// exchange and the session's own endpoint, and the API (given to New)
// for requests of a logged-in session. See the package doc for the
// checks.
type UI struct {
	api  http.Handler
	info func() api.Session
	log  *slog.Logger
	ss   *sessions

	assets fs.FS
	etags  map[string]string // asset path → ETag
}

type config struct {
	log *slog.Logger
	now func() time.Time
}

// Option configures New.
type Option func(*config) error

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *config) error { c.log = l; return nil } }

// WithClock sets the clock sessions expire by (tests).
func WithClock(now func() time.Time) Option { return func(c *config) error { c.now = now; return nil } }

// New returns the web app in front of apiHandler, which serves the API
// for logged-in sessions. info describes the node for GET /v1/ui/session.
func New(apiHandler http.Handler, info func() api.Session, opts ...Option) (*UI, error) {
	c := config{log: slog.Default(), now: time.Now}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, err
	}
	u := &UI{api: apiHandler, info: info, log: c.log.With("component", "webui"), ss: newSessions(c.now),
		assets: sub, etags: map[string]string{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		u.etags[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webui: assets: %w", err)
	}
	return u, nil
}

// NewLogin makes a one-time login URL for the app served at base (such
// as "http://127.0.0.1:43121").
func (u *UI) NewLogin(base string) api.LoginURL {
	secret, exp := u.ss.newLogin()
	return api.LoginURL{URL: strings.TrimSuffix(base, "/") + PathLogin + "#" + secret, Expires: exp.UTC()}
}

// Sessions is the number of live sessions.
func (u *UI) Sessions() int { return u.ss.count() }

type ctxKey struct{}

// FromSession reports whether a request reached the API through a
// browser session (rather than with the API token).
func FromSession(ctx context.Context) bool {
	_, ok := ctx.Value(ctxKey{}).(string)
	return ok
}

// ServeHTTP serves a request that carries no API token.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	if err := checkHost(r); err != nil {
		u.refuse(w, r, http.StatusForbidden, api.CodeBadOrigin, err.Error())
		return
	}
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/"+api.Version+"/"):
		u.serveAPI(w, r)
	case p == PathLoginExchange:
		u.serveExchange(w, r)
	default:
		u.serveAsset(w, r)
	}
}

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// checkHost refuses a Host header that a DNS-rebinding page could send:
// only "localhost" or an IP literal, with the port the request came in
// on, are answered. A rebinding attack needs a name of its own in Host;
// an IP literal or localhost cannot be one.
func checkHost(r *http.Request) error {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "80"
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, lport, err := net.SplitHostPort(la.String()); err == nil && lport != port {
			return fmt.Errorf("host %q: this server answers on port %s", r.Host, lport)
		}
	}
	if !strings.EqualFold(host, "localhost") && net.ParseIP(host) == nil {
		return fmt.Errorf("host %q: open the app by IP address or localhost (DNS names are refused against DNS rebinding)", r.Host)
	}
	return nil
}

// checkOrigin refuses a browser request made by another site: by the
// Fetch metadata the browser adds, and for state-changing requests by
// their Origin, which must be this very origin.
func checkOrigin(r *http.Request, stateChanging bool) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("a request from another site (%s) is refused", site)
	}
	if !stateChanging {
		return nil
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return errors.New("a state-changing request without an Origin header is refused")
	}
	if origin != "http://"+r.Host {
		return fmt.Errorf("origin %q is not this app's (http://%s)", origin, r.Host)
	}
	return nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// cookieName includes the port: cookies are shared by every port of a
// host, and two daemons on one machine must not log each other out.
func cookieName(r *http.Request) string {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(la.String()); err == nil {
			return "meshnode_session_" + port
		}
	}
	return "meshnode_session"
}

func (u *UI) session(r *http.Request) (string, *session) {
	c, err := r.Cookie(cookieName(r))
	if err != nil {
		return "", nil
	}
	s, ok := u.ss.lookup(c.Value)
	if !ok {
		return "", nil
	}
	return c.Value, s
}

// serveAPI passes a logged-in session's request to the API, after the
// origin and CSRF checks of a state-changing one.
func (u *UI) serveAPI(w http.ResponseWriter, r *http.Request) {
	id, s := u.session(r)
	if s == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshnode"`)
		u.refuse(w, r, http.StatusUnauthorized, api.CodeUnauthorized,
			"not logged in: open a login URL from `meshnode ui`, or send Authorization: Bearer <contents of api.token>")
		return
	}
	unsafe := !safeMethod(r.Method)
	if err := checkOrigin(r, unsafe); err != nil {
		u.refuse(w, r, http.StatusForbidden, api.CodeBadOrigin, err.Error())
		return
	}
	if unsafe && !sameToken(r.Header.Get(api.CSRFHeader), s.csrf) {
		u.refuse(w, r, http.StatusForbidden, api.CodeBadOrigin, "missing or wrong CSRF token (send the session's "+api.CSRFHeader+" header)")
		return
	}
	if r.URL.Path == api.PathUISession {
		u.serveSession(w, r, id, s)
		return
	}
	u.api.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
}

// serveSession answers GET (the session, with its CSRF token) and
// DELETE (log out) of /v1/ui/session.
func (u *UI) serveSession(w http.ResponseWriter, r *http.Request, id string, s *session) {
	switch r.Method {
	case http.MethodGet:
		out := u.info()
		out.CSRF, out.Expires = s.csrf, s.expires().UTC()
		out.Loopback = isLoopback(r)
		writeJSON(w, http.StatusOK, out)
	case http.MethodDelete:
		u.ss.end(id)
		http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		writeJSON(w, http.StatusOK, struct{}{})
	default:
		w.Header().Set("Allow", "DELETE, GET")
		u.refuse(w, r, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, r.Method+" "+r.URL.Path+": use GET or DELETE")
	}
}

func isLoopback(r *http.Request) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(la.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loginRequest is the body of POST /ui/login.
type loginRequest struct {
	Secret string `json:"secret"`
}

// serveExchange spends a login secret for a session cookie: HttpOnly (no
// script can read it), SameSite=Strict (no other site's page or link
// sends it), scoped to this port.
func (u *UI) serveExchange(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		u.refuse(w, r, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "use POST")
		return
	}
	if err := checkOrigin(r, true); err != nil {
		u.refuse(w, r, http.StatusForbidden, api.CodeBadOrigin, err.Error())
		return
	}
	var req loginRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxLoginBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		u.refuse(w, r, http.StatusBadRequest, api.CodeBadRequest, "request body: "+err.Error())
		return
	}
	id, s := u.ss.exchange(req.Secret)
	if s == nil {
		u.refuse(w, r, http.StatusUnauthorized, api.CodeUnauthorized,
			"this login link is unknown, used or expired: get a new one with `meshnode ui`")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: id, Path: "/", MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
	u.log.Info("web app session started", "sessions", u.ss.count())
	writeJSON(w, http.StatusOK, struct{}{})
}

// serveAsset serves the embedded files: the app's page at / and /login,
// the rest under /app/.
func (u *UI) serveAsset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := ""
	switch p := r.URL.Path; {
	case p == "/" || p == PathLogin:
		name = "index.html"
	case strings.HasPrefix(p, PathAssets):
		name = path.Clean(strings.TrimPrefix(p, PathAssets))
	}
	etag, ok := u.etags[name]
	if name == "" || !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	b, err := fs.ReadFile(u.assets, name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	// Revalidated every time (cheap: the ETag answers 304), so a new
	// binary's assets are never mixed with an old page.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

// refuse answers with the API's JSON error shape.
func (u *UI) refuse(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if status == http.StatusForbidden {
		u.log.Info("browser request refused", "method", r.Method, "path", r.URL.Path, "reason", msg)
	}
	writeJSON(w, status, &api.Error{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", api.ContentTypeJSON)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
