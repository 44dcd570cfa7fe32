package testnet

import (
	"fmt"
	"math"
	"strings"
)

// SVG plots of the report: full width (the SVG scales to the page), one
// panel per strategy where lines would hide each other, bands for the 95%
// interval over several runs, and a note instead of an empty frame when
// there is no data.

// palette colours strategies in plots (baselines: the same colour, dashed).
var palette = map[Strategy]string{
	StrategyServer: "#1f77b4", StrategyBot: "#ff7f0e", StrategyPeers: "#2ca02c", StrategyHybrid: "#d62728",
}

// Plot geometry (SVG user units; the SVG is drawn at the page's width).
const (
	plotW, plotH           = 1000, 380
	padL, padR, padT, padB = 70, 20, 20, 50
)

type line struct {
	Label, Colour, Points string
	Dashed                bool
}

type band struct {
	Colour, Points string
}

type tick struct {
	Pos   float64
	Label string
}

// plot is one SVG panel.
type plot struct {
	Title, XLabel, YLabel string
	// Caption defines the figure where it is shown.
	Caption          string
	W, H, L, T, R, B float64
	Lines            []line
	Bands            []band
	XTicks, YTicks   []tick
	// Empty: no data to draw; the text says why.
	Empty string
}

func newPlot(title, xl, yl string) *plot {
	return &plot{Title: title, XLabel: xl, YLabel: yl, W: plotW, H: plotH, L: padL, T: padT, R: plotW - padR, B: plotH - padB}
}

// axis maps values to one coordinate range, linearly or on a log scale.
type axis struct {
	lo, hi   float64
	log      bool
	bytes    bool    // log axis of bytes: ticks at powers of 4
	from, to float64 // SVG coordinates of lo and hi
}

func (a axis) at(v float64) float64 {
	v = math.Min(math.Max(v, a.lo), a.hi)
	if a.log {
		v = math.Log10(math.Max(v, a.lo))
		lo, hi := math.Log10(a.lo), math.Log10(a.hi)
		return a.from + (a.to-a.from)*(v-lo)/(hi-lo)
	}
	return a.from + (a.to-a.from)*(v-a.lo)/(a.hi-a.lo)
}

// ticks lists tick positions: decades (with 2 and 5) on a log axis, five
// steps on a linear one.
func (a axis) ticks(format func(float64) string) []tick {
	var out []tick
	if a.bytes {
		for v := math.Pow(4, math.Floor(math.Log(a.lo)/math.Log(4))); v <= a.hi*1.001; v *= 4 {
			if v >= a.lo*0.999 {
				out = append(out, tick{Pos: a.at(v), Label: format(v)})
			}
		}
		return out
	}
	if a.log {
		mults := []float64{1, 2, 5}
		if math.Log10(a.hi/a.lo) > 3 {
			mults = []float64{1}
		}
		for d := math.Floor(math.Log10(a.lo)); d <= math.Ceil(math.Log10(a.hi)); d++ {
			for _, m := range mults {
				v := m * math.Pow(10, d)
				if v >= a.lo*0.999 && v <= a.hi*1.001 {
					out = append(out, tick{Pos: a.at(v), Label: format(v)})
				}
			}
		}
		return out
	}
	step := niceStep((a.hi - a.lo) / 6)
	for v := math.Ceil(a.lo/step) * step; v <= a.hi+step/1e6; v += step {
		out = append(out, tick{Pos: a.at(v), Label: format(v)})
	}
	return out
}

// niceStep rounds a tick step up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

func (p *plot) xAxis(lo, hi float64, log bool, format func(float64) string) axis {
	if hi <= lo {
		hi = lo + 1
	}
	a := axis{lo: lo, hi: hi, log: log, from: p.L, to: p.R}
	p.XTicks = a.ticks(format)
	return a
}

