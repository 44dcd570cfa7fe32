package testnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// FuzzParse: any bytes give a scenario or an ErrScenario, never a panic;
// a parsed scenario validates or is refused with a sentinel, and a valid
// one yields a schedule.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("scenarios/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	def, _ := json.Marshal(DefaultScenario())
	f.Add(def)
	f.Add([]byte(`{"peers": 3, "groups": [{"count": 1, "size": 3}], "duration": "1s"}`))
	f.Add([]byte(`{"peers": 6, "peer_hosts": 1, "groups": [{"count": 2, "size": 5}], "removals": [{"at": "1s", "group": 1}], "rotations": [{"at": "2s"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrScenario) {
				t.Fatalf("parse error without ErrScenario: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			if !errors.Is(err, ErrScenario) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("validate error without a sentinel: %v", err)
			}
			return
		}
		// Keep schedules small enough to draw quickly.
		if s.ScheduleEvents() > 1e5 {
			return
		}
		sch := NewSchedule(&s)
		if len(sch.Groups) != s.groupCount() {
			t.Fatalf("%d groups drawn, want %d", len(sch.Groups), s.groupCount())
		}
	})
}

// FuzzParseYAML: any bytes give a scenario or an ErrScenario, never a
// panic; a scenario that validates reads back equal from its JSON
// encoding (the two loaders mean the same). A YAML round trip is not
// checked: yaml.v3's emitter writes some strings it cannot read back.
func FuzzParseYAML(f *testing.F) {
	files, _ := filepath.Glob("scenarios/*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b) // JSON is YAML too.
		if s, err := Load(name); err == nil {
			y, err := yaml.Marshal(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(y)
		}
	}
	f.Add([]byte("peers: 3\ngroups: [{count: 1, size: 3}]\nduration: 1s\n"))
	f.Add([]byte("peers: 6\npeer_hosts: 1\ngroups:\n  - {count: 2, size: 5}\nremovals: [{at: 1s, group: 1}]\nrotations:\n  - at: 2s\n"))
	f.Add([]byte("a: &x [1, 2]\nb: *x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseYAML(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrScenario) {
				t.Fatalf("parse error without ErrScenario: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			if !errors.Is(err, ErrScenario) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("validate error without a sentinel: %v", err)
			}
			if !errors.Is(err, ErrTooLarge) {
				return
			}
		}
		j, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal a valid scenario to JSON: %v", err)
		}
		fromJSON, err := Parse(bytes.NewReader(j))
		if err != nil || !sameScenario(fromJSON, s) {
			t.Fatalf("YAML and JSON disagree: %v\n%s\n%+v\n%+v", err, j, fromJSON, s)
		}
	})
}

// sameScenario compares scenarios, an empty list equal to an absent one.
func sameScenario(a, b Scenario) bool {
	for _, s := range []*Scenario{&a, &b} {
		if len(s.Strategies) == 0 {
			s.Strategies = nil
		}
		if len(s.Groups) == 0 {
			s.Groups = nil
		}
		if len(s.Partitions) == 0 {
			s.Partitions = nil
		}
		if len(s.Removals) == 0 {
			s.Removals = nil
		}
		if len(s.Rotations) == 0 {
			s.Rotations = nil
		}
	}
	return reflect.DeepEqual(a, b)
}

// FuzzParsePlan: a plan.json from disk never panics the agent; what is
// accepted is consistent.
func FuzzParsePlan(f *testing.F) {
	p := &Plan{Scenario: DefaultScenario(), Strategy: StrategyPeers, Setup: Duration(time.Second), TrafficAt: Duration(2 * time.Second)}
	for i := range p.Scenario.Peers {
		p.Nodes = append(p.Nodes, PlanNode{Index: i, Member: true, Role: "member", Home: "/h"})
	}
	b, _ := json.Marshal(p)
	f.Add(b)
	f.Add([]byte(`{"nodes":[{"index":0}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePlan(b)
		if err != nil {
			return
		}
		if len(p.Nodes) != p.Scenario.Peers+infraCount(&p.Scenario, p.Strategy) {
			t.Fatalf("accepted a plan with %d nodes", len(p.Nodes))
		}
	})
}

// FuzzParseResults: compare and report read any results.json without
// panicking, and what they accept renders.
func FuzzParseResults(f *testing.F) {
	b, _ := json.Marshal(sampleResults())
	f.Add(b)
	f.Add([]byte(`{"strategies":[{"strategy":"server","latency_ms":{"n":-1}}],"runs":-3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResults(b)
		if err != nil {
			return
		}
		_ = Compare(r, r, true)
		_ = WriteReport(io.Discard, r)
	})
}
