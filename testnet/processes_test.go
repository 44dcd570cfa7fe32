package testnet

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// meshnodeBinary builds cmd/meshnode once for the process tests.
func meshnodeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testnet-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "meshnode")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/meshnode").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build ./cmd/meshnode: %v\n%s", binErr, binPath)
	}
	return binPath
}

// tiny is a scenario real processes run in seconds: four members in one
// group and one host.
func tiny() Scenario {
	s := quick(StrategyServer)
	s.Peers = 4
	s.Groups = []GroupSpec{{Count: 1, Size: 4}}
	s.Duration = Duration(4 * time.Second)
	s.Warmup = Duration(time.Second)
	s.CatchUp = Duration(15 * time.Second)
	s.Deadline = Duration(5 * time.Second)
	return s
}

// shadowKeys are the keys Shadow's configuration specification documents
// (docs/shadow_config_spec.md: general, network, hosts and their
// processes), as paths with * for a host name or a list index.
var shadowKeys = map[string]bool{
	"general": true, "general.stop_time": true, "general.seed": true, "general.model_unblocked_syscall_latency": true,
	"general.bootstrap_end_time": true, "general.data_directory": true, "general.heartbeat_interval": true,
	"general.log_level": true, "general.parallelism": true, "general.progress": true, "general.template_directory": true,
	"network": true, "network.graph": true, "network.graph.type": true, "network.graph.file": true,
	"network.graph.file.path": true, "network.graph.file.compression": true, "network.graph.inline": true,
	"network.use_shortest_path": true,
	"hosts":                     true, "hosts.*": true, "hosts.*.network_node_id": true, "hosts.*.ip_addr": true,
	"hosts.*.bandwidth_down": true, "hosts.*.bandwidth_up": true, "hosts.*.host_options": true,
	"hosts.*.processes": true, "hosts.*.processes.*": true, "hosts.*.processes.*.path": true,
	"hosts.*.processes.*.args": true, "hosts.*.processes.*.args.*": true, "hosts.*.processes.*.environment": true,
	"hosts.*.processes.*.start_time": true, "hosts.*.processes.*.shutdown_time": true,
	"hosts.*.processes.*.shutdown_signal": true, "hosts.*.processes.*.expected_final_state": true,
	"hosts.*.processes.*.expected_final_state.exited": true,
}

// shadowPaths lists the key paths of a YAML document.
func shadowPaths(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix == "hosts" || strings.HasPrefix(prefix, "hosts.") && strings.Count(prefix, ".") == 0 {
				p = "*"
			}
			path := strings.TrimPrefix(prefix+"."+p, ".")
			out[path] = true
			shadowPaths(e, path, out)
		}
	case []any:
		for _, e := range x {
			out[prefix+".*"] = true
			shadowPaths(e, prefix+".*", out)
		}
	}
}

var shadowTimeRe = regexp.MustCompile(`^\d+ (s|ms|us)$`)