func (p *plot) yAxis(lo, hi float64, log bool, format func(float64) string) axis {
	if hi <= lo {
		hi = lo + 1
	}
	a := axis{lo: lo, hi: hi, log: log, from: p.B, to: p.T}
	p.YTicks = a.ticks(format)
	return a
}

func polyline(xs, ys []float64, fx, fy axis) string {
	var b strings.Builder
	for i := range xs {
		fmt.Fprintf(&b, "%.1f,%.1f ", fx.at(xs[i]), fy.at(ys[i]))
	}
	return strings.TrimSpace(b.String())
}

func (p *plot) addLine(label, colour string, xs, ys []float64, dashed bool, fx, fy axis) {
	if len(xs) == 0 {
		return
	}
	p.Lines = append(p.Lines, line{Label: label, Colour: colour, Points: polyline(xs, ys, fx, fy), Dashed: dashed})
}

// addBand draws the area between low and high.
func (p *plot) addBand(colour string, b *Band, fx, fy axis) {
	if b == nil || len(b.X) == 0 {
		return
	}
	xs := append([]float64{}, b.X...)
	ys := append([]float64{}, b.High...)
	for i := len(b.X) - 1; i >= 0; i-- {
		xs, ys = append(xs, b.X[i]), append(ys, b.Low[i])
	}
	p.Bands = append(p.Bands, band{Colour: colour, Points: polyline(xs, ys, fx, fy)})
}

// stepCDF turns sampled CDF points into a step line's vertices.
func stepCDF(c [][2]float64) (xs, ys []float64) {
	prev := 0.0
	for _, q := range c {
		xs, ys = append(xs, q[0], q[0]), append(ys, prev, q[1])
		prev = q[1]
	}
	return xs, ys
}

// cdfRange is the x range of CDFs on a log axis (at least one decade).
func cdfRange(cs ...[][2]float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), 0
	for _, c := range cs {
		if len(c) == 0 {
			continue
		}
		lo, hi, ok = math.Min(lo, c[0][0]), math.Max(hi, c[len(c)-1][0]), true
	}
	if !ok {
		return 0, 0, false
	}
	lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 1))))
	hi = math.Pow(10, math.Ceil(math.Log10(math.Max(hi, lo*10))))
	return lo, hi, true
}

func fraction(v float64) string { return trimZeros(fmt.Sprintf("%.2f", v)) }

func integer(v float64) string { return fmt.Sprintf("%.0f", v) }

// cdfPlot draws CDFs (with bands over several runs) on a log x axis.
type cdfSeries struct {
	label, colour string
	points        [][2]float64
	band          *Band
	dashed        bool
}

func cdfPlot(title, xl, caption string, series []cdfSeries) *plot {
	p := newPlot(title, xl, "fraction ≤ x")
	p.Caption = caption
	var cs [][2]float64
	var all [][][2]float64
	for _, s := range series {
		all = append(all, s.points)
		cs = append(cs, s.points...)
	}
	lo, hi, ok := cdfRange(all...)
	if !ok {
		p.Empty = "n/a: no samples in this run"
		return p
	}
	fx := p.xAxis(lo, hi, true, func(v float64) string { return humanMs(v) })
	fy := p.yAxis(0, 1, false, fraction)
	for _, s := range series {
		if s.band != nil {
			p.addBand(s.colour, s.band, fx, fy)
		}
	}
	for _, s := range series {
		if s.band != nil && s.band.Runs > 1 {
			p.addLine(s.label+" (mean of runs)", s.colour, s.band.X, s.band.Mean, s.dashed, fx, fy)
			continue
		}
		xs, ys := stepCDF(s.points)
		p.addLine(s.label, s.colour, xs, ys, s.dashed, fx, fy)
	}
	return p
}

