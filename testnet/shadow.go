package testnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Shadow export. ExportShadow lays out a plan (homes, plan.json,
// rendezvous and log directories) and writes the configuration of the
// Shadow discrete-event network simulator for it:
//
//   - network.gml: one graph node with a self-loop edge (every host is
//     attached to it, and Shadow routes host to host over the self-loop):
//     latency = the scenario's link latency (Shadow refuses 0: at least
//     1 µs), packet_loss = the scenario's loss (per segment there, per
//     packet here), jitter = the scenario's jitter (Shadow accepts the key
//     and does not apply it yet), host_bandwidth_up/down = the link's
//     bandwidth (Shadow models each host's access link; the in-memory
//     simulator each pair's link) or 1 Gbit when unlimited.
//   - shadow.yaml: general (stop_time after the last agent's end, the
//     seed, model_unblocked_syscall_latency for Go's spinning runtime),
//     network (the GML file), and one host per node, named n0000…, whose
//     processes are `meshnode run` once per online period (churn: a
//     shutdown_time with SIGTERM, the daemon exits 0; the last period runs
//     to the end) and `meshnode testnet agent` (exits 0 when done).
//
// Node i listens on TCP port BasePort+i: in Shadow every host has its own
// address, and the same files run unchanged as plain processes on one
// loopback (the export's test). After the simulation, Collect (the
// `testnet collect DIR` command) reads the agents' logs.

// ShadowOptions configure an export.
type ShadowOptions struct {
	// Binary is the meshnode binary the hosts run (an absolute path).
	Binary string
	// Setup: time to start and form the groups (0: defaultSetup).
	Setup time.Duration
	// BasePort: node i listens on BasePort+i.
	BasePort int
}

// ShadowExport describes what ExportShadow wrote.
type ShadowExport struct {
	Config, Graph, Plan string
	Hosts               int
	StopTime            time.Duration
}

// shadowConfig is shadow.yaml (keys as Shadow's configuration
// specification names them).
type shadowConfig struct {
	General struct {
		StopTime                     string `yaml:"stop_time"`
		Seed                         uint32 `yaml:"seed"`
		ModelUnblockedSyscallLatency bool   `yaml:"model_unblocked_syscall_latency"`
	} `yaml:"general"`
	Network struct {
		Graph struct {
			Type string `yaml:"type"`
			File struct {
				Path string `yaml:"path"`
			} `yaml:"file"`
		} `yaml:"graph"`
	} `yaml:"network"`
	Hosts map[string]shadowHost `yaml:"hosts"`
}

type shadowHost struct {
	NetworkNodeID int             `yaml:"network_node_id"`
	Processes     []shadowProcess `yaml:"processes"`
}

type shadowProcess struct {
	Path               string            `yaml:"path"`
	Args               []string          `yaml:"args"`
	Environment        map[string]string `yaml:"environment,omitempty"`
	StartTime          string            `yaml:"start_time"`
	ShutdownTime       string            `yaml:"shutdown_time,omitempty"`
	ShutdownSignal     string            `yaml:"shutdown_signal,omitempty"`
	ExpectedFinalState any               `yaml:"expected_final_state"`
}

// shadowTime writes a duration as Shadow reads it ("1500 ms").
func shadowTime(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%d s", d/time.Second)
	}
	if d%time.Millisecond == 0 {
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
	return fmt.Sprintf("%d us", d/time.Microsecond)
}

// parseShadowTime reads what shadowTime writes.
func parseShadowTime(s string) (time.Duration, error) {
	return time.ParseDuration(strings.ReplaceAll(s, " ", ""))
}

func hostName(i int) string { return fmt.Sprintf("n%04d", i) }

// ExportShadow writes a Shadow configuration of one strategy's run of s
// into dir.
func ExportShadow(dir string, s Scenario, st Strategy, o ShadowOptions) (*ShadowExport, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := checkProcessScenario(&s); err != nil {
		return nil, err
	}
	if s.ManagedGroups() {
		return nil, fmt.Errorf("%w: managed groups are not exported yet (the agents form plain groups)", ErrScenario)
	}
	if !filepath.IsAbs(o.Binary) {
		return nil, fmt.Errorf("%w: the binary must be an absolute path (Shadow runs every host in its own directory): %q", ErrScenario, o.Binary)
	}
	n := s.Peers + infraCount(&s, st)
	if o.BasePort < 1024 || o.BasePort+n > 65535 {
		return nil, fmt.Errorf("%w: base port %d: want 1024 to %d for %d nodes", ErrScenario, o.BasePort, 65535-n, n)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("%w: %s is not empty", ErrScenario, dir)
	}
	setup := o.Setup
	if setup == 0 {
		setup = defaultSetup(n)
	}
	p, planPath, err := preparePlan(dir, s, st, setup, func(i int) string { return fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", o.BasePort+i) })
	if err != nil {
		return nil, err
	}
	ex := &ShadowExport{Config: filepath.Join(p.Logs, "..", "shadow.yaml"), Graph: filepath.Join(p.Logs, "..", "network.gml"), Plan: planPath, Hosts: n}
	ex.Config, ex.Graph = filepath.Clean(ex.Config), filepath.Clean(ex.Graph)
	ex.StopTime = (p.End() + 30*time.Second).Truncate(time.Second)

	if err := os.WriteFile(ex.Graph, []byte(shadowGraph(&s)), 0o644); err != nil {
		return nil, err
	}
	var cfg shadowConfig
	cfg.General.StopTime = shadowTime(ex.StopTime)
	cfg.General.Seed = uint32(s.Seed)
	cfg.General.ModelUnblockedSyscallLatency = true
	cfg.Network.Graph.Type = "gml"
	cfg.Network.Graph.File.Path = ex.Graph
	cfg.Hosts = map[string]shadowHost{}
	for _, hp := range planProcesses(p, planPath) {
		h := cfg.Hosts[hostName(hp.Node)]
		sp := shadowProcess{Path: o.Binary, Args: hp.Args, StartTime: shadowTime(hp.Start), ExpectedFinalState: map[string]int{"exited": 0}}
		switch {
		case hp.Agent:
		case hp.Stop > 0:
			sp.ShutdownTime, sp.ShutdownSignal = shadowTime(hp.Stop), "SIGTERM"
		default:
			sp.ExpectedFinalState = "running"
		}
		h.Processes = append(h.Processes, sp)
		cfg.Hosts[hostName(hp.Node)] = h
	}
	b, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# Shadow configuration exported by `meshnode testnet export shadow`: scenario %q, seed %d, strategy %s,\n"+
		"# %d hosts. Run: shadow %s — then: meshnode testnet collect %s\n", s.Name, s.Seed, st, n, ex.Config, filepath.Dir(ex.Config))
	if err := os.WriteFile(ex.Config, append([]byte(head), b...), 0o644); err != nil {
		return nil, err
	}
	return ex, nil
}

// shadowGraph is the GML network graph of a scenario's link.
func shadowGraph(s *Scenario) string {
	lat := max(s.Link.Latency.D(), time.Microsecond)
	bw := "1 Gbit"
	if s.Link.Bandwidth > 0 {
		bw = fmt.Sprintf("%d Kbit", max(1, s.Link.Bandwidth*8/1000))
	}
	return fmt.Sprintf(`graph [
  directed 0
  node [
    id 0
    label "every host: the scenario's link, latency %v, jitter %v, loss %g, bandwidth %d B/s"
    host_bandwidth_down "%s"
    host_bandwidth_up "%s"
  ]
  edge [
    source 0
    target 0
    latency "%s"
    jitter "%s"
    packet_loss %g
  ]
]
`, s.Link.Latency.D(), s.Link.Jitter.D(), s.Link.Loss, s.Link.Bandwidth, bw, bw, shadowTime(lat), shadowTime(s.Link.Jitter.D()), s.Link.Loss)
}

// readShadowProcesses reads the processes of an exported shadow.yaml, as
// they are to be run (node indexes from the host names).
func readShadowProcesses(path string) ([]hostProcess, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var cfg shadowConfig
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	var out []hostProcess
	binary := ""
	for name, h := range cfg.Hosts {
		var idx int
		if _, err := fmt.Sscanf(name, "n%d", &idx); err != nil {
			return nil, "", fmt.Errorf("%s: host %q: %w", path, name, err)
		}
		for _, sp := range h.Processes {
			start, err := parseShadowTime(sp.StartTime)
			if err != nil {
				return nil, "", err
			}
			hp := hostProcess{Node: idx, Args: sp.Args, Start: start, Agent: len(sp.Args) > 1 && sp.Args[0] == "testnet" && sp.Args[1] == "agent"}
			if sp.ShutdownTime != "" {
				if hp.Stop, err = parseShadowTime(sp.ShutdownTime); err != nil {
					return nil, "", err
				}
			}
			binary = sp.Path
			out = append(out, hp)
		}
	}
	return out, binary, nil
}
