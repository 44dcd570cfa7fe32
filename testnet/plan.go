package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Real processes. A Plan describes one strategy's run of a scenario as real
// meshnode daemons, one per node, each with an agent process: the same
// description serves `testnet run --processes` (which launches the
// processes itself on loopback) and `testnet export shadow` (whose
// shadow.yaml has Shadow launch them). Every agent derives the schedule
// from the plan's scenario and seed (NewSchedule is a pure function of
// them), so nothing but the plan is shared up front. Group formation
// needs addresses and invites that exist only once daemons run: agents
// exchange them as small files in the plan's rendezvous directory (the
// hosts' multiaddrs, each group's invite), which works on one machine and
// under Shadow, whose processes share the real file system.
//
// Time: every process is started at an offset from the simulation's start
// (its start time in shadow.yaml); an agent is told its own offset
// (--started-at) and so knows when the simulation started. The traffic
// starts at TrafficAt after that (Setup for forming the groups, then the
// warm-up), and churn stops and restarts daemons at fixed offsets: a
// member offline is its daemon stopped (SIGTERM), as a laptop closed, and
// back online is the same home started again.

// Plan is one strategy's run of a scenario as processes.
type Plan struct {
	Scenario Scenario `json:"scenario"`
	Strategy Strategy `json:"strategy"`
	// Setup is the time given to starting the daemons and forming the
	// groups; TrafficAt = Setup + the scenario's warm-up.
	Setup     Duration `json:"setup"`
	TrafficAt Duration `json:"traffic_at"`
	// Rendezvous and Logs are directories (absolute paths).
	Rendezvous string     `json:"rendezvous"`
	Logs       string     `json:"logs"`
	Nodes      []PlanNode `json:"nodes"`
}

// PlanNode is one node of a plan.
type PlanNode struct {
	Index  int    `json:"index"`
	Member bool   `json:"member"`
	Role   string `json:"role"`
	Home   string `json:"home"`
	// Listen is the node's libp2p listen multiaddr.
	Listen string `json:"listen"`
}

// End is when the last agent may still be working: the traffic, the final
// catch-up limit and the delivery deadline after it.
func (p *Plan) End() time.Duration {
	s := p.Scenario
	return (p.TrafficAt + s.Duration + s.CatchUp + s.Deadline).D()
}

// WritePlan stores a plan as plan.json in dir.
func WritePlan(dir string, p *Plan) (string, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "plan.json")
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadPlan reads and checks a plan.json.
func ReadPlan(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := ParsePlan(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ParsePlan decodes and checks a plan: a valid scenario, a known
// strategy, one node per index in order, durations within bounds.
func ParsePlan(b []byte) (*Plan, error) {
	var p Plan
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: plan: %v", ErrScenario, err)
	}
	if _, err := ParseStrategy(string(p.Strategy)); err != nil {
		return nil, err
	}
	if err := p.Scenario.Validate(); err != nil {
		return nil, err
	}
	if want := p.Scenario.Peers + infraCount(&p.Scenario, p.Strategy); len(p.Nodes) != want {
		return nil, fmt.Errorf("%w: plan: %d nodes, the scenario has %d under %s", ErrScenario, len(p.Nodes), want, p.Strategy)
	}
	for i, n := range p.Nodes {
		if n.Index != i || n.Member != (i < p.Scenario.Peers) || n.Home == "" {
			return nil, fmt.Errorf("%w: plan: node %d is out of order, of the wrong kind, or has no home", ErrScenario, i)
		}
	}
	if p.Setup <= 0 || p.TrafficAt < p.Setup || p.TrafficAt.D() > 2*time.Hour {
		return nil, fmt.Errorf("%w: plan: setup %v and traffic_at %v", ErrScenario, p.Setup.D(), p.TrafficAt.D())
	}
	return &p, nil
}

// checkProcessScenario refuses what real processes cannot reproduce.
func checkProcessScenario(s *Scenario) error {
	if len(s.Partitions) > 0 {
		return fmt.Errorf("%w: partitions need the in-memory network (real processes share one loopback, and Shadow's graph is static); remove them (--partitions \"\")", ErrScenario)
	}
	return nil
}

// rendezvous is the directory agents exchange addresses and invites in.
type rendezvous string

func (r rendezvous) path(name string) string { return filepath.Join(string(r), name) }

// put writes a file atomically (a reader never sees half of it).
func (r rendezvous) put(name string, data []byte) error {
	tmp, err := os.CreateTemp(string(r), "."+name+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), r.path(name))
}

// get reads a file, ok false while it does not exist.
func (r rendezvous) get(name string) ([]byte, bool, error) {
	b, err := os.ReadFile(r.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return b, err == nil, err
}

func addrFile(i int) string    { return fmt.Sprintf("addr-%04d", i) }
func inviteFile(gi int) string { return fmt.Sprintf("invite-%04d", gi) }
func readyFile(i int) string   { return fmt.Sprintf("ready-%04d", i) }

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