// latencyPlots: one panel per strategy, meshnode and its baseline.
func latencyPlots(res *Results) []*plot {
	var out []*plot
	for _, r := range res.Strategies {
		b := r.Series.Bands
		if b == nil {
			b = &SeriesBands{}
		}
		series := []cdfSeries{{label: "meshnode, " + string(r.Strategy), colour: palette[r.Strategy], points: r.Series.LatencyCDF, band: b.LatencyCDF}}
		if r.Baseline != nil {
			series = append(series, cdfSeries{label: "gossipsub baseline", colour: "#555", points: r.Series.BaselineCDF, band: b.BaselineCDF, dashed: true})
		}
		out = append(out, cdfPlot(fmt.Sprintf("Latency, %s strategy (CDF, log scale)", r.Strategy), "send → shown",
			"For every (message, member online from its send until the deadline) delivered within the deadline: the time from the author's send to the member's node showing it (meshnode, solid) or receiving it (gossipsub baseline, dashed). The curve at x is the fraction delivered within x."+bandNote(res),
			series))
	}
	return out
}

func bandNote(res *Results) string {
	if res.Runs > 1 {
		return fmt.Sprintf(" Over %d runs: the line is the mean, the shaded band the 95%% confidence interval at each point.", res.Runs)
	}
	return ""
}

// deliveryPlots: one panel per strategy, delivery by second of sending.
func deliveryPlots(res *Results) []*plot {
	var out []*plot
	for _, r := range res.Strategies {
		p := newPlot(fmt.Sprintf("Delivery over time, %s strategy", r.Strategy), "second of the traffic phase in which the message was sent", "delivery ratio")
		p.Caption = "Of the (message, member) pairs whose message was sent in that second and whose member stayed online from the send until the deadline, the fraction shown within the deadline: meshnode (solid) and the gossipsub baseline (dashed). Seconds without such pairs are left out." + bandNote(res)
		secs := len(r.Series.Delivery)
		if secs == 0 {
			p.Empty = "n/a: no messages"
			out = append(out, p)
			continue
		}
		fx := p.xAxis(0, float64(secs), false, integer)
		fy := p.yAxis(0, 1, false, fraction)
		draw := func(label, colour string, v []float64, bd *Band, dashed bool) {
			if bd != nil && bd.Runs > 1 {
				p.addBand(colour, shift(bd, 0.5), fx, fy)
				p.addLine(label+" (mean of runs)", colour, shift(bd, 0.5).X, bd.Mean, dashed, fx, fy)
				return
			}
			var xs, ys []float64
			for i, d := range v {
				if d >= 0 {
					xs, ys = append(xs, float64(i)+0.5), append(ys, d)
				}
			}
			p.addLine(label, colour, xs, ys, dashed, fx, fy)
		}
		b := r.Series.Bands
		if b == nil {
			b = &SeriesBands{}
		}
		draw("meshnode, "+string(r.Strategy), palette[r.Strategy], r.Series.Delivery, b.Delivery, false)
		if r.Baseline != nil {
			draw("gossipsub baseline", "#555", r.Series.BaselineDelivery, b.BaselineDelivery, true)
		}
		out = append(out, p)
	}
	return out
}

func shift(b *Band, dx float64) *Band {
	c := *b
	c.X = make([]float64, len(b.X))
	for i, x := range b.X {
		c.X[i] = x + dx
	}
	return &c
}

