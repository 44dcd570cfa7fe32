package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/contacts"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

// TestErrorTable checks the one mapping of lower-layer errors to API
// codes: every code has its own HTTP status, no sentinel is listed twice,
// and the lower packages' texts name no command (the hints say that).
func TestErrorTable(t *testing.T) {
	seen := map[error]bool{}
	for _, m := range errorTable {
		if seen[m.err] {
			t.Errorf("%v listed twice", m.err)
		}
		seen[m.err] = true
		if s := api.HTTPStatus(m.code); s == http.StatusInternalServerError {
			t.Errorf("%v: code %q has no status", m.err, m.code)
		}
		if txt := m.err.Error(); strings.Contains(txt, "meshnode ") || strings.Contains(txt, "`") || strings.Contains(txt, "--") {
			t.Errorf("sentinel %q names a command; give the daemon table a hint instead", txt)
		}
	}
}

func TestAPIError(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		code     string
		contains string
	}{
		// An event the chain refuses on a non-member wraps both.
		{"refused on a non-member", fmt.Errorf("%w: %w", node.ErrUnknownMember, fmt.Errorf("%w: no member", groupstate.ErrInvalidEvent)), api.CodeRefused, "no member"},
		{"unknown member", fmt.Errorf("%w: x in g", node.ErrUnknownMember), api.CodeUnknownMember, "x in g"},
		// An add whose key package expired is refused, not a directory's bad answer.
		{"expired key package in an add", fmt.Errorf("%w: add: %w", groupstate.ErrInvalidEvent, keymgmt.ErrExpired), api.CodeRefused, "add"},
		{"expired connection package", fmt.Errorf("lookup: %w", keymgmt.ErrExpired), api.CodeExpiredPackage, "lookup"},
		// A policy out of bounds is the caller's mistake; another event that does not apply is a refusal.
		{"invalid policy", fmt.Errorf("set policy: %w: rotation period 1s", groupstate.ErrInvalidPolicy), api.CodeBadRequest, "invalid policy: rotation period 1s"},
		{"last manager", fmt.Errorf("%w", groupstate.ErrLastManager), api.CodeRefused, "last manager"},
		{"managed invite", fmt.Errorf("%w: %q is managed", node.ErrNoInvite, "g"), api.CodeNoInvite, "is managed"},
		// Hints give the command the node no longer names.
		{"unknown group", fmt.Errorf("%w: %q", node.ErrUnknownGroup, "nope"), api.CodeUnknownGroup, "(see `meshnode group list`)"},
		{"unknown alias", fmt.Errorf("%w: bob", contacts.ErrUnknownAlias), api.CodeUnknownAlias, "bob (see `meshnode alias list`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *api.Error
			if err := apiError(tc.err); !errors.As(err, &e) || e.Code != tc.code || e.Status != api.HTTPStatus(tc.code) || !strings.Contains(e.Message, tc.contains) {
				t.Fatalf("apiError(%v) = %#v, want code %s mentioning %q", tc.err, err, tc.code, tc.contains)
			}
		})
	}
	// Not in the table: internal, as is (writeError logs it).
	other := errors.New("disk on fire")
	if err := apiError(other); err != other {
		t.Fatalf("unmapped error became %v", err)
	}
	if err := apiError(nil); err != nil {
		t.Fatalf("apiError(nil) = %v", err)
	}
}
