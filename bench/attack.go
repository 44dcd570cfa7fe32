package bench

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/store"
)

// Attack names (AttackParams.Attacks).
const (
	AttackSlowloris = "slowloris"
	AttackMailboxes = "mailboxes"
	AttackStoreFull = "store-full"
	AttackFlood     = "flood"
	// AttackSync and AttackSubscriptions go beyond issue 14's four: idle
	// and slow sessions of the sync protocol, and gossipsub subscription
	// announcements.
	AttackSync          = "sync"
	AttackSubscriptions = "subscriptions"
)

// AllAttacks are the four attacks of issue 14 and the sync and
// subscription attacks, in the order they run by default. Store-full
// comes last: it leaves the store past the share open to new mailboxes
// (until retention frees room), so an attack after it that writes into
// new mailboxes measures that, not its own limits.
var AllAttacks = []string{AttackSlowloris, AttackSync, AttackSubscriptions, AttackMailboxes, AttackFlood, AttackStoreFull}

// Goals of the attack benchmark (issue 14).
const (
	GoalCatchUpRatio   = 0.9
	GoalSendRatio      = 0.99
	GoalRSSMiB         = 300
	GoalGoroutines     = 5000
	GoalRestartSeconds = 10
)

// Networks of the attack benchmark on loopback: members come from
// 127.0.1.0/24, and the attackers of the i-th attack run from a network
// of their own, 127.0.(10+i).0/24 (one address per peer ID; attackNet),
// so what one attack spent of its network's allowances (new mailboxes,
// bytes) does not hold back the next. The host counts loopback like any
// network (not exempt).
const memberNet = "127.0.1."

// attackNet is the network of the i-th attack's attackers ("127.0.10."
// for the first).
func attackNet(i int) string { return fmt.Sprintf("127.0.%d.", 10+i) }

// AttackParams describe the attack benchmark. Start from
// DefaultAttackParams.
type AttackParams struct {
	// Mailboxes is the number of mailboxes the host's store holds when it
	// starts (one 256-byte envelope each, two days old).
	Mailboxes int
	// Members is the number of members, each with an established mailbox
	// holding History envelopes of 1 KiB; during every attack each catches
	// up and sends over and over.
	Members int
	History int
	// Duration is how long each attack lasts.
	Duration time.Duration
	// Attacks are the attacks to run, in order (AllAttacks).
	Attacks []string
	// GlobalQuota is the host store's global quota during the benchmark
	// (store-full needs one an attacker can reach in Duration).
	GlobalQuota int64
	// AdmissionOff runs the host without issue 14's admission limits
	// that can be turned off (for comparison; the goals will not be met).
	AdmissionOff bool
	// Dir is where the host's store goes (as IngestParams.Dir).
	Dir string
	// Executable is the program started as the host process (default:
	// this one, os.Executable); it must call RunChild when EnvChildRole
	// is set.
	Executable string
}

// DefaultAttackParams: 100,000 mailboxes, 8 members with 50 envelopes
// each, 20 s per attack, a 64 MiB store quota.
func DefaultAttackParams() AttackParams {
	return AttackParams{
		Mailboxes: 100_000, Members: 8, History: 50, Duration: 20 * time.Second,
		Attacks: append([]string(nil), AllAttacks...), GlobalQuota: 64 << 20,
	}
}

func (p AttackParams) validate() error {
	switch {
	case p.Mailboxes < 0 || p.Mailboxes > 1_000_000:
		return fmt.Errorf("%w: mailboxes %d outside [0, 1000000]", ErrInvalidParams, p.Mailboxes)
	case p.Members < 1 || p.Members > 64:
		return fmt.Errorf("%w: members %d outside [1, 64]", ErrInvalidParams, p.Members)
	case p.History < 0 || p.History > 10_000:
		return fmt.Errorf("%w: history %d outside [0, 10000]", ErrInvalidParams, p.History)
	case p.Duration < time.Second || p.Duration > time.Hour:
		return fmt.Errorf("%w: duration %v outside [1s, 1h]", ErrInvalidParams, p.Duration)
	case p.GlobalQuota < 0:
		return fmt.Errorf("%w: negative quota", ErrInvalidParams)
	}
	for _, a := range p.Attacks {
		known := false
		for _, k := range AllAttacks {
			known = known || a == k
		}
		if !known {
			return fmt.Errorf("%w: unknown attack %q (want %v)", ErrInvalidParams, a, AllAttacks)
		}
	}
	return nil
}

