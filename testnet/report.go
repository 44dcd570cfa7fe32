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
	"time"
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

// humanMs writes a duration given in milliseconds for people: "0.4 ms",
// "52 ms", "1.25 s", "14.2 s", "2 min 05 s".
func humanMs(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v < 0:
		return "−" + humanMs(-v)
	case v == 0:
		return "0 ms"
	case v < 10:
		return trimZeros(fmt.Sprintf("%.2f", v)) + " ms"
	case v < 100:
		return trimZeros(fmt.Sprintf("%.1f", v)) + " ms"
	case v < 1000:
		return fmt.Sprintf("%.0f ms", v)
	case v < 10_000:
		return trimZeros(fmt.Sprintf("%.2f", v/1000)) + " s"
	case v < 60_000:
		return trimZeros(fmt.Sprintf("%.1f", v/1000)) + " s"
	}
	d := time.Duration(v * float64(time.Millisecond)).Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// humanDuration writes a scenario duration for people.
func humanDuration(d Duration) string { return humanMs(ms(d.D())) }

// humanBytes writes a byte count for people: "812 B", "1.5 KiB", "3.2 MiB".
func humanBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	if math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return trimZeros(fmt.Sprintf("%.1f", v)) + " " + units[i]
}

func pct(v float64) string { return trimZeros(fmt.Sprintf("%.2f", 100*v)) + "%" }

// estimateText formats a figure of a strategy's stats in a unit ("ms",
// "pct", "bytes", "num"): its mean, and "± half-width" of the 95%
// interval when there are several runs; "n/a" without data.
func estimateText(stats map[string]Estimate, path, unit string) string {
	e, ok := stats[path]
	if !ok || e.N == 0 {
		return "n/a"
	}
	f := func(v float64) string {
		switch unit {
		case "ms":
			return humanMs(v)
		case "pct":
			return pct(v)
		case "bytes":
			return humanBytes(v)
		case "ratio":
			return fmt.Sprintf("%.2f×", v)
		}
		return num(v)
	}
	if e.HasCI() {
		return f(e.Mean) + " ± " + f(*e.Half)
	}
	return f(e.Mean)
}

// param is one row of the parameters table.
type param struct{ Name, Value, Meaning string }

