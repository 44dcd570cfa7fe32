package testnet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Write stores results.json and report.html in dir (created if needed).
func Write(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("testnet: output directory: %w", err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("testnet: write results: %w", err)
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, res); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.html"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("testnet: write report: %w", err)
	}
	return nil
}

// palette colours strategies in plots (baseline: grey, dashed).
var palette = map[Strategy]string{
	StrategyServer: "#1f77b4", StrategyBot: "#ff7f0e", StrategyPeers: "#2ca02c", StrategyHybrid: "#d62728",
}

// Plot geometry (SVG user units).
const (
	plotW, plotH           = 640, 300
	padL, padR, padT, padB = 60, 20, 20, 40
)

type line struct {
	Label, Colour, Points string
	Dashed                bool
}

type tick struct {
	Pos   float64
	Label string
}

type plot struct {
	Title, XLabel, YLabel string
	W, H, L, T, R, B      float64
	Lines                 []line
	XTicks, YTicks        []tick
	Bars                  []bar
}

type bar struct {
	X, Y, W, H float64
	Colour     string
}

func newPlot(title, xl, yl string) *plot {
	return &plot{Title: title, XLabel: xl, YLabel: yl, W: plotW, H: plotH, L: padL, T: padT, R: plotW - padR, B: plotH - padB}
}

// axes sets the ranges and ticks; returns the mapping functions.
func (p *plot) axes(xmax, ymax float64, xfmt, yfmt string) (fx, fy func(float64) float64) {
	if xmax <= 0 {
		xmax = 1
	}
	if ymax <= 0 {
		ymax = 1
	}
	fx = func(x float64) float64 { return p.L + (p.R-p.L)*x/xmax }
	fy = func(y float64) float64 { return p.B - (p.B-p.T)*y/ymax }
	for i := 0; i <= 5; i++ {
		x, y := xmax*float64(i)/5, ymax*float64(i)/5
		p.XTicks = append(p.XTicks, tick{Pos: fx(x), Label: fmt.Sprintf(xfmt, x)})
		p.YTicks = append(p.YTicks, tick{Pos: fy(y), Label: fmt.Sprintf(yfmt, y)})
	}
	return fx, fy
}

func points(xs, ys []float64, fx, fy func(float64) float64) string {
	var b strings.Builder
	for i := range xs {
		fmt.Fprintf(&b, "%.1f,%.1f ", fx(xs[i]), fy(ys[i]))
	}
	return strings.TrimSpace(b.String())
}

func latencyPlot(res *Results) *plot {
	p := newPlot("End-to-end latency (CDF, delivered within the deadline; log scale)", "latency (ms)", "fraction")
	xmax := 1.0
	for _, r := range res.Strategies {
		xmax = math.Max(xmax, r.LatencyMs.Max)
		if r.Baseline != nil {
			xmax = math.Max(xmax, r.Baseline.LatencyMs.Max)
		}
	}
	decades := math.Max(1, math.Ceil(math.Log10(xmax)))
	_, fy := p.axes(1, 1, "%.0f", "%.1f")
	fx := func(x float64) float64 { return p.L + (p.R-p.L)*math.Log10(math.Max(x, 1))/decades }
	p.XTicks = nil
	for d := 0.0; d <= decades; d++ {
		v := math.Pow(10, d)
		p.XTicks = append(p.XTicks, tick{Pos: fx(v), Label: fmt.Sprintf("%.0f", v)})
	}
	add := func(label, colour string, pts [][2]float64, dashed bool) {
		var xs, ys []float64
		for _, q := range pts {
			xs, ys = append(xs, q[0]), append(ys, q[1])
		}
		p.Lines = append(p.Lines, line{Label: label, Colour: colour, Points: points(xs, ys, fx, fy), Dashed: dashed})
	}
	for _, r := range res.Strategies {
		add(string(r.Strategy), palette[r.Strategy], r.Series.LatencyCDF, false)
		if r.Baseline != nil {
			add(string(r.Strategy)+" (gossipsub baseline)", palette[r.Strategy], r.Series.BaselineCDF, true)
		}
	}
	return p
}

func deliveryPlot(res *Results) *plot {
	p := newPlot("Delivery to online members, by second of sending", "time (s)", "delivery ratio")
	secs := 0
	for _, r := range res.Strategies {
		secs = max(secs, len(r.Series.Delivery))
	}
	fx, fy := p.axes(float64(secs), 1, "%.0f", "%.1f")
	for _, r := range res.Strategies {
		var xs, ys []float64
		for i, v := range r.Series.Delivery {
			if v >= 0 {
				xs, ys = append(xs, float64(i)+0.5), append(ys, v)
			}
		}
		p.Lines = append(p.Lines, line{Label: string(r.Strategy), Colour: palette[r.Strategy], Points: points(xs, ys, fx, fy)})
	}
	return p
}

