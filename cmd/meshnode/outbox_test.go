package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/api"
)

// The outbox's state where a user and an operator look (issue 15): a
// message whose only host is unreachable is "pending" in send's answer,
// in messages --json (with the reason), in status (text and JSON), in
// the outbox command, and in the metrics.
func TestOutboxStateEverywhere(t *testing.T) {
	alice, _ := initHome(t, "--nick", "alice")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ln.Addr().String()
	ln.Close()
	startRun(t, alice, "--metrics", metrics)
	e := env(t)
	// A host nobody runs: a port nothing listens on.
	ln, err = net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	hid, _ := peer.IDFromPublicKey(pub)
	host := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, hid)
	ok(t, meshnode(t, e, "group", "create", "--home", alice, "unhosted", "--host", host), "group create")

	r := meshnode(t, e, "send", "--home", alice, "unhosted", "waiting for a host")
	if r.code != 0 || !regexp.MustCompile(`(?m)^state\s+pending$`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "no host yet") || !strings.Contains(r.stdout, "failed") || !strings.Contains(r.stderr, "meshnode outbox") {
		t.Fatalf("send: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	res := jsonOf[api.SendResult](t, meshnode(t, e, "send", "--home", alice, "unhosted", "--json", "second"))
	if res.State != api.DeliveryPending || len(res.StoredBy) != 0 || res.Failed[hid.String()] == "" {
		t.Fatalf("send --json: %+v", res)
	}

	var msgs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(ok(t, meshnode(t, e, "messages", "--home", alice, "unhosted", "--json"), "messages --json")), "\n") {
		msgs = append(msgs, jsonOf[map[string]any](t, result{stdout: l}))
	}
	if len(msgs) != 2 {
		t.Fatalf("messages --json: %v", msgs)
	}
	for _, m := range msgs {
		if m["delivery"] != api.DeliveryPending || m["delivery_error"] == nil || m["delivery_error"] == "" {
			t.Errorf("message %v", m)
		}
	}
	if out := ok(t, meshnode(t, e, "messages", "--home", alice, "unhosted"), "messages"); strings.Count(out, "not stored by a host yet") != 2 {
		t.Errorf("messages does not mark both as pending:\n%s", out)
	}

	st := jsonOf[map[string]any](t, meshnode(t, e, "status", "--home", alice, "--json"))
	ob, _ := st["outbox"].(map[string]any)
	keys(t, "status outbox", ob, "pending", "failed", "oldest_pending_seconds")
	if ob["pending"] != 3.0 || ob["failed"] != 0.0 { // the profile and the two messages
		t.Errorf("status outbox %v", ob)
	}
	if out := ok(t, meshnode(t, e, "status", "--home", alice), "status"); !regexp.MustCompile(`(?m)^outbox\s+3 pending`).MatchString(out) {
		t.Errorf("status:\n%s", out)
	}
	es := jsonOf[[]map[string]any](t, meshnode(t, e, "outbox", "--home", alice, "--json"))
	if len(es) != 3 {
		t.Errorf("outbox --json: %v", es)
	}

	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !regexp.MustCompile(`(?m)^meshnode_outbox_pending 3$`).Match(b) || !regexp.MustCompile(`(?m)^meshnode_outbox_relays_total\{result="retry"\} [1-9]`).Match(b) {
		t.Errorf("metrics lack the pending envelopes or their retries:\n%s", grepLines(string(b), "meshnode_outbox"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
