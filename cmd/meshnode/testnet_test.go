package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshnode/meshnode/testnet"
)

// scenarioFlagKeys names the flag of every scenario key.
var scenarioFlagKeys = map[string]string{
	"name": "name", "seed": "seed", "duration": "duration", "warmup": "warmup", "catchup": "catchup",
	"deadline": "deadline", "catchup_interval": "catchup-interval", "strategies": "strategies",
	"peers": "peers", "hosts": "hosts", "bots": "bots", "peer_hosts": "peer-hosts", "groups": "groups",
	"traffic.rate": "rate", "traffic.size": "size",
	"churn.fraction": "churn", "churn.online": "online", "churn.offline": "offline", "churn.distribution": "churn-distribution",
	"link.latency": "latency", "link.jitter": "jitter", "link.bandwidth": "bandwidth", "link.loss": "loss",
	"partitions": "partitions", "baseline": "no-baseline", "managed": "managed",
	"removals": "removals", "rotations": "rotations",
}

// scenarioKeys lists the JSON keys of a scenario: nested objects'
// keys as "traffic.rate", lists as one key.
func scenarioKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[testnet.Duration]() {
			out = append(out, scenarioKeys(f.Type, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// TestTestnetFlagsCoverEveryKey: run, compare and schedule have a flag
// for every key of the scenario file format.
func TestTestnetFlagsCoverEveryKey(t *testing.T) {
	keys := scenarioKeys(reflect.TypeFor[testnet.Scenario](), "")
	if len(keys) < 20 {
		t.Fatalf("found only %d scenario keys: %v", len(keys), keys)
	}
	for _, cmd := range []*cobra.Command{newTestnetRunCmd(), newTestnetCompareCmd(), newTestnetScheduleCmd()} {
		for _, k := range keys {
			flag, ok := scenarioFlagKeys[k]
			if !ok {
				t.Errorf("scenario key %q has no flag (add one to scenarioFlags and to scenarioFlagKeys)", k)
				continue
			}
			if cmd.Flags().Lookup(flag) == nil {
				t.Errorf("testnet %s: no --%s flag for the scenario key %q", cmd.Name(), flag, k)
			}
		}
	}
}

// applyFlags parses args as testnet flags over base.
func applyFlags(t *testing.T, base testnet.Scenario, args ...string) (testnet.Scenario, error) {
	t.Helper()
	var f scenarioFlags
	fs := pflag.NewFlagSet("testnet", pflag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	err := f.apply(fs, &base)
	return base, err
}

func TestTestnetFlagsOverride(t *testing.T) {
	one := 1
	file := testnet.DefaultScenario()
	file.Groups = []testnet.GroupSpec{{Count: 3, Size: 10}, {Count: 1, Size: 20}}
	file.Removals = []testnet.ManageOp{{At: testnet.Duration(time.Second)}}
	file.Partitions = []testnet.Partition{{At: testnet.Duration(time.Second), Duration: testnet.Duration(time.Second), Split: 0.5}}
	off := false
	file.Baseline = &off
	tests := []struct {
		name string
		args []string
		want func(s *testnet.Scenario)
	}{
		{"nothing", nil, func(s *testnet.Scenario) {}},
		{"scalars", []string{"--name", "x", "--warmup", "3s", "--catchup-interval", "2s", "--churn-distribution", "fixed", "--managed"},
			func(s *testnet.Scenario) {
				s.Name, s.Warmup, s.CatchUpInterval = "x", testnet.Duration(3*time.Second), testnet.Duration(2*time.Second)
				s.Churn.Distribution, s.Managed = "fixed", true
			}},
		{"group count", []string{"--groups", "5"}, func(s *testnet.Scenario) { s.Groups = []testnet.GroupSpec{{Count: 5, Size: 10}} }},
		{"group size", []string{"--group-size", "7"}, func(s *testnet.Scenario) { s.Groups = []testnet.GroupSpec{{Count: 3, Size: 7}} }},
		{"group list", []string{"--groups", "2x12,1x4"}, func(s *testnet.Scenario) { s.Groups = []testnet.GroupSpec{{Count: 2, Size: 12}, {Count: 1, Size: 4}} }},
		{"partitions", []string{"--partitions", "2s/3s/0.3,10s/1s"}, func(s *testnet.Scenario) {
			s.Partitions = []testnet.Partition{
				{At: testnet.Duration(2 * time.Second), Duration: testnet.Duration(3 * time.Second), Split: 0.3},
				{At: testnet.Duration(10 * time.Second), Duration: testnet.Duration(time.Second), Split: 0.5}}
		}},
		{"no partitions", []string{"--partitions", ""}, func(s *testnet.Scenario) { s.Partitions = nil }},
		{"removals and rotations", []string{"--removals", "8s,12s/1", "--rotations", "14s"}, func(s *testnet.Scenario) {
			s.Removals = []testnet.ManageOp{{At: testnet.Duration(8 * time.Second)}, {At: testnet.Duration(12 * time.Second), Group: &one}}
			s.Rotations = []testnet.ManageOp{{At: testnet.Duration(14 * time.Second)}}
		}},
		{"no removals", []string{"--removals", ""}, func(s *testnet.Scenario) { s.Removals = nil }},
		// Periods count in the duration given on the same command line.
		{"periodic", []string{"--duration", "25s", "--rotate-every", "10s", "--remove-every", "12s"}, func(s *testnet.Scenario) {
			s.Duration = testnet.Duration(25 * time.Second)
			s.Rotations = []testnet.ManageOp{{At: testnet.Duration(10 * time.Second)}, {At: testnet.Duration(20 * time.Second)}}
			s.Removals = append(s.Removals, testnet.ManageOp{At: testnet.Duration(12 * time.Second)}, testnet.ManageOp{At: testnet.Duration(24 * time.Second)})
		}},
		{"baseline back on", []string{"--no-baseline=false"}, func(s *testnet.Scenario) { on := true; s.Baseline = &on }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := file
			got, err := applyFlags(t, base, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := file
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestTestnetBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--groups", "2x"}, "--groups"},
		{[]string{"--groups", "2x12", "--group-size", "4"}, "leave out --group-size"},
		{[]string{"--partitions", "5s"}, "--partitions"},
		{[]string{"--removals", "8s/x"}, "--removals"},
		{[]string{"--rotations", "soon"}, "--rotations"},
		{[]string{"--rotate-every", "0s"}, "--rotate-every"},
		{[]string{"--duration", "1h", "--remove-every", "1ms"}, "--remove-every"},
		{[]string{"--strategies", "cloud"}, "--strategies"},
	} {
		_, err := applyFlags(t, testnet.DefaultScenario(), tc.args...)
		if !errors.Is(err, testnet.ErrScenario) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%v: error %v; want ErrScenario mentioning %q", tc.args, err, tc.mention)
		}
	}
}

// TestTestnetScheduleFromFlags: `testnet schedule` on a YAML scenario,
// with removals (replacing the file's), a periodic rotation (besides the
// file's at 14s) and a partition from flags, prints them in the seed's
// schedule; values Validate refuses are refused.
func TestTestnetScheduleFromFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"testnet", "schedule", "--scenario", "../../testnet/scenarios/managed.yaml",
		"--churn", "0", "--removals", "5s,9s", "--rotate-every", "10s", "--partitions", "12s/4s/0.6"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var sch testnet.Schedule
	if err := json.Unmarshal(out.Bytes(), &sch); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range sch.Events {
		if ev.Kind != testnet.EventSend {
			got = append(got, string(ev.Kind)+"@"+ev.At.String())
		}
	}
	want := []string{"remove@5s", "remove@9s", "rotate@10s", "partition@12s", "rotate@14s", "heal@16s", "rotate@20s"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v; want %v", got, want)
	}

	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"testnet", "schedule", "--scenario", "../../testnet/scenarios/managed.yaml",
		"--removals", "31s"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "removals[0]: at 31s") {
		t.Fatalf("exit %d, stderr %q; want the removal past the end refused", code, errOut.String())
	}
}

// TestTestnetCompareFiles: `testnet compare A B` prints the figures of
// both files with their difference; one file alone is refused.
func TestTestnetCompareFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, p99 float64) string {
		res := &testnet.Results{Scenario: testnet.DefaultScenario(), Mode: "memory", Runs: 1, Seeds: []uint64{1},
			Strategies: []testnet.StrategyResult{{Strategy: testnet.StrategyServer, DeliveryRatio: 1,
				LatencyMs: testnet.Percentiles{N: 10, P50: 40, P90: 50, P99: p99, Max: p99}}}}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		path := dir + "/" + name
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b := write("a.json", 60), write("b.json", 75)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"testnet", "compare", a, b}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"latency_ms.p99", "60", "75", "+25.0%", "n/a (one run)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"testnet", "compare", a}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "two results files") {
		t.Fatalf("one file: exit %d, %q", code, errOut.String())
	}
}
