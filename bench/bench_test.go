package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshnode/meshnode/envelope"
	"github.com/meshnode/meshnode/relay"
	"github.com/meshnode/meshnode/store"
)

// These tests run the benchmarks at a small scale and check what they
// claim about correctness; they assert nothing about speed.

func TestIngestSmall(t *testing.T) {
	for _, perEnvelope := range []bool{false, true} {
		p := IngestParams{N: 301, Size: 700, Writers: 3, InFlight: 4, StreamPerEnvelope: perEnvelope, Dir: t.TempDir(), Runs: 3}
		testIngest(t, p)
	}
}

func testIngest(t *testing.T, p IngestParams) {
	r, err := Ingest(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]string{false: relay.SessionProtocolID, true: relay.ProtocolID}[p.StreamPerEnvelope]; r.Protocol != want {
		t.Fatalf("protocol %q, want %q", r.Protocol, want)
	}
	if r.Acknowledged != p.N || r.Stored != p.N || r.N != p.N || r.Bytes != int64(p.N*p.Size) {
		t.Fatalf("acknowledged %d, stored %d, n %d, bytes %d; want %d envelopes", r.Acknowledged, r.Stored, r.N, r.Bytes, p.N)
	}
	if r.Rate <= 0 || r.Limit <= 0 || r.Ratio <= 0 || r.Units != Units {
		t.Fatalf("rate %v, limit %v, ratio %v", r.Rate, r.Limit, r.Ratio)
	}
	if len(r.Runs) != p.Runs || r.Spread.Runs != p.Runs || r.Spread.Median != r.Ratio ||
		r.Spread.Min > r.Ratio || r.Spread.Max < r.Ratio {
		t.Fatalf("runs %+v, spread %+v, ratio %v: want %d runs around the median", r.Runs, r.Spread, r.Ratio, p.Runs)
	}
	for _, run := range r.Runs {
		if run.Ratio != run.Rate/run.Limit {
			t.Fatalf("run %+v: ratio is not rate/limit", run)
		}
	}
	if r.Breakdown.Commits == 0 || r.Breakdown.MeanBatch < 1 {
		t.Fatalf("no group commits recorded: %+v", r.Breakdown)
	}
	if len(r.NetworkRuns) != p.Runs || !slices.Contains(r.NetworkRuns, r.ElapsedSeconds) {
		t.Fatalf("network runs %v, elapsed %v: want %d runs, one of them reported", r.NetworkRuns, r.ElapsedSeconds, p.Runs)
	}
	// Independently of Ingest's own check: each run's host store, reopened
	// from the directory it was left in, holds exactly N envelopes.
	for i := range p.Runs {
		st, err := store.Open(filepath.Join(r.Dir, fmt.Sprintf("host-%d", i+1)), storeParams(), store.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		u := st.Usage()
		st.Close()
		if u.Count != int64(p.N) || u.Bytes != int64(p.N*p.Size) {
			t.Fatalf("host store of run %d holds %d envelopes, %d bytes", i+1, u.Count, u.Bytes)
		}
	}
}

func TestFetchSmall(t *testing.T) {
	p := FetchParams{N: 2345, Size: 1024, Runs: 4}
	r, err := Fetch(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Member.Fetched != p.N || r.Host.Fetched != p.N || r.Member.Verify || !r.Host.Verify {
		t.Fatalf("member %+v, host %+v", r.Member, r.Host)
	}
	if len(r.LimitDetail.RawRuns) != p.Runs || r.LimitDetail.RawSeconds != median(r.LimitDetail.RawRuns) {
		t.Fatalf("raw runs %v, raw seconds %v: want %d runs, the median counted", r.LimitDetail.RawRuns, r.LimitDetail.RawSeconds, p.Runs)
	}
	if len(r.MemberSeconds) != p.Runs || !slices.Contains(r.MemberSeconds, r.Member.ElapsedSeconds) {
		t.Fatalf("member runs %v, elapsed %v: want %d runs, one of them reported", r.MemberSeconds, r.Member.ElapsedSeconds, p.Runs)
	}
	if len(r.Ratios) != p.Runs || r.Ratio != median(r.Ratios) || r.Spread.Runs != p.Runs {
		t.Fatalf("ratios %v, ratio %v, spread %+v", r.Ratios, r.Ratio, r.Spread)
	}
	if r.Pages != 3 || r.PageSize != 1000 {
		t.Fatalf("%d pages of up to %d, want 3 of up to 1000 (fetch's default page bound)", r.Pages, r.PageSize)
	}
	if min := int64(p.N * (p.Size + 2)); r.Bytes < min {
		t.Fatalf("catch-up carried %d bytes, less than the %d of the envelope frames", r.Bytes, min)
	}
	if r.Rate <= 0 || r.Limit <= 0 || r.Ratio <= 0 || r.Member.Ratio != r.Member.Rate/r.Limit {
		t.Fatalf("rate %v, limit %v, ratio %v", r.Rate, r.Limit, r.Ratio)
	}
}

func TestCheckStoredDetectsLossAndExtras(t *testing.T) {
	p := store.InMemoryParams()
	p.RetentionInterval = 0
	k, err := writeKey()
	if err != nil {
		t.Fatal(err)
	}
	envs, err := makeEnvelopes(k, 10, 500)
	if err != nil {
		t.Fatal(err)
	}
	open := func(put []*envelope.Envelope) *store.Store {
		st, err := store.Open("", p, store.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		for _, e := range put {
			if _, err := st.Put(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	tests := []struct {
		name   string
		stored []*envelope.Envelope
		sent   [][]*envelope.Envelope
		want   error
	}{
		{"all there", envs, [][]*envelope.Envelope{envs[:4], envs[4:]}, nil},
		{"one lost", envs[1:], [][]*envelope.Envelope{envs}, ErrMismatch},
		{"one extra", envs, [][]*envelope.Envelope{envs[1:]}, ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkStored(open(tc.stored), tc.sent); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// catchUp refuses a catch-up that does not reproduce the host's order.
func TestCatchUpDetectsReorderingAndLoss(t *testing.T) {
	ctx := context.Background()
	host, err := startHost(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	client, err := startMember(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	k, err := writeKey()
	if err != nil {
		t.Fatal(err)
	}
	envs, err := makeEnvelopes(k, 20, 300)
	if err != nil {
		t.Fatal(err)
	}
	if err := fillStore(ctx, host.Store(), envs); err != nil {
		t.Fatal(err)
	}
	fp := hostParams().Fetch
	fp.MaxPageCount = 7
	m := envs[0].Mailbox()
	want, _, err := arrivalOrder(host.Store(), m, fp, envs)
	if err != nil {
		t.Fatal(err)
	}
	swapped := append([]envelope.ID(nil), want...)
	swapped[9], swapped[10] = swapped[10], swapped[9]
	tests := []struct {
		name string
		want []envelope.ID
		err  error
	}{
		{"host order", want, nil},
		{"two swapped", swapped, ErrMismatch},
		{"one more expected", append(append([]envelope.ID(nil), want...), want[0]), ErrMismatch},
		{"one fewer expected", want[:19], ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run, shape, err := catchUp(ctx, client, host.ID(), m, fp, true, tc.want)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if err == nil && (run.Fetched != 20 || shape.pages != 3 || shape.full != 7) {
				t.Fatalf("fetched %d in %d pages of up to %d", run.Fetched, shape.pages, shape.full)
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	good := DefaultIngestParams()
	tests := []struct {
		name string
		p    func(*IngestParams)
		ok   bool
	}{
		{"default", func(*IngestParams) {}, true},
		{"zero n", func(p *IngestParams) { p.N = 0 }, false},
		{"fewer envelopes than writers", func(p *IngestParams) { p.N, p.Writers = 3, 4 }, false},
		{"tiny envelope", func(p *IngestParams) { p.Size = envelope.Overhead }, false},
		{"smallest envelope", func(p *IngestParams) { p.Size = MinSize }, true},
		{"huge envelope", func(p *IngestParams) { p.Size = envelope.DefaultMaxSize + 1 }, false},
		{"no writers", func(p *IngestParams) { p.Writers = 0 }, false},
		{"too many in flight", func(p *IngestParams) { p.InFlight = MaxInFlight + 1 }, false},
		{"no runs", func(p *IngestParams) { p.Runs = 0 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			tc.p(&p)
			if err := p.validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidParams)) {
				t.Fatalf("validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if err := (FetchParams{N: 0, Size: 1024, Runs: 1}).validate(); !errors.Is(err, ErrInvalidParams) {
		t.Fatalf("fetch n=0: %v", err)
	}
	if err := DefaultFetchParams().validate(); err != nil {
		t.Fatal(err)
	}
}

func TestMedianAndSpread(t *testing.T) {
	xs := []float64{0.7, 0.9, 0.5, 0.8, 0.6}
	if m := median(xs); m != 0.7 {
		t.Fatalf("median %v", m)
	}
	if i := medianIndex(xs); xs[i] != 0.7 {
		t.Fatalf("median index %d", i)
	}
	if m := median([]float64{1, 3, 2, 4}); m != 2.5 {
		t.Fatalf("even median %v", m)
	}
	sp := spreadOf(xs)
	if sp.Min != 0.5 || sp.Max != 0.9 || sp.Median != 0.7 || sp.Runs != 5 || sp.IQR < 0.19 || sp.IQR > 0.21 {
		t.Fatalf("spread %+v", sp)
	}
}