// AttackResult is the outcome of Attack.
type AttackResult struct {
	Workload     string  `json:"workload"` // "attack"
	Mailboxes    int     `json:"mailboxes"`
	Members      int     `json:"members"`
	History      int     `json:"history"`
	AttackSecs   float64 `json:"attack_seconds"`
	AdmissionOff bool    `json:"admission_off,omitempty"`
	// Restart is the host's first start, on a store already holding
	// Mailboxes mailboxes; RestartAfter its start after the attacks.
	Restart      RestartResult  `json:"restart"`
	RestartAfter *RestartResult `json:"restart_after_attacks,omitempty"`
	Attacks      []AttackRun    `json:"attacks"`
	// Peaks over the whole benchmark, of the host process alone.
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	PeakGoroutines int     `json:"peak_goroutines"`
	// Lost counts members' acknowledged envelopes the host no longer
	// serves at the end (must be 0).
	Lost           int         `json:"lost"`
	Goals          AttackGoals `json:"goals"`
	Met            bool        `json:"met"`
	PrepareSeconds float64     `json:"prepare_seconds"`
	Machine        Machine     `json:"machine"`
	Dir            string      `json:"dir,omitempty"`
}

// AttackGoals are the goals, and whether each was met.
type AttackGoals struct {
	CatchUpRatio   float64 `json:"catch_up_ratio"`
	SendRatio      float64 `json:"send_ratio"`
	RSSMiB         float64 `json:"rss_mib"`
	Goroutines     int     `json:"goroutines"`
	RestartSeconds float64 `json:"restart_seconds"`
	// Per goal: met or not.
	CatchUpMet    bool `json:"catch_up_met"`
	SendMet       bool `json:"send_met"`
	RSSMet        bool `json:"rss_met"`
	GoroutinesMet bool `json:"goroutines_met"`
	RestartMet    bool `json:"restart_met"`
}

// RestartResult is one start of the host process.
type RestartResult struct {
	// Seconds from starting the process until its node serves;
	// NodeSeconds the part in node.New (store open, hosting every stored
	// mailbox).
	Seconds     float64 `json:"seconds"`
	NodeSeconds float64 `json:"node_seconds"`
	RSSMiB      float64 `json:"rss_mib"`
	Goroutines  int     `json:"goroutines"`
	Hosted      int     `json:"hosted"`
	Joined      int     `json:"joined_topics"`
}

// OpCount counts members' operations during an attack.
type OpCount struct {
	OK       int            `json:"ok"`
	Attempts int            `json:"attempts"`
	Ratio    float64        `json:"ratio"`
	Errors   map[string]int `json:"errors,omitempty"`
	// Example is the first error of each kind.
	Example map[string]string `json:"error_examples,omitempty"`
}

// AttackRun is one attack.
type AttackRun struct {
	Name string `json:"name"`
	// Network is the attackers' network (a fresh one per attack).
	Network     string  `json:"network"`
	Description string  `json:"description"`
	Seconds     float64 `json:"seconds"`
	CatchUp     OpCount `json:"catch_up"`
	Send        OpCount `json:"send"`
	// The host process during the attack.
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	PeakGoroutines int     `json:"peak_goroutines"`
	PeakJoined     int     `json:"peak_joined_topics"`
	HostedBefore   int     `json:"hosted_before"`
	HostedAfter    int     `json:"hosted_after"`
	StoreMiBAfter  float64 `json:"store_mib_after"`
	// Attacker is what the attackers did and got.
	Attacker AttackerStats `json:"attacker"`
	// Refusals are the host's refusals during the attack, by reason.
	Refusals map[string]uint64 `json:"refusals"`
	// RecoverySeconds: from the attack's end until a member's catch-up
	// and send both succeed; PressureClearedSeconds until the host has
	// refused nothing within its pressure window (5 s here): -1 if not
	// within a minute. StoreNewRefused: the store is left past the share
	// open to new mailboxes (it refuses new ones, and reports pressure,
	// until retention frees room).
	RecoverySeconds        float64 `json:"recovery_seconds"`
	PressureClearedSeconds float64 `json:"pressure_cleared_seconds"`
	StoreNewRefused        bool    `json:"store_new_refused"`
}

