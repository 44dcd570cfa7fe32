package testnet

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// sampleResults is one strategy's results with a distinct value in every
// metric, so a missing column shows.
func sampleResults() *Results {
	s := DefaultScenario()
	return &Results{
		Scenario: s,
		Strategies: []StrategyResult{{
			Strategy: StrategyHybrid, Nodes: 21, Members: 20, Infra: 1, Messages: 40,
			DeliveryRatio: 0.9876, EventualDeliveryRatio: 0.9991,
			LatencyMs:    Percentiles{N: 10, P50: 11.5, P90: 22.5, P99: 33.5, Max: 44.5},
			CatchUpMs:    Percentiles{N: 3, P50: 101.5, P90: 202.5, P99: 303.5, Max: 404.5},
			Duplicates:   Duplicates{Shown: 7, Stored: 80, StoredPerMessage: 2.25},
			Gaps:         Gaps{Detected: 13, Filled: 12, Open: 1, Notices: 9},
			BytesPerNode: 5 * 1024, Bytes: ByteStats{MemberMean: 4 * 1024, InfraMean: 25 * 1024},
			Storage: StorageStats{Hosts: 2, MeanBytes: 6 * 1024, MaxBytes: 9 * 1024, PerHost: []HostStorage{
				{Node: 20, Role: "host", Bytes: 9 * 1024, Envelopes: 77, Mailboxes: 1},
				{Node: 3, Role: "member", Bytes: 3 * 1024, Envelopes: 33, Mailboxes: 1},
			}},
		}},
	}
}

// TestReportShowsEveryMetric: report.html shows each metric per strategy
// (delivery, eventual, latency percentiles, catch-up, duplicates, bytes,
// storage per host, gaps) in human units, the parameters table, the
// method, a definition under each figure, and "n/a" where there is no
// data (no baseline samples, no key catch-up).
func TestReportShowsEveryMetric(t *testing.T) {
	res := sampleResults()
	res.Runs, res.Seeds = 1, []uint64{1}
	res.Strategies[0].Baseline = &Baseline{DeliveryRatio: 1, MeshCoverage: 1}
	var b bytes.Buffer
	if err := WriteReport(&b, res); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{
		"98.76%", "99.91%", // delivery, eventual
		"11.5 ms", "22.5 ms", "33.5 ms", // latency
		"102 ms / 304 ms (3 returns, 0 incomplete)",    // catch-up
		"<td>7; 2.25</td>",                             // duplicates shown; stored per message
		"13 / 12 / 1; 9",                               // gaps
		"5 KiB (members 4 KiB; infrastructure 25 KiB)", // bytes per node
		"6 KiB (max 9 KiB, 2 hosts)",                   // storage per host: mean, max
		"<td>20</td><td>host</td><td>77</td>", "<td>3</td><td>member</td><td>33</td>",
		"<h2>Method</h2>", "<h2>Parameters</h2>", "<td>delivery deadline</td><td>5 s</td>", "<td>duration</td><td>20 s</td>",
		"latency 20 ms one way", "<h2>The gossipsub baseline</h2>",
		"Latency, hybrid strategy", "Delivery over time, hybrid strategy", "Bytes per node", "Catch-up after coming back online",
		"<figcaption>For every (message, member online", // each figure defined where shown
		"n/a: no samples in this run",                   // the latency CDF without points
	} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, bad := range []string{"5000000000", "0.0/0.0/0.0", "NaN"} {
		if strings.Contains(html, bad) {
			t.Errorf("report.html shows %q", bad)
		}
	}
	// The baseline had no latency samples: n/a, not 0.
	if !strings.Contains(html, "<td>hybrid</td><td>100%</td><td>n/a</td><td>n/a</td><td>n/a</td>") {
		t.Errorf("baseline row without samples does not read n/a")
	}
}

// TestReportBands: with several runs the summary shows ± intervals, the
// plots draw bands, and the runs are listed.
func TestReportBands(t *testing.T) {
	res := &Results{Scenario: DefaultScenario(), Mode: ModeMemory, Runs: 3}
	for k, p99 := range []float64{30, 40, 50} {
		r := sampleResults().Strategies[0]
		r.LatencyMs.P99 = p99
		r.Series.LatencyCDF = [][2]float64{{p99 / 2, 0.5}, {p99, 1}}
		r.Series.Delivery = []float64{1, 0.5}
		r.Series.BytesPerNode = []int64{1000, 5000 + int64(k)*100}
		res.Seeds = append(res.Seeds, DeriveSeed(1, k))
		res.PerRun = append(res.PerRun, RunResult{Seed: res.Seeds[k], Strategies: []StrategyResult{r}})
	}
	res.Strategies = aggregate(res.PerRun)
	var b bytes.Buffer
	if err := WriteReport(&b, res); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{"40 ms ± 24.8 ms", "<polygon", "mean of runs", "95% confidence interval", "<h2>Runs</h2>"} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

// TestResultsJSONNames: results.json names every metric of issue 6 as
// documented (the names are a contract).
func TestResultsJSONNames(t *testing.T) {
	b, err := json.Marshal(sampleResults())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Strategies []map[string]json.RawMessage `json:"strategies"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	st := doc.Strategies[0]
	for key, sub := range map[string][]string{
		"delivery_ratio": nil, "eventual_delivery_ratio": nil,
		"latency_ms": {"p50", "p90", "p99"}, "catchup_ms": {"p50", "p90", "p99"},
		"duplicates": {"shown", "stored", "stored_per_message"}, "bytes_per_node": nil,
		"bytes": {"member_mean", "infrastructure_mean"}, "storage": {"per_host", "mean_bytes", "max_bytes"},
		"gaps": {"detected", "filled", "open", "notices"},
	} {
		raw, ok := st[key]
		if !ok {
			t.Errorf("results.json lacks %q", key)
			continue
		}
		if len(sub) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		for _, k := range sub {
			if _, ok := obj[k]; !ok {
				t.Errorf("results.json %s lacks %q", key, k)
			}
		}
	}
}
