package daemon

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/api"
)

// A message whose only host is unreachable: the send answers "pending",
// the message is listed as pending with the reason, and the outbox lists
// it.
func TestOutboxOverAPI(t *testing.T) {
	alice := startMember(t, "alice")
	ctx := context.Background()
	// A host nobody runs: a port nothing listens on.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPublicKey(pub)
	host := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)
	if _, err := alice.c.CreateGroup(ctx, "unhosted", []string{host}); err != nil {
		t.Fatal(err)
	}
	res, err := alice.c.Send(ctx, "unhosted", "waiting for a host")
	if err != nil {
		t.Fatal(err)
	}
	if res.State != api.DeliveryPending || len(res.StoredBy) != 0 || res.Failed[id.String()] == "" {
		t.Fatalf("send: %+v", res)
	}
	es, err := alice.c.Outbox(ctx)
	if err != nil || len(es) != 2 { // the profile and the message
		t.Fatalf("outbox: %+v %v", es, err)
	}
	for _, e := range es {
		if e.State != api.DeliveryPending || e.GroupName != "unhosted" || e.Reason == "" {
			t.Errorf("outbox entry %+v", e)
		}
	}
	st, err := alice.c.Status(ctx)
	if err != nil || st.Outbox == nil || st.Outbox.Pending != 2 || st.Outbox.Failed != 0 {
		t.Fatalf("status: %+v %v", st, err)
	}
	msgs, err := alice.c.Messages(ctx, "unhosted", 0)
	if err != nil || len(msgs) != 1 || msgs[0].Delivery != api.DeliveryPending || msgs[0].DeliveryError == "" {
		t.Fatalf("messages: %+v %v", msgs, err)
	}
}
