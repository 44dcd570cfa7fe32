package testnet

import (
	"encoding/json"
	"math"
	"reflect"
	"sort"
	"strings"
)

// Repetitions. A scenario run N times (WithRuns) uses N seeds derived
// from its own (DeriveSeed: the first is the scenario's seed itself), so
// each run draws its own groups, churn, traffic and partitions. Every
// figure of a strategy — each number of StrategyResult, named by its JSON
// path ("latency_ms.p99", "baseline.delivery_ratio") — is then summarised
// over the runs as an Estimate (mean and Student-t 95% confidence
// interval) in the strategy's "stats"; the strategy's own fields hold the
// means, and the plots' series get bands (the mean and the 95% interval
// at each point). A percentile of a run without samples (no catch-up in
// that run, say) is left out of its estimate rather than counted as 0.

// streamRuns is the random stream the runs' seeds are drawn from.
const streamRuns uint64 = 100

// DeriveSeed is the seed of run k of a scenario whose seed is seed: seed
// itself for k = 0, then the k-th draw of a PCG stream of it.
func DeriveSeed(seed uint64, k int) uint64 {
	if k == 0 {
		return seed
	}
	r := rngFor(seed, streamRuns)
	var v uint64
	for range k {
		v = r.Uint64()
	}
	return v
}

// numbers calls fn for every number of v (a struct), by JSON path. With
// skipEmpty, the fields of a Percentiles without samples are left out
// (except its n).
func numbers(v reflect.Value, prefix string, skipEmpty bool, fn func(path string, f reflect.Value)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			numbers(v.Elem(), prefix, skipEmpty, fn)
		}
	case reflect.Struct:
		empty := skipEmpty && v.Type() == reflect.TypeFor[Percentiles]() && v.Interface().(Percentiles).N == 0
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" || name == "series" || name == "stats" {
				continue
			}
			if empty && name != "n" {
				continue
			}
			numbers(v.Field(i), prefix+name+".", skipEmpty, fn)
		}
	case reflect.Float64, reflect.Int, reflect.Int64:
		fn(strings.TrimSuffix(prefix, "."), v)
	}
}

func numberOf(v reflect.Value) float64 {
	if v.Kind() == reflect.Float64 {
		return v.Float()
	}
	return float64(v.Int())
}

// allocate makes every nil pointer of v (a struct) under which some path
// of want lies point to a zero value, so that means can be set there.
func allocate(v reflect.Value, prefix string, want map[string]Estimate) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || name == "series" || name == "stats" {
			continue
		}
		f, p := v.Field(i), prefix+name+"."
		if f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct {
			if f.IsNil() {
				for k := range want {
					if strings.HasPrefix(k, p) {
						f.Set(reflect.New(f.Type().Elem()))
						break
					}
				}
			}
			if !f.IsNil() {
				allocate(f.Elem(), p, want)
			}
		} else if f.Kind() == reflect.Struct {
			allocate(f, p, want)
		}
	}
}

// aggregate summarises each strategy over the runs: its fields hold the
// means, Stats every figure's estimate, Series the first run's series and
// (with several runs) the bands.
func aggregate(runs []RunResult) []StrategyResult {
	if len(runs) == 0 {
		return nil
	}
	var out []StrategyResult
	for si, first := range runs[0].Strategies {
		var all []StrategyResult
		for _, r := range runs {
			if si < len(r.Strategies) && r.Strategies[si].Strategy == first.Strategy {
				all = append(all, r.Strategies[si])
			}
		}
		values := map[string][]float64{}
		for i := range all {
			env := runEnv{notMeasured: all[i].NotMeasured}
			numbers(reflect.ValueOf(&all[i]).Elem(), "", true, func(path string, f reflect.Value) {
				if env.measured(path) {
					values[path] = append(values[path], numberOf(f))
				}
			})
		}
		stats := make(map[string]Estimate, len(values))
		for k, v := range values {
			stats[k] = newEstimate(v)
		}
		agg := deepCopy(first)
		allocate(reflect.ValueOf(&agg).Elem(), "", stats)
		numbers(reflect.ValueOf(&agg).Elem(), "", false, func(path string, f reflect.Value) {
			e, ok := stats[path]
			if !ok || len(all) == 1 {
				return
			}
			if f.Kind() == reflect.Float64 {
				f.SetFloat(round4(e.Mean))
			} else {
				f.SetInt(int64(math.Round(e.Mean)))
			}
		})
		agg.Stats = stats
		if len(all) > 1 {
			agg.Series.Bands = bands(all)
		}
		out = append(out, agg)
	}
	return out
}

func deepCopy(r StrategyResult) StrategyResult {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // StrategyResult always marshals
	}
	var c StrategyResult
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}

// Band is a series over several runs: at each X, the mean of the runs'
// values and its 95% confidence interval (Low = High = Mean with one
// value).
type Band struct {
	X    []float64 `json:"x"`
	Mean []float64 `json:"mean"`
	Low  []float64 `json:"low"`
	High []float64 `json:"high"`
	// Runs is the number of runs with data.
	Runs int `json:"runs"`
}