// AttackerStats is the attackers' side of an attack.
type AttackerStats struct {
	Peers    int   `json:"peers"`
	Streams  int64 `json:"streams_opened,omitempty"`
	Sent     int64 `json:"sent,omitempty"`
	Accepted int64 `json:"accepted,omitempty"`
	// Announced is the gossip subscriptions the attackers announced
	// (the subscriptions attack).
	Announced int64 `json:"subscriptions_announced,omitempty"`
	// StoredPerSecond is Accepted (envelopes the host acknowledged as
	// stored) per second of the attack.
	StoredPerSecond float64           `json:"stored_per_second,omitempty"`
	Refused         map[string]int    `json:"refused,omitempty"`
	Example         map[string]string `json:"refusal_examples,omitempty"`
}

// Attack runs each attack of issue 14 against a real host (a process of
// its own, over TCP loopback) while members keep catching up and
// sending, and reports how the members fared and what the host cost.
// See the package doc.
func Attack(ctx context.Context, p AttackParams) (*AttackResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	exe := p.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("bench: attack: %w", err)
		}
	}
	dir, cleanup, err := workdir(p.Dir, "attack-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	res := &AttackResult{
		Workload: "attack", Mailboxes: p.Mailboxes, Members: p.Members, History: p.History,
		AttackSecs: p.Duration.Seconds(), AdmissionOff: p.AdmissionOff, Machine: machine(),
	}
	if p.Dir != "" {
		res.Dir = dir
	}

	prep := time.Now()
	keys, err := seedHost(ctx, filepath.Join(dir, "host"), p)
	if err != nil {
		return nil, err
	}
	res.PrepareSeconds = time.Since(prep).Seconds()

	cfg := attackHostConfig{
		Dir: filepath.Join(dir, "host"), Listen: "/ip4/127.0.0.1/tcp/0", GlobalQuota: p.GlobalQuota,
		PressureWindow: 5 * time.Second, SampleInterval: 100 * time.Millisecond, AdmissionOff: p.AdmissionOff,
	}
	hp, err := startHostProcess(ctx, exe, cfg)
	if err != nil {
		return nil, err
	}
	defer hp.stop()
	res.Restart = hp.restart

	members := make([]*attackMember, p.Members)
	for i := range members {
		if members[i], err = newAttackMember(fmt.Sprintf("%s%d", memberNet, i+1), hp, keys[i], p.History); err != nil {
			return nil, err
		}
		defer members[i].close()
	}
	// The members work before any attack: the host serves them.
	for _, m := range members {
		if err := m.catchUp(ctx); err != nil {
			return nil, fmt.Errorf("bench: attack: a member's catch-up before any attack: %w", err)
		}
		if err := m.send(ctx); err != nil {
			return nil, fmt.Errorf("bench: attack: a member's send before any attack: %w", err)
		}
	}

	for i, name := range p.Attacks {
		run, err := runAttack(ctx, name, attackNet(i), p, hp, members)
		if err != nil {
			return nil, err
		}
		res.Attacks = append(res.Attacks, *run)
	}
	res.PeakRSSMiB, res.PeakGoroutines = mib(hp.peakRSS.Load()), int(hp.peakGoroutines.Load())

	// Restart after the attacks: everything the attackers left is on disk.
	for _, m := range members {
		m.close()
	}
	if err := hp.stop(); err != nil {
		return nil, err
	}
	hp2, err := startHostProcess(ctx, exe, cfg)
	if err != nil {
		return nil, err
	}
	defer hp2.stop()
	after := hp2.restart
	res.RestartAfter = &after
	for i, m := range members {
		if members[i], err = newAttackMember(fmt.Sprintf("%s%d", memberNet, i+1), hp2, m.k, 0); err != nil {
			return nil, err
		}
		members[i].acked = m.acked
		defer members[i].close()
		lost, err := members[i].lost(ctx)
		if err != nil {
			return nil, err
		}
		res.Lost += lost
	}
	res.PeakRSSMiB = max(res.PeakRSSMiB, mib(hp2.peakRSS.Load()))
	res.PeakGoroutines = max(res.PeakGoroutines, int(hp2.peakGoroutines.Load()))
	res.Goals = goals(res)
	g := res.Goals
	res.Met = g.CatchUpMet && g.SendMet && g.RSSMet && g.GoroutinesMet && g.RestartMet && res.Lost == 0
	if res.Lost > 0 {
		return res, fmt.Errorf("%w: %d acknowledged member envelopes lost", ErrMismatch, res.Lost)
	}
	return res, nil
}

