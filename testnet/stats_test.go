package testnet

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"bytes"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestEstimate(t *testing.T) {
	e := newEstimate([]float64{1, 2, 3, 4, 5})
	// sd = sqrt(2.5); t(0.975, 4) = 2.7764; half = 2.7764·1.5811/√5.
	if e.N != 5 || e.Mean != 3 || !near(e.SD, 1.5811, 1e-4) || !e.HasCI() || !near(*e.Half, 1.9632, 1e-3) ||
		!near(*e.Low, 3-1.9632, 1e-3) || !near(*e.High, 3+1.9632, 1e-3) {
		t.Fatalf("estimate %+v (half %v)", e, e.Half)
	}
	one := newEstimate([]float64{7})
	if one.Mean != 7 || one.HasCI() || one.SD != 0 {
		t.Fatalf("one value: %+v; want mean 7 and no interval", one)
	}
	if q := tQuantile(0.975, 1); !near(q, 12.706, 1e-3) {
		t.Fatalf("t(0.975, 1) = %v; want 12.706", q)
	}
}

func TestWelch(t *testing.T) {
	a := newEstimate([]float64{1, 2, 3, 4, 5})
	b := newEstimate([]float64{2, 3, 4, 5, 6})
	// Equal variances and sizes: t = 1, df = 8, p = 0.3466.
	w := welch(a, b)
	if !w.OK || w.Diff != 1 || !near(w.T, 1, 1e-9) || !near(w.DF, 8, 1e-9) || !near(w.P, 0.3466, 1e-3) {
		t.Fatalf("welch %+v", w)
	}
	if !near(w.Low, 1-2.306, 1e-3) || !near(w.High, 1+2.306, 1e-3) {
		t.Fatalf("interval [%v, %v]; want 1 ± 2.306", w.Low, w.High)
	}
	far := welch(a, newEstimate([]float64{101, 102, 103, 104, 105}))
	if far.P > 1e-6 || !strings.Contains(far.Significance(a, b), "***") {
		t.Fatalf("clearly different means: %+v %q", far, far.Significance(a, b))
	}
	if s := welch(a, newEstimate([]float64{3})).Significance(a, newEstimate([]float64{3})); s != "n/a (one run)" {
		t.Fatalf("one run: %q", s)
	}
	c := newEstimate([]float64{2, 2, 2})
	if s := welch(c, c).Significance(c, c); s != "no difference" {
		t.Fatalf("constant equal samples: %q", s)
	}
}

func TestDeriveSeed(t *testing.T) {
	if DeriveSeed(42, 0) != 42 {
		t.Fatal("run 0 must use the scenario's seed")
	}
	seen := map[uint64]bool{}
	for k := range 20 {
		s := DeriveSeed(42, k)
		if seen[s] {
			t.Fatalf("seed %d repeats at run %d", s, k)
		}
		seen[s] = true
		if DeriveSeed(42, k) != s {
			t.Fatal("not deterministic")
		}
	}
	if DeriveSeed(43, 1) == DeriveSeed(42, 1) {
		t.Fatal("derived seeds do not depend on the seed")
	}
}