func parameters(res *Results) []param {
	s := res.Scenario
	var groups []string
	for _, g := range s.Groups {
		groups = append(groups, fmt.Sprintf("%d × %d members", g.Count, g.Size))
	}
	var strategies []string
	for _, st := range s.Strategies {
		strategies = append(strategies, string(st))
	}
	churn := "none"
	if s.Churn.Fraction > 0 {
		dist := s.Churn.Distribution
		if dist == "" {
			dist = "exponential"
		}
		churn = fmt.Sprintf("%s of members; online %s, offline %s (%s means)", pct(s.Churn.Fraction), humanDuration(s.Churn.Online), humanDuration(s.Churn.Offline), dist)
	}
	bw := "unlimited"
	if s.Link.Bandwidth > 0 {
		bw = humanBytes(float64(s.Link.Bandwidth)) + "/s per link"
	}
	link := fmt.Sprintf("latency %s one way, jitter up to %s, bandwidth %s, segment loss %s", humanDuration(s.Link.Latency), humanDuration(s.Link.Jitter), bw, pct(s.Link.Loss))
	if res.Mode == ModeProcesses {
		link = "not modelled: TCP on loopback (the scenario's link: " + link + ")"
	}
	parts := "none"
	if len(s.Partitions) > 0 {
		var ps []string
		for _, p := range s.Partitions {
			ps = append(ps, fmt.Sprintf("at %s for %s, %s of members with the infrastructure", humanDuration(p.At), humanDuration(p.Duration), pct(p.Split)))
		}
		parts = strings.Join(ps, "; ")
	}
	managed := "no"
	if s.ManagedGroups() {
		managed = fmt.Sprintf("yes: %d removal(s), %d rotation(s) scheduled", res.Schedule.Removals, res.Schedule.Rotations)
	}
	seeds := make([]string, len(res.Seeds))
	for i, v := range res.Seeds {
		seeds[i] = fmt.Sprint(v)
	}
	mode := "in memory: every node in one process over libp2p's mocknet"
	if res.Mode == ModeProcesses {
		mode = "processes: one meshnode daemon per node, TCP on loopback, driven by a per-node agent"
	}
	baseline := "on"
	if !s.BaselineOn() {
		baseline = "off"
	}
	return []param{
		{"mode", mode, "how the nodes ran"},
		{"runs", fmt.Sprintf("%d (seeds %s)", max(res.Runs, 1), strings.Join(seeds, ", ")), "repetitions; each seed draws its own groups, churn and traffic"},
		{"strategies", strings.Join(strategies, ", "), "who hosts each group's history"},
		{"members", fmt.Sprint(s.Peers), "member nodes"},
		{"community hosts", fmt.Sprint(s.Hosts), "always-on hosts shared by every group (server, hybrid)"},
		{"bots", fmt.Sprint(s.Bots), "always-on bots, one per group round-robin (bot)"},
		{"member hosts per group", fmt.Sprint(s.PeerHosts), "the group's first members, who host it (peers, hybrid)"},
		{"groups", strings.Join(groups, ", "), "drawn from the members by the seed"},
		{"traffic", fmt.Sprintf("%g messages/s per group (Poisson), %d bytes each", s.Traffic.Rate, s.Traffic.Size), "authors drawn among the online members"},
		{"churn", churn, "a member offline loses every link; its node keeps its state"},
		{"link", link, "every link between two nodes"},
		{"partitions", parts, ""},
		{"managed groups", managed, ""},
		{"duration", humanDuration(s.Duration), "traffic phase"},
		{"warm-up", humanDuration(s.Warmup), "between forming the groups and the traffic"},
		{"delivery deadline", humanDuration(s.Deadline), "a message shown later counts as not delivered in time"},
		{"final catch-up limit", humanDuration(s.CatchUp), "everyone back online and caught up, or this much time"},
		{"background catch-up", humanDuration(s.CatchUpInterval), "members' catch-up period"},
		{"baseline", baseline, "plain gossipsub over the same network"},
	}
}

// summaryRow is a strategy's row of the summary table.
type summaryRow struct {
	Strategy                                        Strategy
	Nodes                                           int
	Delivery, Eventual, P50, P90, P99               string
	CatchUp, Dups, Gaps, Bytes, Storage, Memory     string
	BaseDelivery, BaseP50, BaseP99, Ratio, Coverage string
	BaseBytes                                       string
	HasBaseline                                     bool
}

