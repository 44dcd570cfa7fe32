package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Client calls one daemon's control API. It is safe for concurrent use.
type Client struct {
	addr    string
	token   string
	base    string
	hc      *http.Client
	timeout time.Duration
}

// NewClient returns a client of the daemon at addr (as written in
// api.addr: "host:port" or "unix:/path") using token (as in api.token).
func NewClient(addr, token string, opts ...Option) (*Client, error) {
	cfg := config{timeout: DefaultTimeout}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	network, address, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	if token, err = ParseToken(token); err != nil {
		return nil, err
	}
	var d net.Dialer
	tr := &http.Transport{
		// Never send the token through an HTTP proxy from the environment.
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, address)
			if err != nil && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist)) {
				return nil, fmt.Errorf("%w: nothing answers at %s", ErrDaemonNotRunning, addr)
			}
			return c, err
		},
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: cfg.timeout,
	}
	return &Client{
		addr:  addr,
		token: token,
		// The host part is not used for dialling; it names the daemon in
		// error messages.
		base:    "http://meshnode",
		hc:      &http.Client{Transport: tr},
		timeout: cfg.timeout,
	}, nil
}

// Addr is the daemon address the client calls.
func (c *Client) Addr() string { return c.addr }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.Do(ctx, http.MethodGet, PathStatus, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ID calls GET /v1/id.
func (c *Client) ID(ctx context.Context) (*Identity, error) {
	var id Identity
	if err := c.Do(ctx, http.MethodGet, PathID, nil, &id); err != nil {
		return nil, err
	}
	return &id, nil
}

// Arrivals opens the GET /v1/arrivals stream. It runs until ctx ends, the
// stream is closed or the daemon stops.
func (c *Client) Arrivals(ctx context.Context) (*Stream[Arrival], error) {
	return OpenStream[Arrival](ctx, c, PathArrivals)
}

// Do sends a request with a JSON body in (if not nil) and decodes a JSON
// answer into out (if not nil). Error answers come back as *Error. Typed
// methods are built on it; it is exported for endpoints newer than this
// client.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, path, in, ContentTypeJSON)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBody))
		return nil
	}
	if err := checkContentType(resp, ContentTypeJSON); err != nil {
		return err
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, MaxResponseBody))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%w: %s %s: decoding answer: %v", ErrProtocol, method, path, err)
	}
	return nil
}

// send performs a request and returns a 2xx response, or the error.
func (c *Client) send(ctx context.Context, method, path string, in any, accept string) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("api: encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", accept)
	if in != nil {
		req.Header.Set("Content-Type", ContentTypeJSON)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrDaemonNotRunning) {
			return nil, fmt.Errorf("%w: nothing answers at %s", ErrDaemonNotRunning, c.addr)
		}
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

// decodeError turns a non-2xx answer into *Error, even when its body is
// not the JSON error shape.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if json.Unmarshal(b, &e) != nil || e.Code == "" {
		e = Error{Code: codeOfStatus(resp.StatusCode), Message: fmt.Sprintf("unexpected answer %s", resp.Status)}
	}
	e.Status = resp.StatusCode
	return &e
}

func codeOfStatus(status int) string {
	if code, ok := statusCode[status]; ok {
		return code
	}
	return CodeInternal
}

func checkContentType(resp *http.Response, want string) error {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return fmt.Errorf("%w: content type %q, want %s", ErrProtocol, resp.Header.Get("Content-Type"), want)
	}
	return nil
}
