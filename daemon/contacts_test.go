package daemon

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/contacts"
	tu "github.com/meshnode/meshnode/internal/testutil"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

// TestContactTypesMirrorNode: package api owns the contacts' wire form:
// the contacts package's types carry no JSON names (the handlers convert
// them to api's types, which the compiler checks field for field); the
// node's ContactAddResult still has api's JSON names.
func TestContactTypesMirrorNode(t *testing.T) {
	for _, pair := range [][2]any{
		{contacts.AliasInfo{}, api.Alias{}},
		{contacts.Contact{}, api.Contact{}},
		{contacts.ContactRequest{}, api.ContactRequest{}},
		{contacts.PendingContactAdd{}, api.PendingContactAdd{}},
		{node.ContactAddResult{}, api.ContactAddResult{}},
	} {
		n, a := reflect.TypeOf(pair[0]), reflect.TypeOf(pair[1])
		if n.NumField() != a.NumField() {
			t.Fatalf("%s has %d fields, %s %d", n, n.NumField(), a, a.NumField())
		}
		for i := range n.NumField() {
			if n.PkgPath() == "github.com/meshnode/meshnode/contacts" {
				if tag := n.Field(i).Tag; tag != "" {
					t.Errorf("%s.%s has the tag %q: api owns the wire form", n, n.Field(i).Name, tag)
				}
				if n.Field(i).Name != a.Field(i).Name {
					t.Errorf("%s field %d is %s, api has %s", n, i, n.Field(i).Name, a.Field(i).Name)
				}
				continue
			}
			if n.Field(i).Tag.Get("json") != a.Field(i).Tag.Get("json") {
				t.Errorf("%s.%s: json %q, api has %q", n, n.Field(i).Name, n.Field(i).Tag.Get("json"), a.Field(i).Tag.Get("json"))
			}
		}
	}
}

