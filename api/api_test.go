package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testToken = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, network, addr string
		ok                bool
	}{
		{"127.0.0.1:0", "tcp", "127.0.0.1:0", true},
		{"localhost:8080", "tcp", "localhost:8080", true},
		{"[::1]:9", "tcp", "[::1]:9", true},
		{"unix:/tmp/x.sock", "unix", "/tmp/x.sock", true},
		{"unix:rel.sock", "unix", "rel.sock", true},
		{"unix:", "", "", false},
		{"unix:/a\x00b", "", "", false},
		{"127.0.0.1", "", "", false},
		{"127.0.0.1:", "", "", false},
		{"", "", "", false},
		{"http://127.0.0.1:80", "", "", false},
	} {
		n, a, err := ParseAddress(tc.in)
		if tc.ok != (err == nil) || n != tc.network || a != tc.addr {
			t.Errorf("ParseAddress(%q) = %q, %q, %v", tc.in, n, a, err)
		}
		if err != nil && !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseAddress(%q): error %v is not ErrBadAddress", tc.in, err)
		}
	}
}

func TestParseToken(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{testToken, testToken},
		{" " + strings.ToUpper(testToken) + "\n", testToken},
		{testToken[:63], ""},
		{testToken + "00", ""},
		{strings.Repeat("g", 64), ""},
		{"", ""},
	} {
		got, err := ParseToken(tc.in)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("ParseToken(%q) = %q, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseToken(%q): %v is not ErrBadToken", tc.in, err)
		}
	}
}

func TestErrorIs(t *testing.T) {
	for code, wants := range codeErrors {
		e := &Error{Code: code, Message: "x"}
		for _, want := range wants {
			if !errors.Is(e, want) {
				t.Errorf("code %s does not match its sentinel %v", code, want)
			}
		}
		// A code matches its generic sentinel: that of its status.
		if generic := statusCode[HTTPStatus(code)]; !errors.Is(e, codeErrors[generic][0]) {
			t.Errorf("code %s does not match the generic code %s of its status", code, generic)
		}
		if errors.Is(e, ErrDaemonNotRunning) {
			t.Errorf("code %s matches ErrDaemonNotRunning", code)
		}
		if HTTPStatus(code) < 400 {
			t.Errorf("code %s has status %d", code, HTTPStatus(code))
		}
	}
	if errors.Is(&Error{Code: "something-new"}, ErrInternal) {
		t.Error("unknown code matches ErrInternal")
	}
}

func TestStreamRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	flushes := 0
	sw := NewStreamWriter(&buf, func() error { flushes++; return nil })
	want := []Arrival{
		{Mailbox: "aa", EnvelopeID: "bb", Size: 1024, From: "peer", Time: time.Unix(1700000000, 0).UTC()},
		{Mailbox: "cc", EnvelopeID: "dd", Size: 2048, From: "peer2", Time: time.Unix(1700000001, 0).UTC()},
	}
	for i, a := range want {
		if err := sw.Send(a); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := sw.Heartbeat(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if flushes != 3 {
		t.Errorf("%d flushes, want 3", flushes)
	}
	s := newStream[Arrival](io.NopCloser(bytes.NewReader(buf.Bytes())))
	for i, w := range want {
		got, err := s.Next()
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if got != w {
			t.Errorf("item %d = %+v, want %+v", i, got, w)
		}
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the items: %v, want io.EOF", err)
	}
	if _, err := s.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("error is not sticky: %v", err)
	}

	// A failed stream ends with its error line.
	buf.Reset()
	sw = NewStreamWriter(&buf, nil)
	if err := sw.Send(want[0]); err != nil {
		t.Fatal(err)
	}
	if err := sw.Fail(&Error{Code: CodeUnavailable, Message: "the node stopped"}); err != nil {
		t.Fatal(err)
	}
	if err := sw.Send(want[1]); err != nil { // never read
		t.Fatal(err)
	}
	s = newStream[Arrival](io.NopCloser(bytes.NewReader(buf.Bytes())))
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Next()
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "the node stopped") {
		t.Fatalf("error line gave %v", err)
	}
}