func goals(r *AttackResult) AttackGoals {
	g := AttackGoals{CatchUpRatio: GoalCatchUpRatio, SendRatio: GoalSendRatio, RSSMiB: GoalRSSMiB,
		Goroutines: GoalGoroutines, RestartSeconds: GoalRestartSeconds}
	g.CatchUpMet, g.SendMet = true, true
	for _, a := range r.Attacks {
		g.CatchUpMet = g.CatchUpMet && a.CatchUp.Ratio >= GoalCatchUpRatio
		g.SendMet = g.SendMet && a.Send.Ratio >= GoalSendRatio
	}
	g.RSSMet = r.PeakRSSMiB <= GoalRSSMiB
	g.GoroutinesMet = r.PeakGoroutines <= GoalGoroutines
	g.RestartMet = r.Restart.Seconds <= GoalRestartSeconds && (r.RestartAfter == nil || r.RestartAfter.Seconds <= GoalRestartSeconds)
	return g
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// seedHost fills the host's store: Mailboxes mailboxes of one 256-byte
// envelope and the members' established mailboxes, all stored two days
// ago. It returns the members' write keys.
func seedHost(ctx context.Context, dir string, p AttackParams) ([]ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	sp := attackHostParams(attackHostConfig{}).Store
	sp.GlobalQuotaBytes, sp.Admission = 0, store.AdmissionParams{}
	past := time.Now().Add(-48 * time.Hour)
	st, err := store.Open(dir, sp, store.WithLogger(quiet), store.WithClock(func() time.Time { return past }))
	if err != nil {
		return nil, fmt.Errorf("bench: seed the host's store: %w", err)
	}
	defer st.Close()
	keys := make([]ed25519.PrivateKey, p.Members)
	var envs []*envelope.Envelope
	for i := range keys {
		if keys[i], err = writeKey(); err != nil {
			return nil, err
		}
		e, err := makeEnvelopes(keys[i], p.History, 1024)
		if err != nil {
			return nil, err
		}
		envs = append(envs, e...)
	}
	// The other mailboxes: a key and an envelope each, on all cores,
	// stored as they are made (group commit from 64 writers).
	const writers = 64
	work := make(chan *envelope.Envelope, 1024)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				if _, err := st.Put(ctx, e); err != nil {
					select {
					case errc <- fmt.Errorf("bench: seed the host's store: %w", err):
					default:
					}
				}
			}
		}()
	}
	for _, e := range envs {
		work <- e
	}
	err = parallel(p.Mailboxes, func(int) error {
		k, err := writeKey()
		if err != nil {
			return err
		}
		e, err := makeEnvelope(k, 256)
		if err != nil {
			return err
		}
		select {
		case work <- e:
		case err := <-errc:
			return err
		}
		return nil
	})
	close(work)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if got := st.Usage().Mailboxes; got != int64(p.Mailboxes+p.Members) {
		return nil, fmt.Errorf("%w: seeded %d mailboxes, want %d", ErrMismatch, got, p.Mailboxes+p.Members)
	}
	return keys, st.Close()
}

// makeEnvelope seals one envelope of size bytes (random "ciphertext")
// under k.
func makeEnvelope(k ed25519.PrivateKey, size int) (*envelope.Envelope, error) {
	buf := make([]byte, envelope.NonceSize+size-envelope.Overhead)
	if _, err := crand.Read(buf); err != nil {
		return nil, err
	}
	e, err := envelope.Seal(k, buf[:envelope.NonceSize], buf[envelope.NonceSize:], 0)
	if err != nil {
		return nil, fmt.Errorf("bench: seal: %w", err)
	}
	return e, nil
}
