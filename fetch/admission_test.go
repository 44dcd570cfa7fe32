package fetch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/store"
)

// blockingSource holds every page until release is closed, so the
// streams that asked stay active in the fetch gate.
type blockingSource struct {
	st      *store.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingSource) VisitPage(m envelope.MailboxID, after store.Cursor, limit, maxBytes int, fn func([]byte) error) (store.Cursor, bool, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.st.VisitPage(m, after, limit, maxBytes, fn)
}

// A catch-up refused by the fetch gate fails with an error that matches
// status.ErrBusy and reads once: "remote: busy: all fetch streams are in
// use; retry shortly".
func TestBusyRefusalReadsOnce(t *testing.T) {
	protocols(t, func(t *testing.T, streaming bool) {
		ap := admission.DefaultParams()
		ap.Fetch = admission.GateParams{MaxPending: 4, PendingPerPrefix: 4, PendingPerPeer: 4,
			MaxStreams: 1, ReservedStreams: 0, PerPrefix: 4, PrivilegedPerPrefix: 4, PerPeer: 4}
		adm, err := admission.New(ap, nil)
		if err != nil {
			t.Fatal(err)
		}
		adm.SetClassifier(func(envelope.MailboxID) admission.Class { return admission.ClassNew })
		srvHost, cliHost := newHost(t), newHost(t)
		st, m, _, _ := storeEnvelopes(t, 3, 100)
		src := &blockingSource{st: st, entered: make(chan struct{}, 1), release: make(chan struct{})}
		svc, err := NewService(srvHost, src, WithPolicy(onlyMailbox(m)), WithAdmission(adm))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close() })
		if !streaming {
			srvHost.RemoveStreamHandler(StreamProtocolID)
		}
		if err := cliHost.Connect(context.Background(), peer.AddrInfo{ID: srvHost.ID(), Addrs: srvHost.Addrs()}); err != nil {
			t.Fatal(err)
		}
		c, err := NewClient(cliHost, DefaultParams(), false)
		if err != nil {
			t.Fatal(err)
		}
		first := make(chan error, 1)
		go func() {
			_, _, err := c.CatchUp(context.Background(), srvHost.ID(), m, nil, func(store.Page) error { return nil })
			first <- err
		}()
		select {
		case <-src.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the first catch-up never reached the store")
		}
		_, _, err = c.CatchUp(context.Background(), srvHost.ID(), m, nil, func(store.Page) error { return nil })
		close(src.release)
		var se *status.Error
		const want = "remote: busy: all fetch streams are in use; retry shortly"
		if !errors.Is(err, status.ErrBusy) || !errors.As(err, &se) || se.Error() != want {
			t.Fatalf("second catch-up: %v; want an error reading %q", err, want)
		}
		if strings.Count(err.Error(), "busy") != 1 {
			t.Fatalf("%q repeats its code", err)
		}
		if err := <-first; err != nil {
			t.Fatalf("first catch-up: %v", err)
		}
	})
}
