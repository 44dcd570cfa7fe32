package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// Names of the store's histograms read for the breakdown.
const (
	metricBatch  = "meshnode_store_batch_size"
	metricCommit = "meshnode_store_commit_seconds"
)

// IngestResult is the outcome of Ingest. Rates are in Units.
type IngestResult struct {
	Workload          string `json:"workload"` // "ingest"
	N                 int    `json:"n"`
	EnvelopeSize      int    `json:"envelope_size"`
	Writers           int    `json:"writers"`
	InFlightPerWriter int    `json:"inflight_per_writer"`
	// Protocol is the direct relay protocol the writers used: a session
	// per writer (relay.SessionProtocolID, all its requests in flight
	// pipelined on one stream) or a stream per envelope (relay.ProtocolID,
	// relay.Send).
	Protocol       string  `json:"protocol"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Bytes is the envelope bytes acknowledged.
	Bytes int64  `json:"bytes"`
	Units string `json:"units"`
	// Rate is envelopes acknowledged per second by the remote host.
	Rate float64 `json:"rate"`
	// Limit is what the host's own per-envelope work allows (LimitDetail).
	Limit float64 `json:"limit"`
	Ratio float64 `json:"ratio"`
	// MiBPerSecond is Rate in envelope payload.
	MiBPerSecond float64 `json:"mib_per_second"`
	// Acknowledged and Stored: every acknowledged envelope was found in
	// the host's store after it was closed and reopened from disk.
	Acknowledged int     `json:"acknowledged"`
	Stored       int     `json:"stored"`
	Latency      Latency `json:"latency"`
	// NetworkRuns are the durations of every network run, in order.
	NetworkRuns []float64 `json:"network_runs_seconds"`
	// Runs are the paired runs: each measures the limit, then the network
	// run. Rate, Limit and Ratio are the medians of theirs; ElapsedSeconds,
	// Latency, LimitDetail and Breakdown are those of the run whose ratio
	// is the median. Spread is how the runs' ratios spread.
	Runs        []IngestRun     `json:"runs"`
	Spread      Spread          `json:"spread"`
	LimitDetail IngestLimit     `json:"limit_detail"`
	Breakdown   IngestBreakdown `json:"breakdown"`
	Machine     Machine         `json:"machine"`
	// Dir is where the stores were left (only with IngestParams.Dir).
	Dir string `json:"dir,omitempty"`
}

// IngestRun is one paired run: the limit measured, then the network run.
type IngestRun struct {
	Rate           float64 `json:"rate"`
	Limit          float64 `json:"limit"`
	Ratio          float64 `json:"ratio"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	VerifySeconds  float64 `json:"verify_seconds"`
	StoreSeconds   float64 `json:"store_seconds"`
}

// IngestLimit is how Limit was measured: the host's two unavoidable
// per-envelope costs, each measured alone on the same envelopes in the
// same process, right before the network run it is paired with, added
// up:
//
//	limit = n / (verify_seconds + store_seconds)
type IngestLimit struct {
	Method string `json:"method"`
	// Verify: envelope.Open (decode, ID and mailbox hashes, Ed25519
	// verification) of every envelope on all cores.
	VerifySeconds float64 `json:"verify_seconds"`
	VerifyRate    float64 `json:"verify_rate"`
	// Store: store.Put of every envelope into a fresh on-disk store with
	// the host's parameters (group commit, fsync before each answer), from
	// StoreConcurrency local goroutines: as many as the network run has
	// requests outstanding.
	StoreSeconds     float64 `json:"store_seconds"`
	StoreRate        float64 `json:"store_rate"`
	StoreConcurrency int     `json:"store_concurrency"`
	StoreMeanBatch   float64 `json:"store_mean_batch"`
	// LocalPipelineRate: Open then Put per envelope from StoreConcurrency
	// goroutines into another fresh store: the host's work with no
	// network, verification overlapping the fsyncs. For comparison only.
	LocalPipelineRate  float64 `json:"local_pipeline_rate"`
	LocalPipelineRatio float64 `json:"local_pipeline_ratio"`
}

