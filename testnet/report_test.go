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

// TestReportShowsEveryMetric: report.html shows each metric issue 6 asks
// for per strategy: delivery (online, eventual), latency percentiles,
// catch-up after coming online, duplicates, bytes per node, storage per
// host, gaps detected and filled.
func TestReportShowsEveryMetric(t *testing.T) {
	var b bytes.Buffer
	if err := WriteReport(&b, sampleResults()); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{
		"98.8%", "99.9%", // delivery, eventual
		"11.5", "22.5", "33.5", // latency
		"101.5 / 202.5 / 303.5",       // catch-up
		"<td>7; 2.25</td>",            // duplicates shown; stored per message
		"13 / 12 / 1; 9",              // gaps
		"5.0 KiB (4.0 KiB; 25.0 KiB)", // bytes per node
		"6.0 KiB (9.0 KiB, 2 hosts)",  // storage per host: mean, max
		"<td>20</td><td>host</td><td>77</td>", "<td>3</td><td>member</td><td>33</td>",
	} {
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
