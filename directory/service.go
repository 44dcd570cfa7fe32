package directory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/admission"
	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/internal/ratelimit"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/internal/wire"
	"github.com/meshnode/meshnode/keymgmt"
)

// Service is the host side of the directory: it serves ProtocolID from its
// own database and deletes expired names in the background.
type Service struct {
	h      host.Host
	db     *db
	params Params
	log    *slog.Logger
	now    func() time.Time
	adm    *admission.Controller // nil: rate limits only

	fetches *ratelimit.Limiter[peer.ID]
	names   *ratelimit.Limiter[keymgmt.NameHash]
	writes  *ratelimit.Limiter[peer.ID]

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewService opens the directory database in dir (ignored with
// Params.InMemory) and registers the protocol on h.
func NewService(h host.Host, dir string, opts ...Option) (*Service, error) {
	cfg := config{params: DefaultParams()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.Default().With("component", "directory")
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	p := cfg.params
	d, err := openDB(dir, p.InMemory, cfg.hook, cfg.now())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		h: h, db: d, params: p, log: cfg.log, now: cfg.now, adm: cfg.adm,
		fetches: ratelimit.New[peer.ID](p.FetchRate, p.FetchBurst, p.MaxTrackedPeers),
		names:   ratelimit.New[keymgmt.NameHash](p.NameFetchRate, p.NameFetchBurst, p.MaxTrackedPeers),
		writes:  ratelimit.New[peer.ID](p.WriteRate, p.WriteBurst, p.MaxTrackedPeers),
		cancel:  cancel,
	}
	s.wg.Add(1)
	go s.sweepLoop(ctx)
	h.SetStreamHandler(ProtocolID, s.handle)
	return s, nil
}

// Close stops serving and closes the database.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		s.h.RemoveStreamHandler(ProtocolID)
		s.cancel()
		s.wg.Wait()
		err = s.db.close()
	})
	return err
}

// Names is the number of names held (tombstones included).
func (s *Service) Names() int { return s.db.count() }

// Sweep deletes expired names now and returns how many it deleted.
func (s *Service) Sweep() (int, error) { return s.db.sweep(s.now()) }

func (s *Service) sweepLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.params.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.Sweep(); err != nil && !errors.Is(err, ErrClosed) {
				// Dropped: the next pass retries.
				s.log.Warn("directory sweep failed", "err", err)
			} else if n > 0 {
				s.log.Debug("expired names deleted", "count", n)
			}
		}
	}
}

func (s *Service) handle(st network.Stream) {
	t := s.adm.Directory().Open(st)
	defer t.Close()
	now := time.Now()
	_ = st.SetDeadline(now.Add(s.params.StreamTimeout))
	// The request is due within RequestTimeout.
	_ = st.SetReadDeadline(now.Add(min(s.params.RequestTimeout, s.params.StreamTimeout)))
	if err := st.Scope().SetService(ServiceName); err != nil {
		s.log.Debug("resource manager refused directory stream", "err", err)
		_ = st.Reset()
		return
	}
	max := maxRequestSize(s.params)
	if err := st.Scope().ReserveMemory(max, network.ReservationPriorityMedium); err != nil {
		s.log.Debug("resource manager refused directory memory", "err", err)
		_ = st.Reset()
		return
	}
	defer st.Scope().ReleaseMemory(max)
	from := st.Conn().RemotePeer()
	resp := s.serve(st, from, max, t)
	if resp == nil {
		// Idle: no request in time, or reset by the gate to make room.
		_ = st.Reset()
		return
	}
	if resp.code != status.OK {
		s.log.Debug("directory request refused", "peer", from, "code", resp.code, "msg", resp.msg)
	}
	if err := wire.WriteOne(st, resp.marshal()); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// serve reads and answers one request; nil means the stream is to be
// reset without an answer (it sent no request in time, or the gate reset
// it while pending).
func (s *Service) serve(st network.Stream, from peer.ID, max int, t *admission.Ticket) *response {
	fail := func(err error) *response {
		c, msg := codeOf(err)
		return &response{code: c, msg: msg}
	}
	frame, err := wire.NewReader(st).ReadFrame(max)
	switch {
	case err == nil:
	case errors.Is(err, wire.ErrFrameTooLarge):
		return fail(fmt.Errorf("%w: %v", ErrTooLarge, err))
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.adm.Refuse(admission.ReasonIdleTimeout)
		return nil
	case t.Evicted():
		return nil
	default:
		return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	// No mailbox makes a directory client established: only a trusted
	// peer's stream is privileged.
	if err := t.Activate(envelope.MailboxID{}); err != nil {
		if errors.Is(err, admission.ErrEvicted) {
			return nil
		}
		code, msg := status.FromError(err) // Busy, and why
		return &response{code: code, msg: msg}
	}
	_ = st.SetReadDeadline(time.Time{})
	q, err := parseRequest(frame, s.params)
	if err != nil {
		return fail(err)
	}
	return s.do(q, from)
}

// do runs one decoded request from peer from.
func (s *Service) do(q *request, from peer.ID) *response {
	fail := func(err error) *response {
		c, msg := codeOf(err)
		return &response{code: c, msg: msg}
	}
	now := s.now()
	if q.op == opFetch {
		if !s.fetches.Allow(from, 1) {
			return fail(fmt.Errorf("%w: too many fetches; slow down", ErrRateLimited))
		}
		if !s.names.Allow(q.name, 1) {
			return fail(fmt.Errorf("%w: too many fetches of this name; retry later", ErrRateLimited))
		}
		blob, err := s.db.take(q.name, now)
		if err != nil {
			return fail(err)
		}
		return &response{code: status.OK, body: blob}
	}
	if !s.writes.Allow(from, 1) {
		return fail(fmt.Errorf("%w: too many directory updates; slow down", ErrRateLimited))
	}
	if err := q.verify(); err != nil {
		return fail(err)
	}
	switch q.op {
	case opPublish:
		return fail(s.db.publish(q, now, s.params))
	case opRemove:
		return fail(s.db.remove(q, now, s.params))
	default: // opStatus; parseRequest admits nothing else
		n, exp, err := s.db.status(q, now, s.params)
		if err != nil {
			return fail(err)
		}
		body := binary.BigEndian.AppendUint64([]byte{byte(n)}, uint64(exp))
		return &response{code: status.OK, body: body}
	}
}