// IngestBreakdown says where the network run's time went.
type IngestBreakdown struct {
	// Group commits of the host store during the run, their mean size, and
	// the time spent in Badger's Commit (write + fsync), in total and per
	// commit. CommitBusy is that total over the elapsed time: near 1 means
	// the store's single writer was the bottleneck.
	Commits        uint64  `json:"commits"`
	MeanBatch      float64 `json:"mean_batch"`
	CommitSeconds  float64 `json:"commit_seconds"`
	CommitMeanMs   float64 `json:"commit_mean_ms"`
	CommitBusy     float64 `json:"commit_busy"`
	VerifyUsPerEnv float64 `json:"verify_cpu_us_per_envelope"`
	// CPUSeconds is the CPU the process (host and writers: they share it)
	// used during the run; CPUUtilisation is that over elapsed × cores;
	// CPUUsPerEnvelope the CPU per envelope, of which VerifyUsPerEnv is
	// signature checking (measured alone).
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUUtilisation   float64 `json:"cpu_utilisation"`
	CPUUsPerEnvelope float64 `json:"cpu_us_per_envelope"`
	// Envelope generation (signing) before the run; not measured time.
	PrepareSeconds float64 `json:"prepare_seconds"`
}

// Ingest measures envelopes/second acknowledged by a remote host: Writers
// member nodes, each its own libp2p host on TCP loopback, send N envelopes
// of Size bytes with the direct relay protocol (node.Remote, relay.Send),
// each keeping InFlight requests outstanding, to one host node whose store
// is Badger on disk. The host acknowledges an envelope only after it has
// verified it and its group commit is fsynced. Afterwards every
// acknowledged envelope must be in the store reopened from disk, or
// Ingest fails with ErrMismatch. Then it measures the limit (IngestLimit).
func Ingest(ctx context.Context, p IngestParams) (*IngestResult, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	dir, cleanup, err := workdir(p.Dir, "ingest-")
	if err != nil {
		return nil, err
	}
	defer cleanup()

	prep := time.Now()
	envs := make([][]*envelope.Envelope, p.Writers)
	for w := range envs {
		k, err := writeKey()
		if err != nil {
			return nil, err
		}
		// Writer w sends N/Writers envelopes, the first N%Writers one more.
		n := p.N / p.Writers
		if w < p.N%p.Writers {
			n++
		}
		if envs[w], err = makeEnvelopes(k, n, p.Size); err != nil {
			return nil, err
		}
	}
	prepared := time.Since(prep)

	var all []*envelope.Envelope
	for _, e := range envs {
		all = append(all, e...)
	}
	conc := p.Writers * p.InFlight

	// Runs pairs: the limit, then the network run into a fresh host
	// store, so both sides of each ratio sample the same stretch of the
	// machine's time. The medians count, and the spread is reported.
	type pair struct {
		run            *ingestRun
		verify, put    time.Duration
		batch, ratio   float64
		rate, limitEnv float64
	}
	pairs := make([]pair, 0, p.Runs)
	var runs []float64
	err = profile(p.CPUProfile, func() error {
		for i := range p.Runs {
			v, put, batch, err := limitRound(ctx, dir, fmt.Sprintf("limit-%d", i+1), all, conc)
			if err != nil {
				return err
			}
			hostDir, err := sub(dir, fmt.Sprintf("host-%d", i+1))
			if err != nil {
				return err
			}
			r, err := ingestNetwork(ctx, hostDir, envs, p.InFlight, p.StreamPerEnvelope)
			if err != nil {
				return err
			}
			if err := checkStoredOnDisk(hostDir, envs); err != nil {
				return err
			}
			runs = append(runs, r.elapsed.Seconds())
			pr := pair{run: r, verify: v, put: put, batch: batch, rate: rate(p.N, r.elapsed)}
			pr.limitEnv = float64(p.N) / (v + put).Seconds()
			pr.ratio = ratio(pr.rate, pr.limitEnv)
			pairs = append(pairs, pr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ratios := make([]float64, len(pairs))
	for i := range pairs {
		ratios[i] = pairs[i].ratio
	}
	mid := pairs[medianIndex(ratios)]
	run := mid.run
	lim := IngestLimit{Method: limitMethod, StoreConcurrency: conc}
	lim.VerifySeconds, lim.VerifyRate = mid.verify.Seconds(), rate(p.N, mid.verify)
	lim.StoreSeconds, lim.StoreRate, lim.StoreMeanBatch = mid.put.Seconds(), rate(p.N, mid.put), mid.batch
	d, _, err := putAll(ctx, dir, "limit-pipeline", all, conc, true)
	if err != nil {
		return nil, err
	}
	lim.LocalPipelineRate = rate(p.N, d)

	r := &IngestResult{
		Workload: "ingest", N: p.N, EnvelopeSize: p.Size, Writers: p.Writers, InFlightPerWriter: p.InFlight,
		Protocol:       relay.SessionProtocolID,
		ElapsedSeconds: run.elapsed.Seconds(),
		Bytes:          int64(p.N) * int64(p.Size),
		Units:          Units,
		Acknowledged:   run.acked,
		Stored:         p.N,
		Latency:        latencyOf(run.latencies),
		LimitDetail:    lim,
		NetworkRuns:    runs,
		Machine:        machine(),
	}
	var rates, limits []float64
	for _, pr := range pairs {
		rates, limits = append(rates, pr.rate), append(limits, pr.limitEnv)
		r.Runs = append(r.Runs, IngestRun{
			Rate: pr.rate, Limit: pr.limitEnv, Ratio: pr.ratio, ElapsedSeconds: pr.run.elapsed.Seconds(),
			VerifySeconds: pr.verify.Seconds(), StoreSeconds: pr.put.Seconds(),
		})
	}
	r.Rate, r.Limit, r.Ratio = median(rates), median(limits), median(ratios)
	r.Spread = spreadOf(ratios)
	r.MiBPerSecond = r.Rate * float64(p.Size) / (1 << 20)
	r.LimitDetail.LocalPipelineRatio = ratio(r.Rate, lim.LocalPipelineRate)
	b := &r.Breakdown
	b.Commits, b.MeanBatch = run.commits, run.batchSum/float64(max(run.commits, 1))
	b.CommitSeconds = run.commitSum
	b.CommitMeanMs = 1000 * run.commitSum / float64(max(run.commits, 1))
	b.CommitBusy = run.commitSum / run.elapsed.Seconds()
	b.VerifyUsPerEnv = lim.VerifySeconds * float64(machine().GOMAXPROCS) * 1e6 / float64(p.N)
	b.CPUSeconds = run.cpu.Seconds()
	b.CPUUtilisation = utilisation(run.cpu, run.elapsed)
	b.CPUUsPerEnvelope = micros(run.cpu, p.N)
	b.PrepareSeconds = prepared.Seconds()
	if p.StreamPerEnvelope {
		r.Protocol = relay.ProtocolID
	}
	if p.Dir != "" {
		r.Dir = dir
	}
	return r, nil
}

// ingestRun is what the network run measured.
type ingestRun struct {
	elapsed, cpu        time.Duration
	acked               int
	latencies           []time.Duration
	commits             uint64
	batchSum, commitSum float64
}

// ingestNetwork starts the host (store in dir) and one member node per
// writer, and has writer w relay envs[w] with inflight requests
// outstanding. It fails on the first refused envelope.
func ingestNetwork(ctx context.Context, dir string, envs [][]*envelope.Envelope, inflight int, perEnvelope bool) (*ingestRun, error) {
	reg := prometheus.NewRegistry()
	host, err := startHost(ctx, dir, reg)
	if err != nil {
		return nil, err
	}
	defer host.Close()
	writers := make([]*node.Node, len(envs))
	for w := range writers {
		if writers[w], err = startMember(ctx, host); err != nil {
			return nil, err
		}
		defer writers[w].Close()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		failOnce sync.Once
		failErr  error
		acked    atomic.Int64
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		failOnce.Do(func() { failErr = err; cancel() })
	}
	lat := make([][]time.Duration, len(envs)*inflight)
	cpu0, start := cpuTime(), time.Now()
	for w := range envs {
		mine := envs[w]
		// One pipelined session per writer, shared by its inflight
		// senders, or a stream per envelope.
		send := writers[w].Remote(host.ID()).RelayMessageToGroup
		if !perEnvelope {
			s := relay.NewSession(writers[w].Host(), host.ID(), 0)
			defer s.Close()
			send = s.Send
		}
		var next atomic.Int64
		for j := range inflight {
			slot := w*inflight + j
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= len(mine) {
						return
					}
					e := mine[i]
					t := time.Now()
					if err := send(ctx, e.Mailbox(), e); err != nil {
						fail(fmt.Errorf("bench: writer %d, envelope %d: %w", w, i, err))
						return
					}
					lat[slot] = append(lat[slot], time.Since(t))
					acked.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	run := &ingestRun{elapsed: time.Since(start), cpu: cpuTime() - cpu0, acked: int(acked.Load())}
	if failErr != nil {
		return nil, failErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, l := range lat {
		run.latencies = append(run.latencies, l...)
	}
	run.batchSum, run.commits = histogram(reg, metricBatch)
	run.commitSum, _ = histogram(reg, metricCommit)
	return run, nil
}

// checkStoredOnDisk reopens the store in dir (closed by the host) and
// checks that it holds exactly the envelopes of envs, each once.
func checkStoredOnDisk(dir string, envs [][]*envelope.Envelope) (err error) {
	st, err := store.Open(dir, storeParams(), store.WithLogger(quiet))
	if err != nil {
		return fmt.Errorf("bench: reopen host store: %w", err)
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	return checkStored(st, envs)
}

// checkStored checks that st holds every envelope of envs and nothing else.
func checkStored(st *store.Store, envs [][]*envelope.Envelope) error {
	total := 0
	for w, es := range envs {
		total += len(es)
		for i, e := range es {
			ok, err := st.Has(e.Mailbox(), e.ID())
			if err != nil {
				return fmt.Errorf("bench: look up envelope %d of writer %d: %w", i, w, err)
			}
			if !ok {
				return fmt.Errorf("%w: envelope %d of writer %d (%s) was acknowledged but is not in the store", ErrMismatch, i, w, e.ID().Short())
			}
		}
	}
	if u := st.Usage(); u.Count != int64(total) {
		return fmt.Errorf("%w: the store holds %d envelopes, %d were sent", ErrMismatch, u.Count, total)
	}
	return nil
}

// limitMethod says how IngestResult.Limit is computed.
const limitMethod = "limit = n / (verify_seconds + store_seconds): envelope.Open of every envelope on all cores, " +
	"and store.Put of every envelope into a fresh on-disk store (host parameters, fsync per group commit) " +
	"from store_concurrency goroutines; measured right before each network run; rate, limit and ratio are the medians of the runs"

// limitRound measures the host's per-envelope work without the network
// once (see IngestLimit), into a fresh store dir/name.
func limitRound(ctx context.Context, dir, name string, envs []*envelope.Envelope, conc int) (verify, put time.Duration, batch float64, err error) {
	start := time.Now()
	err = parallel(len(envs), func(i int) error {
		m := envs[i].Mailbox()
		_, err := envelope.Open(envs[i].Bytes(), 0, &m)
		return err
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("bench: verify: %w", err)
	}
	verify = time.Since(start)
	put, batch, err = putAll(ctx, dir, name, envs, conc, false)
	return verify, put, batch, err
}

// putAll stores envs into a fresh store in dir/name from conc goroutines
// (with open, each envelope is first re-opened from its bytes, as the
// host does) and returns the time taken and the mean group-commit size.
func putAll(ctx context.Context, dir, name string, envs []*envelope.Envelope, conc int, open bool) (time.Duration, float64, error) {
	d, err := sub(dir, name)
	if err != nil {
		return 0, 0, err
	}
	reg := prometheus.NewRegistry()
	st, err := store.Open(d, storeParams(), store.WithLogger(quiet), store.WithRegisterer(reg))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: open store: %w", err)
	}
	defer st.Close()
	var next atomic.Int64
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(envs) {
					return
				}
				e := envs[i]
				if open {
					m := e.Mailbox()
					var err error
					if e, err = envelope.Open(e.Bytes(), 0, &m); err != nil {
						errs[g] = err
						return
					}
				}
				if _, err := st.Put(ctx, e); err != nil {
					errs[g] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, fmt.Errorf("bench: store %s: %w", name, err)
	}
	if u := st.Usage(); u.Count != int64(len(envs)) {
		return 0, 0, fmt.Errorf("%w: %s store holds %d of %d envelopes", ErrMismatch, name, u.Count, len(envs))
	}
	sum, count := histogram(reg, metricBatch)
	return elapsed, sum / float64(max(count, 1)), nil
}