// TestShadowExportRunsOnLoopback: `export shadow` writes a shadow.yaml
// whose every key is one Shadow documents, whose times parse, whose
// processes end before stop_time, and a GML graph with the scenario's
// link on a self-loop; then the exported hosts' commands, run as plain
// processes on loopback at their start and shutdown times (a member's
// daemon stopped and restarted by churn), form the group and deliver
// everything, and the collector makes results from the agents' logs.
func TestShadowExportRunsOnLoopback(t *testing.T) {
	bin := meshnodeBinary(t)
	s := tiny()
	s.Link = Link{Latency: Duration(25 * time.Millisecond), Jitter: Duration(5 * time.Millisecond), Bandwidth: 250_000, Loss: 0.01}
	s.Churn = Churn{Fraction: 0.25, Online: Duration(time.Second), Offline: Duration(1500 * time.Millisecond), Distribution: "fixed"}
	dir := t.TempDir()
	ex, err := ExportShadow(dir, s, StrategyServer, ShadowOptions{Binary: bin, Setup: 8 * time.Second, BasePort: 23100})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(ex.Config)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	shadowPaths(doc, "", paths)
	for p := range paths {
		if !shadowKeys[p] {
			t.Errorf("shadow.yaml has %q, which Shadow does not document", p)
		}
	}
	for _, want := range []string{"general.stop_time", "network.graph.type", "network.graph.file.path", "hosts.*.network_node_id", "hosts.*.processes.*.path", "hosts.*.processes.*.start_time"} {
		if !paths[want] {
			t.Errorf("shadow.yaml lacks %q", want)
		}
	}
	var cfg shadowConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	stopAt, err := parseShadowTime(cfg.General.StopTime)
	if err != nil || !shadowTimeRe.MatchString(cfg.General.StopTime) {
		t.Fatalf("stop_time %q: %v", cfg.General.StopTime, err)
	}
	if len(cfg.Hosts) != 5 {
		t.Fatalf("%d hosts; want 5", len(cfg.Hosts))
	}
	restarts := 0
	for name, h := range cfg.Hosts {
		daemons := 0
		for _, p := range h.Processes {
			if !filepath.IsAbs(p.Path) {
				t.Errorf("%s: path %q is not absolute", name, p.Path)
			}
			for _, tm := range []string{p.StartTime, p.ShutdownTime} {
				if tm == "" {
					continue
				}
				d, err := parseShadowTime(tm)
				if err != nil || !shadowTimeRe.MatchString(tm) || d >= stopAt {
					t.Errorf("%s: time %q (%v) must be a Shadow time before stop_time %v", name, tm, err, stopAt)
				}
			}
			if p.ShutdownTime != "" && p.ShutdownSignal != "SIGTERM" {
				t.Errorf("%s: shutdown without SIGTERM", name)
			}
			if p.Args[0] == "run" {
				daemons++
			}
		}
		restarts += daemons - 1
	}
	if restarts == 0 {
		t.Errorf("churn stops no daemon")
	}
	gml, err := os.ReadFile(ex.Graph)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"source 0", "target 0", `latency "25 ms"`, "packet_loss 0.01", `host_bandwidth_up "2000 Kbit"`, `jitter "5 ms"`} {
		if !bytes.Contains(gml, []byte(want)) {
			t.Errorf("network.gml lacks %q:\n%s", want, gml)
		}
	}

	// Run the exported commands on loopback. The link is not modelled
	// here (loopback), which does not change what must be delivered.
	procs, binary, err := readShadowProcesses(ex.Config)
	if err != nil {
		t.Fatal(err)
	}
	if binary != bin {
		t.Fatalf("binary %q; want %q", binary, bin)
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].Start < procs[j].Start })
	p, err := ReadPlan(ex.Plan)
	if err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "out")
	if _, err := launch(context.Background(), p, procs, binary, outDir, newProgress(nil, false, "", 0)); err != nil {
		t.Fatal(err)
	}
	r, warnings, err := Collect(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loopback run of the export: %d messages, delivery %.4f, eventual %.4f, latency %+v, catch-up %+v, warnings %v",
		r.Messages, r.DeliveryRatio, r.EventualDeliveryRatio, r.LatencyMs, r.CatchUpMs, warnings)
	if r.Messages == 0 || r.EventualDeliveryRatio != 1 || r.Duplicates.Shown != 0 || len(warnings) > 0 {
		logs, _ := filepath.Glob(filepath.Join(outDir, "*"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatalf("messages %d, eventual delivery %.4f, shown twice %d, warnings %v", r.Messages, r.EventualDeliveryRatio, r.Duplicates.Shown, warnings)
	}
	if r.Storage.Hosts != 1 || r.Storage.PerHost[0].Envelopes == 0 {
		t.Errorf("the host's store: %+v", r.Storage)
	}
}

// TestRunProcesses: --processes runs every node as a daemon with an agent
// and reports through the same collector; what processes cannot measure
// is n/a, not 0.
func TestRunProcesses(t *testing.T) {
	bin := meshnodeBinary(t)
	res, err := RunProcesses(context.Background(), tiny(), bin, t.TempDir(), WithSetup(8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r := res.Strategies[0]
	t.Logf("processes: %d messages, delivery %.4f, eventual %.4f, latency %+v, memory per daemon %d", r.Messages, r.DeliveryRatio, r.EventualDeliveryRatio, r.LatencyMs, r.MemoryPerNode)
	if res.Mode != ModeProcesses || r.Messages == 0 || r.DeliveryRatio != 1 || r.EventualDeliveryRatio != 1 || r.LatencyMs.N == 0 {
		t.Fatalf("mode %s, %d messages, delivery %.4f, eventual %.4f", res.Mode, r.Messages, r.DeliveryRatio, r.EventualDeliveryRatio)
	}
	if r.MemoryPerNode <= 0 {
		t.Errorf("no resident memory measured")
	}
	if _, ok := r.Stats["bytes_per_node"]; ok {
		t.Errorf("bytes are not measured by processes, yet have stats")
	}
	var b bytes.Buffer
	if err := WriteReport(&b, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "not modelled: TCP on loopback") {
		t.Errorf("the report does not say the link is not modelled")
	}
}
