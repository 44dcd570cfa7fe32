package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/fetch"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/store"
)

// rawProtocol is the benchmark's raw-stream protocol: the client sends a
// uint64 byte count, the host sends that many bytes and closes. It is
// registered only on the benchmark's own host, for the limit.
const rawProtocol = "/meshnode/bench/raw/1.0.0"

// rawChunk is the size of the host's writes on the raw stream, and
// profileRuns the number of runs of each kind a CPU profile covers.
const (
	rawChunk    = 32 << 10
	profileRuns = 3
)

// FetchResult is the outcome of Fetch. Rates are in Units.
type FetchResult struct {
	Workload     string `json:"workload"` // "fetch"
	N            int    `json:"n"`
	EnvelopeSize int    `json:"envelope_size"`
	// ElapsedSeconds, Rate and Ratio are the member's catch-up (signature
	// verification off), as in Member.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Bytes is what one catch-up carried from host to client: page headers
	// and envelope frames.
	Bytes int64   `json:"bytes"`
	Units string  `json:"units"`
	Rate  float64 `json:"rate"`
	// Limit is the raw stream throughput for Bytes between the same hosts,
	// in envelopes per second (LimitDetail).
	Limit float64 `json:"limit"`
	Ratio float64 `json:"ratio"`
	// Member: client verification off, the run whose ratio is the median;
	// Host: on (a host that will store and re-serve what it fetches), one
	// catch-up.
	Member CatchUpRun `json:"member"`
	Host   CatchUpRun `json:"host"`
	// MemberSeconds are the durations of every member catch-up, in order.
	MemberSeconds []float64 `json:"member_runs_seconds"`
	// Ratios are the runs' ratios (raw transfer time over catch-up time of
	// each pair); Rate, Limit and Ratio are the medians of the runs, and
	// Spread is how the ratios spread.
	Ratios []float64 `json:"ratios"`
	Spread Spread    `json:"spread"`
	// Pages and PageSize (envelopes in a full page) of one catch-up.
	Pages       int            `json:"pages"`
	PageSize    int            `json:"page_size"`
	LimitDetail FetchLimit     `json:"limit_detail"`
	Breakdown   FetchBreakdown `json:"breakdown"`
	Machine     Machine        `json:"machine"`
	Dir         string         `json:"dir,omitempty"`
}

