package bench

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/internal/status"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// attackMember is a member: its own libp2p host on 127.0.1.x, its
// established mailbox's key, and the envelopes the host acknowledged.
type attackMember struct {
	h       host.Host
	cl      *fetch.Client
	hp      *hostProcess
	k       ed25519.PrivateKey
	m       envelope.MailboxID
	history int

	mu    sync.Mutex
	acked []envelope.ID
}

func newAttackMember(ip string, hp *hostProcess, k ed25519.PrivateKey, history int) (*attackMember, error) {
	h, err := rawHost(ip)
	if err != nil {
		return nil, err
	}
	if err := connectTo(context.Background(), h, hp); err != nil {
		h.Close()
		return nil, fmt.Errorf("bench: a member connecting to the host: %w", err)
	}
	cl, err := fetch.NewClient(h, fetch.DefaultParams(), false)
	if err != nil {
		h.Close()
		return nil, err
	}
	return &attackMember{h: h, cl: cl, hp: hp, k: k, m: envelope.MailboxFor(k.Public().(ed25519.PublicKey)), history: history}, nil
}

func (m *attackMember) close() { _ = m.h.Close() }

// catchUp fetches the member's whole mailbox (at most 10 s).
func (m *attackMember) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m.mu.Lock()
	want := m.history + len(m.acked)
	m.mu.Unlock()
	_, n, err := m.cl.CatchUp(ctx, m.hp.id, m.m, nil, func(store.Page) error { return nil })
	if err == nil && n < want {
		err = fmt.Errorf("%w: caught up %d envelopes of %d", ErrMismatch, n, want)
	}
	return err
}

// send relays one new envelope (at most 10 s) as node.Remote does.
func (m *attackMember) send(ctx context.Context) error {
	env, err := makeEnvelope(m.k, 1024)
	if err != nil {
		return err
	}
	if err := relay.Send(ctx, m.h, m.hp.id, m.m, env, 10*time.Second); err != nil {
		return err
	}
	m.mu.Lock()
	m.acked = append(m.acked, env.ID())
	m.mu.Unlock()
	return nil
}

// lost counts the member's acknowledged envelopes the host does not
// serve.
func (m *attackMember) lost(ctx context.Context) (int, error) {
	have := map[envelope.ID]bool{}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, _, err := m.cl.CatchUp(ctx, m.hp.id, m.m, nil, func(pg store.Page) error {
		for _, e := range pg.Envelopes {
			have[e.ID()] = true
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bench: a member's final catch-up: %w", err)
	}
	lost := 0
	for _, id := range m.acked {
		if !have[id] {
			lost++
		}
	}
	return lost, nil
}

// errClass names an error for the counts: the refusal codes a client can
// tell apart, or what else it was.
func errClass(err error) string {
	switch {
	case errors.Is(err, status.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, status.ErrBusy):
		return "busy"
	case errors.Is(err, store.ErrQuotaExceeded):
		return "quota"
	case errors.Is(err, status.ErrProofRequired):
		return "proof_required"
	case errors.Is(err, ErrMismatch):
		return "incomplete"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, network.ErrReset):
		return "reset"
	}
	var se *network.StreamError
	if errors.As(err, &se) {
		return "reset"
	}
	return "other"
}

type opCounter struct {
	mu sync.Mutex
	c  OpCount
}

func (o *opCounter) add(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.c.Attempts++
	if err == nil {
		o.c.OK++
		return
	}
	if o.c.Errors == nil {
		o.c.Errors, o.c.Example = map[string]int{}, map[string]string{}
	}
	class := errClass(err)
	o.c.Errors[class]++
	if _, ok := o.c.Example[class]; !ok {
		o.c.Example[class] = status.Truncate(err.Error())
	}
}

func (o *opCounter) result() OpCount {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.c
	if c.Attempts > 0 {
		c.Ratio = float64(c.OK) / float64(c.Attempts)
	}
	return c
}

// runAttack runs one attack for p.Duration while the members work, then
// measures the recovery.
func runAttack(ctx context.Context, name, network string, p AttackParams, hp *hostProcess, members []*attackMember) (*AttackRun, error) {
	run := &AttackRun{Name: name, Network: network + "0/24", Refusals: map[string]uint64{}}
	before := hp.latest()
	run.HostedBefore = before.Hosted
	peaks := hp.window()
	actx, stop := context.WithTimeout(ctx, p.Duration)
	defer stop()
	var stats attackerStats
	var attackers sync.WaitGroup
	attackers.Add(1)
	attackStart := time.Now()
	var attackSecs float64
	go func() {
		defer attackers.Done()
		defer func() { attackSecs = time.Since(attackStart).Seconds() }()
		attack(actx, name, swarm{net: network, hp: hp}, &stats, run)
	}()
	// Let the attack take hold before the members count.
	select {
	case <-time.After(min(2*time.Second, p.Duration/4)):
	case <-ctx.Done():
	}
	var cu, sd opCounter
	var wg sync.WaitGroup
	start := time.Now()
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each operation has its own 10 s, whenever the attack ends.
			for actx.Err() == nil {
				cu.add(m.catchUp(ctx))
				if actx.Err() != nil {
					break
				}
				sd.add(m.send(ctx))
				select {
				case <-actx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	attackers.Wait()
	run.Seconds = time.Since(start).Seconds()
	run.CatchUp, run.Send = cu.result(), sd.result()
	run.Attacker = stats.result()
	run.Attacker.Peers = stats.peers
	if run.Attacker.Sent > 0 && attackSecs > 0 {
		run.Attacker.StoredPerSecond = float64(run.Attacker.Accepted) / attackSecs
	}

	// Recovery: the attackers are gone; how soon are members served, and
	// how soon is the host back to normal?
	end := time.Now()
	for {
		m := members[0]
		if m.catchUp(ctx) == nil && m.send(ctx) == nil {
			run.RecoverySeconds = time.Since(end).Seconds()
			break
		}
		if time.Since(end) > time.Minute || ctx.Err() != nil {
			run.RecoverySeconds = -1
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	run.PressureClearedSeconds = -1
	for time.Since(end) < time.Minute && ctx.Err() == nil {
		if hp.latest().RecentRefusals == 0 {
			run.PressureClearedSeconds = time.Since(end).Seconds()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := hp.latest()
	rss, gor := peaks()
	run.PeakRSSMiB, run.PeakGoroutines, run.PeakJoined = mib(rss), gor, int(hp.peakJoined.Load())
	run.HostedAfter, run.StoreMiBAfter, run.StoreNewRefused = after.Hosted, mib(after.StoreBytes), after.NewRefused
	for r, n := range after.Refusals {
		if d := n - before.Refusals[r]; d > 0 {
			run.Refusals[r] = d
		}
	}
	return run, nil
}
