package testnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// notMeasuredByProcesses are the figures real processes do not report:
// application bytes per protocol (the in-memory simulator counts them on
// its own streams), envelopes received twice (a node metric the agents do
// not scrape) and the baseline (a second gossipsub router exists only in
// the simulator).
var notMeasuredByProcesses = []string{"bytes_per_node", "bytes", "duplicates.stored", "duplicates.stored_per_message", "baseline", "overhead_ms"}

// readLogs reads every agent log of a plan, events sorted by time.
func readLogs(p *Plan) ([]logEvent, error) {
	files, err := filepath.Glob(filepath.Join(p.Logs, "agent-*.jsonl"))
	if err != nil {
		return nil, err
	}
	var evs []logEvent
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for line := 1; sc.Scan(); line++ {
			var ev logEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				// A line cut short by a killed agent is the only
				// acceptable damage: the last one.
				continue
			}
			if ev.Node < 0 || ev.Node >= len(p.Nodes) {
				fh.Close()
				return nil, fmt.Errorf("%w: %s:%d: node %d is not in the plan", ErrScenario, f, line, ev.Node)
			}
			evs = append(evs, ev)
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].T < evs[j].T })
	return evs, nil
}

// Collect turns the agents' logs of a plan into the strategy's results,
// with the same collector as the in-memory simulator. memPerNode is the
// daemons' mean resident memory (0: unknown).
func Collect(p *Plan, memPerNode int64) (StrategyResult, []string, error) {
	evs, err := readLogs(p)
	if err != nil {
		return StrategyResult{}, nil, err
	}
	s := p.Scenario
	off := false
	s.Baseline = &off
	sch := NewSchedule(&s)
	env := &runEnv{s: &s, sch: sch, st: p.Strategy, n: len(p.Nodes), memPerNode: memPerNode, notMeasured: notMeasuredByProcesses}
	hosting := map[int]bool{}
	for gi, g := range sch.Groups {
		for _, h := range groupHosts(&s, p.Strategy, gi, g) {
			hosting[h] = true
		}
	}
	env.finals = make([]nodeFinal, len(p.Nodes))
	for i, n := range p.Nodes {
		if !n.Member {
			env.infra = append(env.infra, i)
		}
		env.finals[i] = nodeFinal{member: n.Member, hosting: hosting[i], usage: HostStorage{Node: i, Role: n.Role}}
	}
	sends := map[int]Event{}
	for _, ev := range sch.Events {
		if ev.Kind == EventSend {
			sends[ev.Msg] = ev
		}
	}
	var t0, finalAt int64
	var warnings []string
	ready := map[int]bool{}
	for _, ev := range evs {
		switch ev.Kind {
		case logStart:
			if t0 == 0 || ev.T < t0 {
				t0 = ev.T
			}
		case logReady:
			ready[ev.Node] = true
		case logLate:
			warnings = append(warnings, fmt.Sprintf("node %d had not formed its groups when the traffic started", ev.Node))
		case logSetupFailed:
			warnings = append(warnings, fmt.Sprintf("node %d: %s", ev.Node, ev.Err))
		case logFinal:
			finalAt = max(finalAt, ev.T)
		}
	}
	if t0 == 0 {
		return StrategyResult{}, warnings, fmt.Errorf("testnet: no agent reached the traffic phase (see %s)", p.Logs)
	}
	if n := len(p.Nodes) - len(ready); n > 0 {
		warnings = append(warnings, fmt.Sprintf("%d of %d nodes never formed their groups", n, len(p.Nodes)))
	}
	c := newCollector(env)
	c.start(time.Unix(0, t0))
	for _, ev := range evs {
		at := time.Unix(0, ev.T)
		switch ev.Kind {
		case logSent:
			if se, ok := sends[ev.Msg]; ok && se.Node == ev.Node {
				c.sent(se, at)
			}
		case logShown:
			c.shown(ev.Msg, ev.Node, at, ev.Epoch)
		case logGap:
			c.gapNotice()
		case logSendFailed:
			c.sendFailed()
		case logOffline:
			c.setOnline(ev.Node, false, at)
		case logOnline:
			c.setOnline(ev.Node, true, at)
		case logHeld:
			c.stored(ev.Msg, ev.Node, ev.Epoch)
		case logStore:
			u := &env.finals[ev.Node].usage
			u.Bytes, u.Envelopes, u.Mailboxes = ev.Bytes, ev.Envelopes, ev.Mailboxes
		}
	}
	end := time.Unix(0, t0).Add(s.Duration.D())
	c.endTraffic(end)
	for i := range p.Nodes {
		c.setOnline(i, true, end) // the final phase: every daemon runs
	}
	if finalAt > 0 {
		c.endCatchUp(time.Unix(0, finalAt))
	}
	return c.result(), warnings, nil
}

// CollectResults makes the results of a plan's run from its agents' logs
// (after Shadow, or after processes launched by hand): one run, one
// strategy, in the given mode.
func CollectResults(planPath, mode string) (*Results, error) {
	p, err := ReadPlan(planPath)
	if err != nil {
		return nil, err
	}
	res := newResults(p.Scenario, mode, 1)
	res.Scenario.Strategies = []Strategy{p.Strategy}
	r, _, err := Collect(p, 0)
	if err != nil {
		return nil, err
	}
	res.PerRun = []RunResult{{Seed: p.Scenario.Seed, Schedule: summarise(NewSchedule(&p.Scenario), 0), Strategies: []StrategyResult{r}}}
	res.finish()
	return res, nil
}