// CatchUpRun is one CatchUp of the whole mailbox.
type CatchUpRun struct {
	Verify         bool    `json:"verify"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Rate           float64 `json:"rate"`
	Ratio          float64 `json:"ratio"`
	MiBPerSecond   float64 `json:"mib_per_second"`
	// CPUSeconds is the process's CPU (host and client share it) during
	// the run, CPUUtilisation that over elapsed × cores.
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUUtilisation float64 `json:"cpu_utilisation"`
	// Fetched: every envelope arrived exactly once, in the host's arrival
	// order.
	Fetched int `json:"fetched"`
}

// FetchLimit is how Limit was measured.
type FetchLimit struct {
	Method       string  `json:"method"`
	RawSeconds   float64 `json:"raw_seconds"`
	RawBytes     int64   `json:"raw_bytes"`
	RawMiBPerSec float64 `json:"raw_mib_per_second"`
	// RawRuns are the durations of every raw transfer, in order; RawSeconds
	// is their median.
	RawRuns []float64 `json:"raw_runs_seconds"`
}

// FetchBreakdown measures the parts of a catch-up alone, in the same
// process: what the host's store, the client's decoding and the client's
// verification cost for the same envelopes, next to the raw transfer.
type FetchBreakdown struct {
	// StorePageSeconds: the host's store.Page calls for the same pages,
	// locally (what the fetch service reads).
	StorePageSeconds float64 `json:"store_page_seconds"`
	// DecodeSeconds: envelope.Decode of every envelope on one core (what
	// the client does per envelope without verification).
	DecodeSeconds float64 `json:"decode_seconds"`
	// VerifySeconds: the client's signature checks on all cores.
	VerifySeconds float64 `json:"verify_seconds"`
	// RawSeconds: the raw stream transfer of the same bytes.
	RawSeconds float64 `json:"raw_seconds"`
	// FillSeconds: storing the envelopes on the host beforehand (not part
	// of any rate).
	FillSeconds    float64 `json:"fill_seconds"`
	PrepareSeconds float64 `json:"prepare_seconds"`
}

// Fetch measures envelopes/second fetched from a remote host: N
// envelopes of Size bytes are stored in one mailbox on a host node
// (Badger on disk), and a member node on TCP loopback fetches all of them
// with the fetch protocol (fetch.Client.CatchUp, page by page, default
// page bounds), once with signature verification off and once on. Each
// catch-up must return every envelope exactly once in the host's arrival
// order, or Fetch fails with ErrMismatch. The limit is a raw libp2p
// stream carrying the same number of bytes between the same two hosts.
func Fetch(ctx context.Context, p FetchParams) (*FetchResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	dir, cleanup, err := workdir(p.Dir, "fetch-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	prep := time.Now()
	k, err := writeKey()
	if err != nil {
		return nil, err
	}
	envs, err := makeEnvelopes(k, p.N, p.Size)
	if err != nil {
		return nil, err
	}
	m := envs[0].Mailbox()
	prepared := time.Since(prep)

	hostDir, err := sub(dir, "host")
	if err != nil {
		return nil, err
	}
	host, err := startHost(ctx, hostDir, nil)
	if err != nil {
		return nil, err
	}
	defer host.Close()
	fill := time.Now()
	if err := fillStore(ctx, host.Store(), envs); err != nil {
		return nil, err
	}
	filled := time.Since(fill)
	host.Host().SetStreamHandler(rawProtocol, serveRaw)
	defer host.Host().RemoveStreamHandler(rawProtocol)

	client, err := startMember(ctx, host)
	if err != nil {
		return nil, err
	}
	defer client.Close()

	// The host's arrival order (fill was concurrent), read locally: the
	// order every catch-up must reproduce, and the store's share of the
	// work.
	fp := hostParams().Fetch
	want, pageTime, err := arrivalOrder(host.Store(), m, fp, envs)
	if err != nil {
		return nil, err
	}

	r := &FetchResult{Workload: "fetch", N: p.N, EnvelopeSize: p.Size, Units: Units, Machine: machine()}
	// The client's decoding and verification alone, measured before the
	// runs: envs is not used after this, so the benchmark's own copies of
	// the envelopes (N × Size bytes and N objects) are garbage before the
	// runs. The runs then see the heap of a host and a member, not of a
	// benchmark holding the whole workload, and each run's garbage
	// collections cost what they would in a node.
	b := &r.Breakdown
	if b.DecodeSeconds, b.VerifySeconds, err = decodeAndVerify(envs, fp.MaxEnvelopeSize); err != nil {
		return nil, err
	}
	// Runs pairs of a catch-up (C) and a raw transfer (R), alternating
	// which goes first (C R, R C, C R, ...), so both sides of each ratio
	// sample the same stretch of the machine's time: whatever else it is
	// doing meanwhile weighs on both alike. The medians count.
	var raws, rates, limits []float64
	var members []CatchUpRun
	for i := range p.Runs {
		var run CatchUpRun
		var d time.Duration
		for _, member := range []bool{i%2 == 0, i%2 == 1} {
			if member {
				var sh pageShape
				if run, sh, err = catchUp(ctx, client, host.ID(), m, fp, false, want); err != nil {
					return nil, err
				}
				r.Bytes, r.Pages, r.PageSize = sh.bytes, sh.pages, sh.full
				continue
			}
			if d, err = rawTransfer(ctx, client, host.ID(), r.Bytes); err != nil {
				return nil, err
			}
		}
		members = append(members, run)
		r.MemberSeconds = append(r.MemberSeconds, run.ElapsedSeconds)
		raws = append(raws, d.Seconds())
		rates, limits = append(rates, run.Rate), append(limits, rate(p.N, d))
		r.Ratios = append(r.Ratios, d.Seconds()/run.ElapsedSeconds)
	}
	r.Member = members[medianIndex(r.Ratios)]
	r.Spread = spreadOf(r.Ratios)
	if r.Host, _, err = catchUp(ctx, client, host.ID(), m, fp, true, want); err != nil {
		return nil, err
	}
	// Profiles come from runs of their own, after the measured ones, so
	// profiling does not slow what is measured.
	err = profile(p.CPUProfile, func() error {
		for range profileRuns {
			if _, _, err := catchUp(ctx, client, host.ID(), m, fp, false, want); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = profile(p.RawCPUProfile, func() error {
		for range profileRuns {
			if _, err := rawTransfer(ctx, client, host.ID(), r.Bytes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	raw := median(raws)
	r.Limit = median(limits)
	r.LimitDetail = FetchLimit{
		Method: fmt.Sprintf("limit = n / raw_seconds: one libp2p stream between the same two hosts (TCP loopback, Noise, yamux) "+
			"carrying the catch-up's bytes from host to client in 32 KiB writes; %d runs, each paired with a catch-up (C R, R C, ...), "+
			"each run after a runtime.GC; rate, limit and ratio are the medians of the runs", p.Runs),
		RawSeconds: raw, RawBytes: r.Bytes, RawRuns: raws,
		RawMiBPerSec: float64(r.Bytes) / (1 << 20) / raw,
	}
	for _, run := range []*CatchUpRun{&r.Member, &r.Host} {
		run.Ratio = ratio(run.Rate, r.Limit)
		run.MiBPerSecond = float64(r.Bytes) / (1 << 20) / run.ElapsedSeconds
	}
	r.ElapsedSeconds, r.Rate, r.Ratio = r.Member.ElapsedSeconds, median(rates), median(r.Ratios)

	b.StorePageSeconds, b.RawSeconds = pageTime.Seconds(), raw
	b.FillSeconds, b.PrepareSeconds = filled.Seconds(), prepared.Seconds()
	if p.Dir != "" {
		r.Dir = dir
	}
	return r, nil
}

// decodeAndVerify times envelope.Decode of every envelope on one core,
// and the signature checks of all of them on all cores.
func decodeAndVerify(envs []*envelope.Envelope, maxSize int) (decode, verify float64, err error) {
	start := time.Now()
	for _, e := range envs {
		if _, err := envelope.Decode(e.Bytes(), maxSize); err != nil {
			return 0, 0, fmt.Errorf("bench: decode: %w", err)
		}
	}
	decode = time.Since(start).Seconds()
	start = time.Now()
	if err := parallel(len(envs), func(i int) error { return envs[i].Verify() }); err != nil {
		return 0, 0, fmt.Errorf("bench: verify: %w", err)
	}
	return decode, time.Since(start).Seconds(), nil
}

// fillStore stores envs with many concurrent Puts (group commit) and
// checks they all went in.
func fillStore(ctx context.Context, st *store.Store, envs []*envelope.Envelope) error {
	if err := putMany(ctx, st, envs); err != nil {
		return err
	}
	if u := st.Usage(); u.Count != int64(len(envs)) {
		return fmt.Errorf("%w: host store holds %d of %d envelopes", ErrMismatch, u.Count, len(envs))
	}
	return nil
}

// putMany stores envs with 256 concurrent Puts (group commit).
func putMany(ctx context.Context, st *store.Store, envs []*envelope.Envelope) error {
	const writers = 256
	var next atomic.Int64
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(envs) {
					return
				}
				if _, err := st.Put(ctx, envs[i]); err != nil {
					errs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: fill host store: %w", err)
	}
	return nil
}

// arrivalOrder pages through m locally with the fetch service's page
// bounds and returns the envelope IDs in arrival order and the time the
// pages took. It checks that they are exactly envs, each once.
func arrivalOrder(st *store.Store, m envelope.MailboxID, fp fetch.Params, envs []*envelope.Envelope) ([]envelope.ID, time.Duration, error) {
	sent := make(map[envelope.ID]bool, len(envs))
	for _, e := range envs {
		sent[e.ID()] = true
	}
	order := make([]envelope.ID, 0, len(envs))
	var cur store.Cursor
	var took time.Duration
	for {
		start := time.Now()
		pg, err := st.Page(m, cur, fp.MaxPageCount, fp.MaxPageBytes)
		took += time.Since(start)
		if err != nil {
			return nil, 0, fmt.Errorf("bench: page host store: %w", err)
		}
		for _, e := range pg.Envelopes {
			if !sent[e.ID()] {
				return nil, 0, fmt.Errorf("%w: host store holds %s twice or never sent", ErrMismatch, e.ID().Short())
			}
			delete(sent, e.ID())
			order = append(order, e.ID())
		}
		cur = pg.Next
		if !pg.More {
			break
		}
	}
	if len(sent) != 0 {
		return nil, 0, fmt.Errorf("%w: %d envelopes missing from the host store", ErrMismatch, len(sent))
	}
	return order, took, nil
}

// pageShape is what one catch-up carried.
type pageShape struct {
	pages, full int
	bytes       int64
}

// catchUp fetches all of m from host p with a fresh client and checks the
// envelopes against want (order and count).
func catchUp(ctx context.Context, n *node.Node, p peer.ID, m envelope.MailboxID, fp fetch.Params, verify bool, want []envelope.ID) (CatchUpRun, pageShape, error) {
	run := CatchUpRun{Verify: verify}
	var shape pageShape
	c, err := fetch.NewClient(n.Host(), fp, verify)
	if err != nil {
		return run, shape, err
	}
	got := 0
	// Every run starts from a collected heap (as testing.B's runs do), so
	// no run pays for the garbage of the one before.
	runtime.GC()
	cpu0, start := cpuTime(), time.Now()
	_, total, err := c.CatchUp(ctx, p, m, nil, func(pg store.Page) error {
		shape.pages++
		shape.full = max(shape.full, len(pg.Envelopes))
		shape.bytes += headerBytes(len(pg.Next))
		for _, e := range pg.Envelopes {
			if got >= len(want) || e.ID() != want[got] {
				return fmt.Errorf("%w: envelope %d of the catch-up is %s, not the host's %d-th arrival", ErrMismatch, got, e.ID().Short(), got+1)
			}
			shape.bytes += frameSize(e.Size())
			got++
		}
		return nil
	})
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	if err != nil {
		return run, shape, fmt.Errorf("bench: catch-up (verify %v): %w", verify, err)
	}
	if total != len(want) || got != len(want) {
		return run, shape, fmt.Errorf("%w: caught up %d envelopes, the host holds %d", ErrMismatch, got, len(want))
	}
	run.ElapsedSeconds, run.Rate, run.Fetched = elapsed.Seconds(), rate(got, elapsed), got
	run.CPUSeconds, run.CPUUtilisation = cpu.Seconds(), utilisation(cpu, elapsed)
	return run, shape, nil
}

// headerBytes is the wire size of a successful page header frame of the
// streaming protocol (fetch.StreamProtocolID) with a next cursor of k
// bytes (fetch's doc.go: code, message length, more, count, body size,
// cursor length, cursor).
func headerBytes(k int) int64 { return frameSize(1 + 2 + 1 + 4 + 4 + 2 + k) }

// serveRaw answers the raw protocol: read a uint64 count, send that many
// bytes.
func serveRaw(s network.Stream) {
	var hdr [8]byte
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		_ = s.Reset()
		return
	}
	left := binary.BigEndian.Uint64(hdr[:])
	buf := make([]byte, rawChunk)
	for left > 0 {
		n := min(left, uint64(len(buf)))
		if _, err := s.Write(buf[:n]); err != nil {
			_ = s.Reset()
			return
		}
		left -= n
	}
	_ = s.Close()
}

// rawTransfer has the host send n bytes to the client on one stream and
// returns the time from opening the stream to the last byte.
func rawTransfer(ctx context.Context, n *node.Node, p peer.ID, bytes int64) (time.Duration, error) {
	runtime.GC() // as before a catch-up

	start := time.Now()
	s, err := n.Host().NewStream(ctx, p, rawProtocol)
	if err != nil {
		return 0, fmt.Errorf("bench: raw stream: %w", err)
	}
	defer s.Close()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(bytes))
	if _, err := s.Write(hdr[:]); err != nil {
		return 0, fmt.Errorf("bench: raw stream: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return 0, fmt.Errorf("bench: raw stream: %w", err)
	}
	buf := make([]byte, rawChunk)
	var got int64
	for {
		k, err := s.Read(buf)
		got += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("bench: raw stream after %d bytes: %w", got, err)
		}
	}
	took := time.Since(start)
	if got != bytes {
		return 0, fmt.Errorf("%w: raw stream carried %d of %d bytes", ErrMismatch, got, bytes)
	}
	return took, nil
}