// TestAggregate: the strategy's fields hold the means, stats every number
// with its interval, percentiles without samples are left out (not
// counted as 0), and the series get bands.
func TestAggregate(t *testing.T) {
	mk := func(delivery, p99 float64, catchups int, bytes []int64) StrategyResult {
		r := sampleResults().Strategies[0]
		r.DeliveryRatio, r.LatencyMs.P99 = delivery, p99
		r.CatchUpMs = Percentiles{}
		if catchups > 0 {
			r.CatchUpMs = Percentiles{N: catchups, P50: 100, P90: 100, P99: 100, Max: 100}
		}
		r.Baseline = &Baseline{DeliveryRatio: 1, LatencyMs: Percentiles{N: 5, P50: 40, P99: p99 / 2}}
		r.Series.LatencyCDF = [][2]float64{{p99 / 2, 0.5}, {p99, 1}}
		r.Series.Delivery = []float64{delivery, -1, 1}
		r.Series.BytesPerNode = bytes
		return r
	}
	runs := []RunResult{
		{Seed: 1, Strategies: []StrategyResult{mk(1, 60, 2, []int64{1024, 2048})}},
		{Seed: 2, Strategies: []StrategyResult{mk(0.9, 80, 0, []int64{2048, 4096})}},
		{Seed: 3, Strategies: []StrategyResult{mk(0.95, 100, 4, []int64{3072, 6144})}},
	}
	agg := aggregate(runs)
	if len(agg) != 1 {
		t.Fatalf("%d strategies", len(agg))
	}
	r := agg[0]
	if !near(r.DeliveryRatio, 0.95, 1e-9) || r.LatencyMs.P99 != 80 || r.Baseline.LatencyMs.P99 != 40 {
		t.Fatalf("means: delivery %v, p99 %v, baseline p99 %v", r.DeliveryRatio, r.LatencyMs.P99, r.Baseline.LatencyMs.P99)
	}
	p99 := r.Stats["latency_ms.p99"]
	if p99.N != 3 || !p99.HasCI() || !near(*p99.Half, tQuantile(0.975, 2)*20/math.Sqrt(3), 1e-9) {
		t.Fatalf("latency_ms.p99 %+v", p99)
	}
	if cu := r.Stats["catchup_ms.p50"]; cu.N != 2 || cu.Mean != 100 {
		t.Fatalf("catchup_ms.p50 %+v: want the two runs with catch-ups only", cu)
	}
	if n := r.Stats["catchup_ms.n"]; n.N != 3 || n.Mean != 2 {
		t.Fatalf("catchup_ms.n %+v: want every run, mean 2", n)
	}
	for _, k := range []string{"delivery_ratio", "baseline.delivery_ratio", "duplicates.stored_per_message", "storage.mean_bytes", "gaps.open", "bytes.member_mean"} {
		if _, ok := r.Stats[k]; !ok {
			t.Errorf("stats lack %q", k)
		}
	}
	b := r.Series.Bands
	if b == nil || b.LatencyCDF == nil || b.Delivery == nil || b.BytesPerNode == nil {
		t.Fatalf("bands %+v", b)
	}
	if !reflect.DeepEqual(b.Delivery.X, []float64{0, 2}) || !near(b.Delivery.Mean[0], 0.95, 1e-9) || b.Delivery.Low[0] >= 0.95 {
		t.Fatalf("delivery band %+v (the -1 second must be left out)", b.Delivery)
	}
	if !reflect.DeepEqual(b.BytesPerNode.X, []float64{1, 2}) || b.BytesPerNode.Mean[1] != 4 {
		t.Fatalf("bytes band %+v", b.BytesPerNode)
	}
	last := len(b.LatencyCDF.X) - 1
	if b.LatencyCDF.X[last] != 100 || b.LatencyCDF.Mean[last] != 1 || b.LatencyCDF.Mean[0] != 0.1667 || b.LatencyCDF.Low[0] != 0 {
		t.Fatalf("latency band %+v", b.LatencyCDF)
	}

	one := aggregate(runs[:1])[0]
	if one.DeliveryRatio != 1 || one.Series.Bands != nil || one.Stats["delivery_ratio"].HasCI() {
		t.Fatalf("one run: %+v", one)
	}
}

func TestCompareTable(t *testing.T) {
	mk := func(p99s ...float64) *Results {
		res := &Results{Scenario: DefaultScenario(), Mode: "memory", Runs: len(p99s)}
		for k, v := range p99s {
			r := sampleResults().Strategies[0]
			r.LatencyMs.P99 = v
			res.PerRun = append(res.PerRun, RunResult{Seed: DeriveSeed(1, k), Strategies: []StrategyResult{r}})
			res.Seeds = append(res.Seeds, DeriveSeed(1, k))
		}
		res.Strategies = aggregate(res.PerRun)
		return res
	}
	a, b := mk(30, 31, 32, 33, 34), mk(60, 61, 62, 63, 64)
	rows := Compare(a, b, false)
	var p99 *Comparison
	for i := range rows {
		if rows[i].Figure == "latency_ms.p99" {
			p99 = &rows[i]
		}
	}
	if p99 == nil || p99.Welch.Diff != 30 || !p99.Welch.OK || p99.Welch.P > 1e-6 {
		t.Fatalf("p99 comparison %+v", p99)
	}
	var out bytes.Buffer
	WriteComparison(&out, "a.json", "b.json", a, b, rows)
	for _, want := range []string{"latency_ms.p99", "32 ± 1.963", "62 ± 1.963", "+93.8%", "***", "delivery_ratio"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("comparison lacks %q:\n%s", want, out.String())
		}
	}
	if all := Compare(a, b, true); len(all) <= len(rows) {
		t.Errorf("--all compares %d figures, the headline %d", len(all), len(rows))
	}
}

// TestHubParams: a hosting node's baseline mesh holds every node of its
// largest group, and gossipsub accepts the parameters.
func TestHubParams(t *testing.T) {
	for _, n := range []int{2, 8, 13, 21, 101, 2001} {
		p := hubParams(n)
		if n-1 > p.Dhi || p.Dlo > p.D || p.D > p.Dhi || p.Dout >= p.Dlo || p.Dout >= p.D/2 || p.Dscore > p.Dhi {
			t.Errorf("n=%d: D=%d Dlo=%d Dhi=%d Dout=%d Dscore=%d", n, p.D, p.Dlo, p.Dhi, p.Dout, p.Dscore)
		}
		if n-1 > 6 && p.Dlo < n-1 {
			t.Errorf("n=%d: Dlo %d: the hub would not graft every member", n, p.Dlo)
		}
	}
}