// SeriesBands are the plots' series over several runs.
type SeriesBands struct {
	// CDFs: X is milliseconds (log-spaced), the values fractions.
	LatencyCDF    *Band `json:"latency_cdf,omitempty"`
	BaselineCDF   *Band `json:"baseline_cdf,omitempty"`
	CatchUpCDF    *Band `json:"catchup_cdf,omitempty"`
	KeyCatchUpCDF *Band `json:"key_catchup_cdf,omitempty"`
	// Delivery and BaselineDelivery: X is the second of sending.
	Delivery         *Band `json:"delivery,omitempty"`
	BaselineDelivery *Band `json:"baseline_delivery,omitempty"`
	// BytesPerNode: X is the node's rank (1 = fewest bytes), values KiB.
	BytesPerNode *Band `json:"bytes_per_node,omitempty"`
}

// bandPoints is the number of X values of a CDF band.
const bandPoints = 80

func bands(all []StrategyResult) *SeriesBands {
	cdfs := func(get func(*StrategyResult) [][2]float64) *Band {
		var series [][][2]float64
		for i := range all {
			if c := get(&all[i]); len(c) > 0 {
				series = append(series, c)
			}
		}
		return cdfBand(series)
	}
	perIndex := func(get func(*StrategyResult) []float64) *Band {
		var series [][]float64
		for i := range all {
			if v := get(&all[i]); len(v) > 0 {
				series = append(series, v)
			}
		}
		return indexBand(series)
	}
	b := &SeriesBands{
		LatencyCDF:    cdfs(func(r *StrategyResult) [][2]float64 { return r.Series.LatencyCDF }),
		BaselineCDF:   cdfs(func(r *StrategyResult) [][2]float64 { return r.Series.BaselineCDF }),
		CatchUpCDF:    cdfs(func(r *StrategyResult) [][2]float64 { return r.Series.CatchUpCDF }),
		KeyCatchUpCDF: cdfs(func(r *StrategyResult) [][2]float64 { return r.Series.KeyCatchUpCDF }),
		Delivery:      perIndex(func(r *StrategyResult) []float64 { return r.Series.Delivery }),
		BaselineDelivery: perIndex(func(r *StrategyResult) []float64 {
			return r.Series.BaselineDelivery
		}),
		BytesPerNode: perIndex(func(r *StrategyResult) []float64 {
			out := make([]float64, len(r.Series.BytesPerNode))
			for i, v := range r.Series.BytesPerNode {
				out[i] = float64(v) / 1024
			}
			return out
		}),
	}
	for _, f := range []*Band{b.LatencyCDF, b.BaselineCDF, b.CatchUpCDF, b.KeyCatchUpCDF, b.Delivery, b.BaselineDelivery} {
		f.clamp(0, 1)
	}
	if b.BytesPerNode != nil {
		for i := range b.BytesPerNode.X {
			b.BytesPerNode.X[i]++
		}
	}
	return b
}

// cdfAt is the fraction of a sampled CDF at x: that of its last point at
// or below x (0 below the first).
func cdfAt(c [][2]float64, x float64) float64 {
	i := sort.Search(len(c), func(i int) bool { return c[i][0] > x })
	if i == 0 {
		return 0
	}
	return c[i-1][1]
}

// cdfBand evaluates every run's CDF on one log-spaced grid.
func cdfBand(series [][][2]float64) *Band {
	if len(series) == 0 {
		return nil
	}
	lo, hi := math.Inf(1), 0.0
	for _, c := range series {
		lo = math.Min(lo, c[0][0])
		hi = math.Max(hi, c[len(c)-1][0])
	}
	lo = math.Max(lo, 0.1)
	hi = math.Max(hi, lo*1.01)
	xs := make([]float64, bandPoints)
	for i := range xs {
		xs[i] = round2(lo * math.Pow(hi/lo, float64(i)/float64(bandPoints-1)))
	}
	xs[len(xs)-1] = hi
	b := &Band{X: xs, Runs: len(series)}
	for _, x := range xs {
		vals := make([]float64, len(series))
		for k, c := range series {
			vals[k] = cdfAt(c, x)
		}
		b.add(vals)
	}
	return b
}

// indexBand summarises series index by index (over the runs long enough;
// -1 marks a point without data and is left out).
func indexBand(series [][]float64) *Band {
	if len(series) == 0 {
		return nil
	}
	n := 0
	for _, s := range series {
		n = max(n, len(s))
	}
	b := &Band{Runs: len(series)}
	for i := range n {
		var vals []float64
		for _, s := range series {
			if i < len(s) && s[i] >= 0 {
				vals = append(vals, s[i])
			}
		}
		if len(vals) == 0 {
			continue
		}
		b.X = append(b.X, float64(i))
		b.add(vals)
	}
	return b
}

// clamp bounds the interval of a band of fractions (a nil band is left).
func (b *Band) clamp(lo, hi float64) {
	if b == nil {
		return
	}
	for i := range b.Low {
		b.Low[i] = max(b.Low[i], lo)
		b.High[i] = min(b.High[i], hi)
	}
}

func (b *Band) add(vals []float64) {
	e := newEstimate(vals)
	lo, hi := e.Mean, e.Mean
	if e.HasCI() {
		lo, hi = *e.Low, *e.High
	}
	b.Mean = append(b.Mean, round4(e.Mean))
	b.Low = append(b.Low, round4(lo))
	b.High = append(b.High, round4(hi))
}