// bytesPlot: bytes per node by rank, every strategy, log y.
func bytesPlot(res *Results) *plot {
	p := newPlot("Bytes per node (sent + received), nodes sorted", "node rank (1 = fewest bytes)", "bytes")
	p.Caption = "Application bytes each node sent and received from the start of the traffic to the end of the run (meshnode's protocols: gossipsub, relay, fetch, sync; not the baseline's), nodes sorted from fewest to most; log scale. The infrastructure nodes are at the right end." + bandNote(res)
	nodes := 0
	lo, hi := math.Inf(1), 0.0
	for _, r := range res.Strategies {
		nodes = max(nodes, len(r.Series.BytesPerNode))
		for _, b := range r.Series.BytesPerNode {
			if b > 0 {
				lo, hi = math.Min(lo, float64(b)), math.Max(hi, float64(b))
			}
		}
		if bd := r.Series.Bands; bd != nil && bd.BytesPerNode != nil {
			for i := range bd.BytesPerNode.X {
				if m := bd.BytesPerNode.Mean[i] * 1024; m > 0 {
					lo, hi = math.Min(lo, m), math.Max(hi, m)
				}
			}
		}
	}
	if nodes == 0 || hi == 0 {
		p.Empty = "n/a: no bytes counted"
		return p
	}
	// The band may reach 0 (a wide interval): the axis shows the means'
	// range and clips it.
	lo = math.Pow(4, math.Floor(math.Log(lo)/math.Log(4)))
	hi = math.Pow(4, math.Ceil(math.Log(hi)/math.Log(4)))
	fx := p.xAxis(1, float64(max(nodes, 2)), false, integer)
	fy := axis{lo: lo, hi: hi, log: true, bytes: true, from: p.B, to: p.T}
	p.YTicks = fy.ticks(humanBytes)
	for _, r := range res.Strategies {
		if bd := r.Series.Bands; bd != nil && bd.BytesPerNode != nil && bd.BytesPerNode.Runs > 1 {
			b := scaleBand(bd.BytesPerNode, 1024)
			p.addBand(palette[r.Strategy], b, fx, fy)
			p.addLine(string(r.Strategy)+" (mean of runs)", palette[r.Strategy], b.X, b.Mean, false, fx, fy)
			continue
		}
		var xs, ys []float64
		for i, b := range r.Series.BytesPerNode {
			xs, ys = append(xs, float64(i+1)), append(ys, math.Max(float64(b), lo))
		}
		p.addLine(string(r.Strategy), palette[r.Strategy], xs, ys, false, fx, fy)
	}
	return p
}

func scaleBand(b *Band, k float64) *Band {
	c := &Band{X: b.X, Runs: b.Runs}
	for i := range b.X {
		c.Mean = append(c.Mean, math.Max(b.Mean[i]*k, 1))
		c.Low = append(c.Low, math.Max(b.Low[i]*k, 1))
		c.High = append(c.High, math.Max(b.High[i]*k, 1))
	}
	return c
}

// catchUpPlot: catch-up times of every strategy.
func catchUpPlot(res *Results) *plot {
	var series []cdfSeries
	for _, r := range res.Strategies {
		var b *Band
		if r.Series.Bands != nil {
			b = r.Series.Bands.CatchUpCDF
		}
		series = append(series, cdfSeries{label: string(r.Strategy), colour: palette[r.Strategy], points: r.Series.CatchUpCDF, band: b})
	}
	p := cdfPlot("Catch-up after coming back online (CDF, log scale)", "back online → showed everything missed",
		"For every return of a member during the traffic phase after which it had messages to catch up on: the time from its return until it had shown every message of its groups sent before its return that it had not shown yet. Returns after which something stayed missing until the member went offline again are counted as incomplete in the table, not here."+bandNote(res), series)
	if p.Empty != "" {
		p.Empty = "n/a: no member came back with messages to catch up on (no churn in this scenario, or nothing was missed)"
	}
	return p
}

// keyCatchUpPlot: managed groups' key catch-up.
func keyCatchUpPlot(res *Results) *plot {
	var series []cdfSeries
	for _, r := range res.Strategies {
		var b *Band
		if r.Series.Bands != nil {
			b = r.Series.Bands.KeyCatchUpCDF
		}
		series = append(series, cdfSeries{label: string(r.Strategy), colour: palette[r.Strategy], points: r.Series.KeyCatchUpCDF, band: b})
	}
	p := cdfPlot("Key catch-up after removals and rotations (CDF, log scale)", "operation done → last member in the new epoch",
		"For every removal or rotation the manager completed: the time from the operation returning at the manager (for a member offline then, from its return) until the last remaining member's node was in the new epoch."+bandNote(res), series)
	if p.Empty != "" {
		p.Empty = "n/a: no removal or rotation was completed"
	}
	return p
}