func bytesPlot(res *Results) *plot {
	p := newPlot("Bytes per node (sent + received), sorted", "node rank", "KiB")
	var ymax float64
	nodes := 0
	for _, r := range res.Strategies {
		nodes = max(nodes, len(r.Series.BytesPerNode))
		if n := len(r.Series.BytesPerNode); n > 0 {
			ymax = math.Max(ymax, float64(r.Series.BytesPerNode[n-1])/1024)
		}
	}
	fx, fy := p.axes(float64(nodes), niceCeil(ymax), "%.0f", "%.0f")
	for _, r := range res.Strategies {
		var xs, ys []float64
		for i, b := range r.Series.BytesPerNode {
			xs, ys = append(xs, float64(i+1)), append(ys, float64(b)/1024)
		}
		p.Lines = append(p.Lines, line{Label: string(r.Strategy), Colour: palette[r.Strategy], Points: points(xs, ys, fx, fy)})
	}
	return p
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
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

type reportData struct {
	*Results
	Plots        []*plot
	ScenarioJSON string
}

// WriteReport renders the human report: a summary table and SVG plots,
// self-contained.
func WriteReport(w io.Writer, res *Results) error {
	sc, err := json.MarshalIndent(res.Scenario, "", "  ")
	if err != nil {
		return err
	}
	d := reportData{Results: res, ScenarioJSON: string(sc), Plots: []*plot{latencyPlot(res), deliveryPlot(res), bytesPlot(res)}}
	return reportTmpl.Execute(w, d)
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"kib":   func(f float64) string { return fmt.Sprintf("%.1f KiB", f/1024) },
	"mib":   func(f int64) string { return fmt.Sprintf("%.1f MiB", float64(f)/(1<<20)) },
	"f1":    func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"sub":   func(a, b float64) float64 { return a - b },
	"float": func(i int64) float64 { return float64(i) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>meshnode testnet: {{.Scenario.Name}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
svg{background:#fff;border:1px solid #ddd;margin:1em 0}pre{background:#f8f8f8;padding:1em;overflow:auto}
.axis{stroke:#999}.grid{stroke:#eee}text{font-size:11px;fill:#444}
</style></head><body>
<h1>meshnode testnet — {{.Scenario.Name}}</h1>
<p>Seed {{.Scenario.Seed}}: {{.Schedule.Groups}} groups, {{.Schedule.Messages}} messages, {{.Schedule.Churned}} churning members ({{.Schedule.Offlines}} offline periods), {{.Schedule.Partitions}} partitions{{if .Scenario.ManagedGroups}}; managed groups with {{.Schedule.Removals}} removals and {{.Schedule.Rotations}} rotations{{end}}.
Run on {{.Machine.CPUs}} CPUs, {{.Machine.GoVersion}}, in {{f1 .Elapsed}} s.</p>
<h2>Summary</h2>
<table><tr><th>strategy</th><th>nodes</th><th>delivery</th><th>eventual</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>baseline p50 / p99 ms</th><th>catch-up p50 / p90 / p99 ms</th><th>duplicates shown; stored / msg</th><th>gaps detected / filled / open; notices</th><th>bytes / node (members; infrastructure)</th><th>storage / host (max)</th><th>memory / node</th></tr>
{{range .Strategies}}<tr><td>{{.Strategy}}</td><td>{{.Nodes}}</td><td>{{pct .DeliveryRatio}}</td><td>{{pct .EventualDeliveryRatio}}</td><td>{{f1 .LatencyMs.P50}}</td><td>{{f1 .LatencyMs.P90}}</td><td>{{f1 .LatencyMs.P99}}</td>
<td>{{with .Baseline}}{{f1 .LatencyMs.P50}} / {{f1 .LatencyMs.P99}}{{else}}—{{end}}</td>
<td>{{f1 .CatchUpMs.P50}} / {{f1 .CatchUpMs.P90}} / {{f1 .CatchUpMs.P99}} (n={{.CatchUpMs.N}}, incomplete {{.CatchUpIncomplete}})</td>
<td>{{.Duplicates.Shown}}; {{.Duplicates.StoredPerMessage}}</td><td>{{.Gaps.Detected}} / {{.Gaps.Filled}} / {{.Gaps.Open}}; {{.Gaps.Notices}}</td>
<td>{{kib .BytesPerNode}} ({{kib .Bytes.MemberMean}}; {{if .Infra}}{{kib .Bytes.InfraMean}}{{else}}—{{end}})</td><td>{{kib .Storage.MeanBytes}} ({{kib (float .Storage.MaxBytes)}}, {{.Storage.Hosts}} hosts)</td><td>{{mib .MemoryPerNode}}</td></tr>
{{end}}</table>
<p>Delivery: (message, member) pairs whose member stayed online from the send until the deadline ({{.Scenario.Deadline}}), shown within it.
Eventual: every (message, other member) pair, after everyone came back and caught up (final phase up to {{.Scenario.CatchUp}}).
Latency: send → shown by the recipient's node (Follow), for pairs delivered within the deadline. Catch-up: from a member coming back
online during the traffic until it showed every message it had missed. Duplicates shown: a message shown twice to a member (must be 0);
stored: envelopes a node received again after storing them, per message sent. Gaps: messages shown while an earlier one of the same
author was missing (detected), shown after a later one (filled), never delivered (open), and gap notices the nodes showed. The baseline is plain gossipsub with
meshnode's pubsub options on the same hosts, links and connections, carrying the same messages unencrypted.</p>
{{range .Plots}}
<h2>{{.Title}}</h2>
<svg width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" xmlns="http://www.w3.org/2000/svg">
{{$p := .}}{{range .YTicks}}<line class="grid" x1="{{$p.L}}" x2="{{$p.R}}" y1="{{.Pos}}" y2="{{.Pos}}"/><text x="{{sub $p.L 6}}" y="{{.Pos}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{.Pos}}" y="{{$p.B}}" dy="16" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="{{.L}}" x2="{{.R}}" y1="{{.B}}" y2="{{.B}}"/><line class="axis" x1="{{.L}}" x2="{{.L}}" y1="{{.T}}" y2="{{.B}}"/>
<text x="{{.R}}" y="{{.H}}" dy="-6" text-anchor="end">{{.XLabel}}</text><text x="{{.L}}" y="{{.T}}" dy="-6">{{.YLabel}}</text>
{{range .Lines}}<polyline fill="none" stroke="{{.Colour}}" stroke-width="2"{{if .Dashed}} stroke-dasharray="5,4" stroke-opacity="0.6"{{end}} points="{{.Points}}"><title>{{.Label}}</title></polyline>
{{end}}</svg>
<p>{{range .Lines}}<span style="color:{{.Colour}}">{{if .Dashed}}┄{{else}}━{{end}} {{.Label}}</span> &nbsp; {{end}}</p>
{{end}}
{{if .Scenario.ManagedGroups}}<h2>Managed groups: removals, rotations, forward secrecy</h2>
<table><tr><th>strategy</th><th>rotations</th><th>removals</th><th>failed</th><th>key catch-up p50 / p90 / max ms (all members)</th><th>per member p50 / p90 ms</th><th>checked after removal</th><th>forward-secrecy violations</th><th>old-epoch messages shown</th></tr>
{{range .Strategies}}{{$st := .Strategy}}{{with .Managed}}<tr><td>{{$st}}</td><td>{{.Rotations}}</td><td>{{.Removals}}</td><td>{{.Failed}}</td>
<td>{{f1 .KeyCatchUpMs.P50}} / {{f1 .KeyCatchUpMs.P90}} / {{f1 .KeyCatchUpMs.Max}} (n={{.KeyCatchUpMs.N}}, incomplete {{.KeyCatchUpIncomplete}})</td>
<td>{{f1 .KeyCatchUpMemberMs.P50}} / {{f1 .KeyCatchUpMemberMs.P90}}</td>
<td>{{.ForwardSecrecy.Checked}}</td><td>{{.ForwardSecrecy.Violations}}</td><td>{{.ForwardSecrecy.OldEpochShown}}</td></tr>{{end}}
{{end}}</table>
<p>Every group is managed: its creator (the bot under the bot strategy) adds the members by key package and does the removals and
rotations; a removal rotates the keys. Key catch-up: from the manager finishing an operation (or, for a member offline then, from its
return) until the last remaining member's node accepted the new epoch's key. Delivery counts only members still in the group when a message is sent. A violation is a message of the
removal's epoch or later that the removed member shows or holds (must be 0); old-epoch messages are those sent after the removal by
a member whose node had not received the key update yet, which the removed member can still read.</p>
{{end}}<h2>Storage per hosting node</h2>
{{range .Strategies}}<h3>{{.Strategy}}</h3><table><tr><th>node</th><th>role</th><th>envelopes</th><th>bytes</th><th>mailboxes</th></tr>
{{range .Storage.PerHost}}<tr><td>{{.Node}}</td><td>{{.Role}}</td><td>{{.Envelopes}}</td><td>{{.Bytes}}</td><td>{{.Mailboxes}}</td></tr>{{end}}</table>{{end}}
<h2>Scenario</h2><pre>{{.ScenarioJSON}}</pre>
</body></html>
`))
