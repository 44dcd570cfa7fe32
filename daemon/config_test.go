package daemon

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

func TestConfigRoundTrip(t *testing.T) {
	for _, role := range []node.Role{node.RoleMember, node.RoleHost, node.RoleBot} {
		c := DefaultConfig(role)
		c.Nick = "ünï"
		c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}
		c.MetricsAddr = "127.0.0.1:9100"
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseConfig(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", role, err, b)
		}
		b2, _ := got.Marshal()
		if string(b) != string(b2) {
			t.Errorf("%s: round trip changed the file:\n%s\n%s", role, b, b2)
		}
	}
	if DefaultConfig(node.RoleHost).ListenAddrs[0] != "/ip4/0.0.0.0/tcp/4001" ||
		DefaultConfig(node.RoleMember).ListenAddrs[0] != "/ip4/0.0.0.0/tcp/0" {
		t.Error("default listen addresses changed")
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"version":1,"role":"bot"}`))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig(node.RoleBot)
	if c.APIAddr != d.APIAddr || c.HostPolicy != d.HostPolicy || c.LogLevel != "info" || c.LogFormat != "text" ||
		c.ListenAddrs[0] != d.ListenAddrs[0] || c.Allowlist == nil || c.Bootstrap == nil {
		t.Fatalf("defaults not filled: %+v", c)
	}
}

func TestParseConfigRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", ``, "EOF"},
		{"not an object", `[]`, "cannot unmarshal"},
		{"unknown field", `{"version":1,"role":"member","listen":["/ip4/0.0.0.0/tcp/1"]}`, "unknown field"},
		{"trailing", `{"version":1,"role":"member"} {}`, "trailing"},
		{"no version", `{"role":"member"}`, "version 0"},
		{"future version", `{"version":2,"role":"member"}`, "version 2"},
		{"no role", `{"version":1}`, "role"},
		{"bad role", `{"version":1,"role":"admin"}`, "role"},
		{"bad listen", `{"version":1,"role":"member","listen_addrs":["0.0.0.0:1"]}`, "listen address"},
		{"bad api", `{"version":1,"role":"member","api_addr":"8080"}`, "api address"},
		{"bad policy", `{"version":1,"role":"member","host_policy":"all"}`, "host policy"},
		{"bootstrap without peer", `{"version":1,"role":"member","bootstrap":["/ip4/1.2.3.4/tcp/1"]}`, "bootstrap"},
		{"empty allow entry", `{"version":1,"role":"member","allowlist":[" "]}`, "allowlist"},
		{"bad metrics", `{"version":1,"role":"member","metrics_addr":"9100"}`, "metrics"},
		{"bad level", `{"version":1,"role":"member","log_level":"trace"}`, "log level"},
		{"bad format", `{"version":1,"role":"member","log_format":"xml"}`, "log format"},
		{"too large", `{"version":1,"role":"member","nick":"` + strings.Repeat("a", maxConfigSize) + `"}`, "bytes"},
		{"two problems", `{"version":1,"role":"admin","log_level":"trace"}`, "log level"},
		{"proof too hard", `{"version":1,"role":"member","user_id_proof_bits":33}`, "user_id_proof_bits"},
		{"negative proof", `{"version":1,"role":"member","user_id_proof_bits":-1}`, "user_id_proof_bits"},
		{"proof not a number", `{"version":1,"role":"member","user_id_proof_bits":"16"}`, "user_id_proof_bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

// TestConfigUserIDProofBits: the key is read, defaults to the node's
// default (none) and reaches the node's parameters.
func TestConfigUserIDProofBits(t *testing.T) {
	c, err := ParseConfig([]byte(`{"version":1,"role":"member","user_id_proof_bits":12}`))
	if err != nil {
		t.Fatal(err)
	}
	p := node.DefaultParams(node.RoleMember)
	c.applyTo(&p)
	if p.Contacts.UserIDProofBits != 12 {
		t.Fatalf("UserIDProofBits %d", p.Contacts.UserIDProofBits)
	}
	d, err := ParseConfig([]byte(`{"version":1,"role":"member"}`))
	if err != nil {
		t.Fatal(err)
	}
	p = node.DefaultParams(node.RoleMember)
	want := p.Contacts.UserIDProofBits
	d.applyTo(&p)
	if d.UserIDProofBits != 0 || p.Contacts.UserIDProofBits != want {
		t.Fatalf("default: config %d, params %d", d.UserIDProofBits, p.Contacts.UserIDProofBits)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, r := range []node.Role{node.RoleMember, node.RoleHost} {
		b, _ := DefaultConfig(r).Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"role":"bot","api_addr":"unix:/tmp/s","bootstrap":["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v is not ErrConfig", err)
			}
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		b2, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(b2)
		if err != nil {
			t.Fatalf("re-encoded config does not parse: %v\n%s", err, b2)
		}
		b3, _ := c2.Marshal()
		if string(b2) != string(b3) {
			t.Fatalf("unstable encoding:\n%s\n%s", b2, b3)
		}
	})
}

func TestDecodeJSON(t *testing.T) {
	s := &server{log: quiet}
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"ok", `{"a":1}`, 200, ""},
		{"unknown field", `{"a":1,"b":2}`, 400, api.CodeBadRequest},
		{"trailing", `{"a":1}{"a":2}`, 400, api.CodeBadRequest},
		{"not json", `a=1`, 400, api.CodeBadRequest},
		{"too large", `{"a":1` + strings.Repeat(" ", api.MaxRequestBody) + `}`, 413, api.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "/v1/x", strings.NewReader(tc.body))
			req.Body = http.MaxBytesReader(rec, req.Body, api.MaxRequestBody)
			var v struct{ A int }
			if err := decodeJSON(req, &v); err != nil {
				s.writeError(rec, req, err)
			} else {
				writeJSON(rec, http.StatusOK, v)
			}
			if rec.Code != tc.status || (tc.code != "" && !strings.Contains(rec.Body.String(), `"code":"`+tc.code+`"`)) {
				t.Fatalf("got %d %s", rec.Code, rec.Body)
			}
		})
	}
}