// TestContactsOverAPI: alias, request, quarantine, accept, list through
// two member daemons and a directory host node.
func TestContactsOverAPI(t *testing.T) {
	host := startMember(t, "host", WithNodeParams(func(p *node.Params) { p.HostPolicy = node.PolicyOpen; p.Directory.Serve = true }))
	dirHost := WithNodeParams(func(p *node.Params) { p.Contacts.DirectoryHosts = []string{host.addr()} })
	alice, bob := startMember(t, "alice", dirHost), startMember(t, "bob", dirHost)
	ctx := context.Background()

	if _, err := host.c.AddAlias(ctx, "x", nil); err == nil {
		t.Fatal("invalid alias accepted")
	}
	a, err := bob.c.AddAlias(ctx, "bob-api", nil)
	if err != nil || a.Published != 1 || a.ProofBits != 16 {
		t.Fatalf("alias add: %+v %v", a, err)
	}
	tooHard, none := 33, 0
	if _, err := bob.c.AddAliasWith(ctx, &api.AddAliasRequest{Name: "bob-hard", ProofBits: &tooHard}); !apiCode(err, api.CodeBadRequest) {
		t.Fatalf("alias with a 33-bit proof of work: %v", err)
	}
	if a, err := bob.c.AddAliasWith(ctx, &api.AddAliasRequest{Name: "bob-free", ProofBits: &none}); err != nil || a.ProofBits != 0 {
		t.Fatalf("alias without a proof of work: %+v %v", a, err)
	}
	if err := bob.c.RemoveAlias(ctx, "bob-free"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.AddAlias(ctx, "bob-api", nil); !apiCode(err, api.CodeAliasExists) {
		t.Fatalf("alias add twice: %v", err)
	}
	if _, err := alice.c.RequestContact(ctx, "nobody-at-all"); !apiCode(err, api.CodeUnknownName) {
		t.Fatalf("unknown alias: %v", err)
	}
	if _, err := alice.c.RequestContact(ctx, "bob-api"); err != nil {
		t.Fatal(err)
	}
	var reqs []api.ContactRequest
	tu.Eventually(t, 10*time.Second, func() bool {
		reqs, _ = bob.c.ContactRequests(ctx)
		return len(reqs) == 1
	}, "bob's request")
	if reqs[0].Fingerprint != alice.fp || reqs[0].Nick != "alice" {
		t.Fatalf("request %+v", reqs[0])
	}
	if _, err := bob.c.AcceptContact(ctx, "nope"); !apiCode(err, api.CodeUnknownRequest) {
		t.Fatalf("accept unknown: %v", err)
	}
	if _, err := bob.c.AcceptContact(ctx, reqs[0].ID); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		cs, _ := alice.c.Contacts(ctx)
		return len(cs) == 1 && cs[0].State == "connected" && cs[0].Fingerprint == bob.fp
	}, "alice connected")
	// Alice adds bob to a managed group through the contact: bob's node
	// offered a key package when it accepted, and the welcome comes over
	// the connection group.
	if _, err := alice.c.AddContactToGroup(ctx, "no-such-group", &api.AddContactToGroupRequest{Contact: "nobody", Role: "write"}); !apiCode(err, api.CodeUnknownContact) {
		t.Fatalf("unknown contact: %v", err)
	}
	if _, err := alice.c.AddContactToGroup(ctx, "no-such-group", &api.AddContactToGroupRequest{Contact: "bob", Role: "boss"}); !apiCode(err, api.CodeBadRequest) {
		t.Fatalf("bad role: %v", err)
	}
	created, err := alice.c.CreateManagedGroup(ctx, &api.CreateManagedRequest{Name: "api-club", Hosts: []string{host.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	// Done at once if bob's offer has reached alice, else queued and
	// completed by alice's daemon when it does.
	res, err := alice.c.AddContactToGroup(ctx, created.Group.ID, &api.AddContactToGroupRequest{Contact: "bob", Role: "write"})
	if err != nil {
		t.Fatalf("add bob: %v", err)
	}
	if q := res.Queued; q != nil && (q.Group != created.Group.ID || q.Role != "write" || q.State != "waiting" || q.Fingerprint != bob.fp) {
		t.Fatalf("queued add %+v", q)
	}
	tu.Eventually(t, 20*time.Second, func() bool {
		g, err := bob.c.Group(ctx, created.Group.ID)
		return err == nil && g.Role == "write"
	}, "bob joins api-club")
	tu.Eventually(t, 20*time.Second, func() bool {
		ps, err := alice.c.PendingContactAdds(ctx)
		return err == nil && len(ps) == 0
	}, "no queued add left")
	if err := alice.c.CancelContactAdd(ctx, "0123456789abcdef"); !apiCode(err, api.CodeUnknownAdd) {
		t.Fatalf("cancel an unknown add: %v", err)
	}

	// An alias's proof of work changes in place.
	if a, err := bob.c.SetAliasProofBits(ctx, "bob-api", 4); err != nil || a.ProofBits != 4 || a.Name != "bob-api" {
		t.Fatalf("alias pow: %+v %v", a, err)
	}
	if _, err := bob.c.SetAliasProofBits(ctx, "bob-api", 33); !apiCode(err, api.CodeBadRequest) {
		t.Fatalf("alias pow 33: %v", err)
	}
	if _, err := bob.c.SetAliasProofBits(ctx, "no-such-alias", 4); !apiCode(err, api.CodeUnknownAlias) {
		t.Fatalf("pow of an unknown alias: %v", err)
	}

	// The connection group carries key package offers and welcome frames:
	// the API leaves them out unless asked for everything.
	cs, err := bob.c.Contacts(ctx)
	if err != nil || len(cs) != 1 {
		t.Fatalf("bob's contacts: %+v %v", cs, err)
	}
	protocol := func(ms []api.Message) (n int) {
		for _, m := range ms {
			if strings.HasPrefix(m.Text, keymgmt.KeyPackagePrefix) || strings.HasPrefix(m.Text, contacts.WelcomePrefix) {
				n++
			}
		}
		return n
	}
	shown, err := bob.c.Messages(ctx, cs[0].Group, 0)
	if err != nil {
		t.Fatal(err)
	}
	all, err := bob.c.MessagesWith(ctx, cs[0].Group, api.MessageQuery{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if protocol(shown) != 0 || protocol(all) == 0 || len(all) <= len(shown) {
		t.Fatalf("connection group: %d shown with %d protocol messages, %d in all with %d", len(shown), protocol(shown), len(all), protocol(all))
	}
	st, err := bob.c.MessageStream(ctx, cs[0].Group, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var streamed []api.Message
	for {
		m, err := st.Next()
		if err != nil {
			break
		}
		streamed = append(streamed, m)
	}
	st.Close()
	if protocol(streamed) != 0 || len(streamed) != len(shown) {
		t.Fatalf("stream: %d messages, %d protocol; listing shows %d", len(streamed), protocol(streamed), len(shown))
	}

	if err := bob.c.RemoveAlias(ctx, "bob-api"); err != nil {
		t.Fatal(err)
	}
	if err := bob.c.RemoveAlias(ctx, "bob-api"); !apiCode(err, api.CodeUnknownAlias) {
		t.Fatalf("remove twice: %v", err)
	}
	if as, err := bob.c.Aliases(ctx); err != nil || len(as) != 0 {
		t.Fatalf("aliases after removal: %+v %v", as, err)
	}
}

func apiCode(err error, code string) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}