func summaryRows(res *Results) []summaryRow {
	var out []summaryRow
	for _, r := range res.Strategies {
		st := r.Stats
		if st == nil {
			st = aggregate([]RunResult{{Strategies: []StrategyResult{r}}})[0].Stats
		}
		row := summaryRow{
			Strategy: r.Strategy, Nodes: r.Nodes,
			Delivery: estimateText(st, "delivery_ratio", "pct"), Eventual: estimateText(st, "eventual_delivery_ratio", "pct"),
			P50: estimateText(st, "latency_ms.p50", "ms"), P90: estimateText(st, "latency_ms.p90", "ms"), P99: estimateText(st, "latency_ms.p99", "ms"),
			CatchUp: fmt.Sprintf("%s / %s (%d returns, %d incomplete)", estimateText(st, "catchup_ms.p50", "ms"), estimateText(st, "catchup_ms.p99", "ms"), r.CatchUpMs.N, r.CatchUpIncomplete),
			Dups:    fmt.Sprintf("%d; %s", r.Duplicates.Shown, estimateText(st, "duplicates.stored_per_message", "num")),
			Gaps:    fmt.Sprintf("%d / %d / %d; %d", r.Gaps.Detected, r.Gaps.Filled, r.Gaps.Open, r.Gaps.Notices),
			Bytes:   fmt.Sprintf("%s (members %s; infrastructure %s)", estimateText(st, "bytes_per_node", "bytes"), estimateText(st, "bytes.member_mean", "bytes"), naIf(r.Infra == 0, estimateText(st, "bytes.infrastructure_mean", "bytes"))),
			Storage: fmt.Sprintf("%s (max %s, %d hosts)", estimateText(st, "storage.mean_bytes", "bytes"), humanBytes(float64(r.Storage.MaxBytes)), r.Storage.Hosts),
			Memory:  naIf(r.MemoryPerNode == 0, estimateText(st, "memory_per_node_bytes", "bytes")),
		}
		if r.Baseline != nil {
			row.HasBaseline = true
			row.BaseDelivery = estimateText(st, "baseline.delivery_ratio", "pct")
			row.BaseP50 = estimateText(st, "baseline.latency_ms.p50", "ms")
			row.BaseP99 = estimateText(st, "baseline.latency_ms.p99", "ms")
			row.Coverage = pct(r.Baseline.MeshCoverage)
			row.BaseBytes = estimateText(st, "baseline.bytes_per_node", "bytes")
			row.Ratio = "n/a"
			if r.LatencyMs.N > 0 && r.Baseline.LatencyMs.N > 0 && r.Baseline.LatencyMs.P99 > 0 {
				row.Ratio = fmt.Sprintf("%.2f×", r.LatencyMs.P99/r.Baseline.LatencyMs.P99)
			}
		}
		out = append(out, row)
	}
	return out
}

func naIf(cond bool, s string) string {
	if cond {
		return "n/a"
	}
	return s
}

type reportData struct {
	*Results
	Params       []param
	Rows         []summaryRow
	Latency      []*plot
	Delivery     []*plot
	Others       []*plot
	ScenarioJSON string
	Validation   []Comparison
}

// WriteReport renders the human report: method, parameters, a summary
// table and SVG plots, self-contained.
func WriteReport(w io.Writer, res *Results) error {
	sc, err := json.MarshalIndent(res.Scenario, "", "  ")
	if err != nil {
		return err
	}
	d := reportData{Results: res, ScenarioJSON: string(sc), Params: parameters(res), Rows: summaryRows(res),
		Latency: latencyPlots(res), Delivery: deliveryPlots(res), Others: []*plot{bytesPlot(res), catchUpPlot(res)}}
	if res.Scenario.ManagedGroups() {
		d.Others = append(d.Others, keyCatchUpPlot(res))
	}
	if v := res.Validation; v != nil && v.Memory != nil && v.Processes != nil {
		d.Validation = Compare(v.Memory, v.Processes, false)
	}
	return reportTmpl.Execute(w, d)
}

var reportFuncs = template.FuncMap{
	"pct":      pct,
	"ms":       humanMs,
	"dur":      humanDuration,
	"bytes":    humanBytes,
	"fbytes":   func(v int64) string { return humanBytes(float64(v)) },
	"sub":      func(a, b float64) float64 { return a - b },
	"est":      estimateText,
	"estimate": formatEstimate,
	"num":      num,
	"pctile": func(p Percentiles, v float64) string {
		if p.N == 0 {
			return "n/a"
		}
		return humanMs(v)
	},
	"sig": func(c Comparison) string { return c.Welch.Significance(c.A, c.B) },
	"rel": relDiff,
	"ci": func(c Comparison) string {
		if !c.Welch.OK {
			return "n/a"
		}
		return fmt.Sprintf("[%s, %s]", num(c.Welch.Low), num(c.Welch.High))
	},
	"load": func(l [2]float64) string { return fmt.Sprintf("%.1f at the start, %.1f at the end", l[0], l[1]) },
	"secs": func(v float64) string { return humanMs(1000 * v) },
	"inc":  func(i int) int { return i + 1 },
}

var reportTmpl = template.Must(template.New("report").Funcs(reportFuncs).Parse(reportHTML))