func TestStreamRejects(t *testing.T) {
	for _, tc := range []struct {
		name, in string
	}{
		{"not json", "{\"mailbox\":\n"},
		{"wrong type", "{\"size\":\"big\"}\n"},
		{"array", "[1,2]\n"},
		{"too long", "{\"mailbox\":\"" + strings.Repeat("a", MaxStreamLine) + "\"}\n"},
		{"too long without newline", strings.Repeat(" ", MaxStreamLine+2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream[Arrival](io.NopCloser(strings.NewReader(tc.in)))
			if _, err := s.Next(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", err)
			}
		})
	}
	// A last line without a newline still counts.
	s := newStream[Arrival](io.NopCloser(strings.NewReader("\n\n{\"size\":7}")))
	a, err := s.Next()
	if err != nil || a.Size != 7 {
		t.Fatalf("got %+v, %v", a, err)
	}
}

func FuzzStream(f *testing.F) {
	var buf bytes.Buffer
	sw := NewStreamWriter(&buf, nil)
	_ = sw.Send(Arrival{Mailbox: "aa", Size: 3})
	_ = sw.Heartbeat()
	_ = sw.Fail(&Error{Code: CodeInternal, Message: "x"})
	f.Add(buf.Bytes())
	f.Add([]byte("{}\n{}\n"))
	f.Add([]byte("{\"error\":null}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newStream[Arrival](io.NopCloser(bytes.NewReader(b)))
		for range len(b) + 2 {
			if _, err := s.Next(); err != nil {
				var e *Error
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrProtocol) && !errors.As(err, &e) {
					t.Fatalf("unexpected error kind %v", err)
				}
				return
			}
		}
		t.Fatal("stream yields more items than lines")
	})
}

// testServer serves h on loopback and returns a client of it.
func testServer(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := NewClient(strings.TrimPrefix(srv.URL, "http://"), testToken, WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestClientAnswers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		check   func(*Status, error) error
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+testToken || r.URL.Path != PathStatus {
				http.Error(w, "bad", http.StatusTeapot)
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			io.WriteString(w, `{"peer_id":"p","store":{"envelopes":3},"a_field_from_the_future":1}`)
		}, func(s *Status, err error) error {
			if err != nil || s.PeerID != "p" || s.Store.Envelopes != 3 {
				return fmt.Errorf("got %+v, %v", s, err)
			}
			return nil
		}},
		{"json error", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"no token","code":"unauthorized"}`)
		}, func(s *Status, err error) error {
			var e *Error
			if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &e) || e.Status != 401 || e.Message != "no token" {
				return fmt.Errorf("got %v", err)
			}
			return nil
		}},
		{"plain error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "gone", http.StatusNotFound)
		}, func(s *Status, err error) error {
			if !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("got %v", err)
			}
			return nil
		}},
		{"wrong content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `<html>`)
		}, func(s *Status, err error) error {
			if !errors.Is(err, ErrProtocol) {
				return fmt.Errorf("got %v", err)
			}
			return nil
		}},
		{"bad json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ContentTypeJSON)
			io.WriteString(w, `{"peer_id":`)
		}, func(s *Status, err error) error {
			if !errors.Is(err, ErrProtocol) {
				return fmt.Errorf("got %v", err)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testServer(t, tc.handler)
			if err := tc.check(c.Status(ctx)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestClientStream(t *testing.T) {
	sent := make(chan struct{})
	c := testServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentTypeNDJSON)
		rc := http.NewResponseController(w)
		sw := NewStreamWriter(w, rc.Flush)
		_ = sw.Heartbeat()
		_ = sw.Send(Arrival{Size: 1})
		_ = sw.Send(Arrival{Size: 2})
		close(sent)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.Arrivals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for want := 1; want <= 2; want++ {
		a, err := s.Next()
		if err != nil || a.Size != want {
			t.Fatalf("got %+v, %v; want size %d", a, err, want)
		}
	}
	<-sent
	cancel()
	if _, err := s.Next(); err == nil {
		t.Fatal("stream continued after its context was cancelled")
	}
}

func TestClientNotRunning(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, a := range []string{addr, UnixPrefix + sock} {
		c, err := NewClient(a, testToken)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ID(context.Background()); !errors.Is(err, ErrDaemonNotRunning) {
			t.Errorf("%s: got %v, want ErrDaemonNotRunning", a, err)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Error("the client created the socket file")
		}
	}
}

func TestNewClientRejects(t *testing.T) {
	if _, err := NewClient("nope", testToken); !errors.Is(err, ErrBadAddress) {
		t.Errorf("bad address: %v", err)
	}
	if _, err := NewClient("127.0.0.1:1", "short"); !errors.Is(err, ErrBadToken) {
		t.Errorf("bad token: %v", err)
	}
	if _, err := NewClient("127.0.0.1:1", testToken, WithTimeout(0)); err == nil {
		t.Error("zero timeout accepted")
	}
}
