package testnet

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Comparing results. Compare matches the strategies of two results files
// by name and, for every figure both have, tests the difference of the
// means with Welch's t-test (unequal variances; each run of a file is one
// sample). A file made with one run gives one sample per figure: the
// difference is shown, its significance is not ("n/a"); run both with
// --runs 5 or more.

// Comparison is one figure of one strategy in two results.
type Comparison struct {
	Strategy Strategy `json:"strategy"`
	Figure   string   `json:"figure"`
	A        Estimate `json:"a"`
	B        Estimate `json:"b"`
	Welch    Welch    `json:"welch"`
}

// headlineFigures are compared by default, in this order.
var headlineFigures = []string{
	"delivery_ratio", "eventual_delivery_ratio",
	"latency_ms.p50", "latency_ms.p90", "latency_ms.p99",
	"baseline.delivery_ratio", "baseline.latency_ms.p50", "baseline.latency_ms.p99",
	"overhead_ms.p50", "overhead_ms.p99",
	"catchup_ms.p50", "catchup_ms.p99", "catchup_incomplete",
	"duplicates.stored_per_message", "gaps.open",
	"bytes_per_node", "bytes.member_mean", "bytes.infrastructure_mean",
	"storage.mean_bytes", "memory_per_node_bytes", "setup_seconds",
	"managed.key_catchup_ms.p50", "managed.key_catchup_ms.max", "managed.forward_secrecy.violations",
}

// ReadResults reads a results.json.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := ParseResults(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ParseResults decodes a results.json (filling the stats of files
// written before repetitions).
func ParseResults(b []byte) (*Results, error) {
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if len(r.Strategies) == 0 {
		return nil, fmt.Errorf("%w: no strategies: not a testnet results file", ErrScenario)
	}
	if r.Runs == 0 { // written before repetitions: one run
		r.Runs, r.Seeds = 1, []uint64{r.Scenario.Seed}
	}
	for i := range r.Strategies {
		// Files written before repetitions have no stats: one run.
		if r.Strategies[i].Stats == nil {
			r.Strategies[i].Stats = aggregate([]RunResult{{Strategies: []StrategyResult{r.Strategies[i]}}})[0].Stats
		}
	}
	return &r, nil
}

// Compare compares every strategy both results have; all: every figure,
// else the headline figures.
func Compare(a, b *Results, all bool) []Comparison {
	var out []Comparison
	for _, sa := range a.Strategies {
		i := slices.IndexFunc(b.Strategies, func(r StrategyResult) bool { return r.Strategy == sa.Strategy })
		if i < 0 {
			continue
		}
		sb := b.Strategies[i]
		figs := headlineFigures
		if all {
			figs = nil
			for k := range sa.Stats {
				if _, ok := sb.Stats[k]; ok {
					figs = append(figs, k)
				}
			}
			sort.Strings(figs)
		}
		for _, f := range figs {
			ea, okA := sa.Stats[f]
			eb, okB := sb.Stats[f]
			if !okA || !okB {
				continue
			}
			out = append(out, Comparison{Strategy: sa.Strategy, Figure: f, A: ea, B: eb, Welch: welch(ea, eb)})
		}
	}
	return out
}

// formatEstimate writes a mean and, when there is one, its 95% interval's
// half-width: "52.1 ± 3.4".
func formatEstimate(e Estimate) string {
	if e.N == 0 {
		return "n/a"
	}
	if e.HasCI() {
		return fmt.Sprintf("%s ± %s", num(e.Mean), num(*e.Half))
	}
	return num(e.Mean)
}

// num formats a figure with about four significant digits.
func num(v float64) string {
	switch a := abs(v); {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return trimZeros(fmt.Sprintf("%.1f", v))
	case a >= 1:
		return trimZeros(fmt.Sprintf("%.3f", v))
	default:
		return trimZeros(fmt.Sprintf("%.4f", v))
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// Significance describes a test's p-value: "p=0.003 **", or why there is
// none.
func (w Welch) Significance(a, b Estimate) string {
	switch {
	case a.N < 2 || b.N < 2:
		return "n/a (one run)"
	case !w.OK && w.Diff == 0:
		return "no difference"
	case !w.OK:
		return "n/a (no variance)"
	}
	stars := ""
	switch {
	case w.P < 0.001:
		stars = " ***"
	case w.P < 0.01:
		stars = " **"
	case w.P < 0.05:
		stars = " *"
	}
	return fmt.Sprintf("p=%.3g%s", w.P, stars)
}

// relDiff is the difference relative to A's mean, in percent ("" when A
// is 0).
func relDiff(c Comparison) string {
	if c.A.Mean == 0 {
		return ""
	}
	return fmt.Sprintf("%+.1f%%", 100*c.Welch.Diff/abs(c.A.Mean))
}

// WriteComparison prints the comparison as a table: per strategy and
// figure, A and B (mean ± 95% half-width), B − A with its 95% interval,
// the relative difference and Welch's p-value.
func WriteComparison(w io.Writer, labelA, labelB string, a, b *Results, rows []Comparison) {
	fmt.Fprintf(w, "A: %s (%s, %d run(s), seeds %v)\nB: %s (%s, %d run(s), seeds %v)\n",
		labelA, describe(a), a.Runs, a.Seeds, labelB, describe(b), b.Runs, b.Seeds)
	fmt.Fprintln(w, "values: mean ± half-width of the 95% confidence interval (Student t); B − A with its 95% interval;")
	fmt.Fprintln(w, "significance: Welch's t-test, two-sided (* p<0.05, ** p<0.01, *** p<0.001)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "strategy\tfigure\tA\tB\tB − A\t95% CI of B − A\trelative\tsignificance\t")
	for _, c := range rows {
		ci := "n/a"
		if c.Welch.OK {
			ci = fmt.Sprintf("[%s, %s]", num(c.Welch.Low), num(c.Welch.High))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.Strategy, c.Figure, formatEstimate(c.A), formatEstimate(c.B),
			num(c.Welch.Diff), ci, relDiff(c), c.Welch.Significance(c.A, c.B))
	}
	tw.Flush()
	if len(rows) == 0 {
		fmt.Fprintln(w, "(no strategy in common)")
	}
}

func describe(r *Results) string {
	parts := []string{fmt.Sprintf("scenario %q", r.Scenario.Name)}
	if r.Mode != "" {
		parts = append(parts, r.Mode)
	}
	return strings.Join(parts, ", ")
}
