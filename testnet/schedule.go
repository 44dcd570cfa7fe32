package testnet

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// EventKind is what happens at a point of the schedule.
type EventKind string

const (
	// EventSend: member Node sends message Msg to group Group.
	EventSend EventKind = "send"
	// EventOffline: member Node loses every link.
	EventOffline EventKind = "offline"
	// EventOnline: member Node comes back and reconnects to its groups'
	// hosts.
	EventOnline EventKind = "online"
	// EventPartition: the network splits by Side.
	EventPartition EventKind = "partition"
	// EventHeal: the partition ends.
	EventHeal EventKind = "heal"
	// EventRemove: the manager of Group removes member Node (and rotates).
	EventRemove EventKind = "remove"
	// EventRotate: the manager of Group starts a new epoch.
	EventRotate EventKind = "rotate"
)

// Event is one step of a schedule, At after the traffic phase starts.
type Event struct {
	At    time.Duration `json:"at"`
	Kind  EventKind     `json:"kind"`
	Node  int           `json:"node,omitempty"`
	Group int           `json:"group,omitempty"`
	Msg   int           `json:"msg,omitempty"`
	// Side is the partition side of every member (infrastructure nodes
	// are always on side 0).
	Side []int `json:"side,omitempty"`
}

// GroupPlan is one group's membership: member indexes, the creator first.
// The first PeerHosts members host it under the peers and hybrid
// strategies.
type GroupPlan struct {
	Members []int `json:"members"`
}

// Schedule is everything a scenario's seed decides: group memberships,
// which members churn, which members are removed, and every event of the
// traffic phase. Every
// strategy runs the same schedule.
type Schedule struct {
	Seed     uint64      `json:"seed"`
	Groups   []GroupPlan `json:"groups"`
	Churned  []int       `json:"churned"`
	Events   []Event     `json:"events"`
	Messages int         `json:"messages"`
	// Removals and Rotations count the manager operations scheduled.
	Removals  int `json:"removals,omitempty"`
	Rotations int `json:"rotations,omitempty"`
}

// Independent random streams per aspect, so that changing the churn does
// not move the groups or the traffic drawn from the same seed.
const (
	streamGroups uint64 = iota + 1
	streamChurn
	streamTraffic
	streamPartition
	streamRemovals
)

func rngFor(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// NewSchedule draws the schedule of a (valid) scenario from its seed.
func NewSchedule(s *Scenario) *Schedule {
	sch := &Schedule{Seed: s.Seed}
	end := s.Duration.D()

	rg := rngFor(s.Seed, streamGroups)
	for _, spec := range s.Groups {
		for range spec.Count {
			perm := rg.Perm(s.Peers)
			sch.Groups = append(sch.Groups, GroupPlan{Members: perm[:spec.Size]})
		}
	}

	// Churn: each churned member starts online for a random part of a
	// period, then alternates.
	rc := rngFor(s.Seed, streamChurn)
	offline := make([][][2]time.Duration, s.Peers)
	nChurn := int(math.Round(s.Churn.Fraction * float64(s.Peers)))
	sch.Churned = rc.Perm(s.Peers)[:nChurn]
	sort.Ints(sch.Churned)
	draw := func(mean time.Duration) time.Duration {
		if s.Churn.Distribution == "fixed" {
			return mean
		}
		return max(time.Duration(rc.ExpFloat64()*float64(mean)), 50*time.Millisecond)
	}
	for _, m := range sch.Churned {
		t := time.Duration(rc.Float64() * float64(s.Churn.Online.D()))
		for t < end {
			off := draw(s.Churn.Offline.D())
			sch.Events = append(sch.Events, Event{At: t, Kind: EventOffline, Node: m})
			back := t + off
			offline[m] = append(offline[m], [2]time.Duration{t, back})
			if back >= end {
				break
			}
			sch.Events = append(sch.Events, Event{At: back, Kind: EventOnline, Node: m})
			t = back + draw(s.Churn.Online.D())
		}
	}
	online := func(m int, t time.Duration) bool {
		for _, iv := range offline[m] {
			if t >= iv[0] && t < iv[1] {
				return false
			}
		}
		return true
	}

	removedAt := sch.manageOps(s, offline)
	removed := func(gi, m int, t time.Duration) bool {
		at, ok := removedAt[[2]int{gi, m}]
		return ok && at <= t
	}

	// Traffic: a Poisson process per group; the author is drawn among the
	// members online at that moment (none online: nothing is sent).
	rt := rngFor(s.Seed, streamTraffic)
	meanGap := float64(time.Second) / s.Traffic.Rate
	var sends []Event
	for gi, g := range sch.Groups {
		for t := time.Duration(rt.ExpFloat64() * meanGap); t < end; t += time.Duration(rt.ExpFloat64() * meanGap) {
			var cands []int
			for _, m := range g.Members {
				if online(m, t) && !removed(gi, m, t) {
					cands = append(cands, m)
				}
			}
			pick := rt.IntN(len(g.Members))
			if len(cands) == 0 {
				continue
			}
			sends = append(sends, Event{At: t, Kind: EventSend, Node: cands[pick%len(cands)], Group: gi})
		}
	}
	sort.SliceStable(sends, func(i, j int) bool { return sends[i].At < sends[j].At })
	for i := range sends {
		sends[i].Msg = i
	}
	sch.Messages = len(sends)
	sch.Events = append(sch.Events, sends...)

	rp := rngFor(s.Seed, streamPartition)
	for _, p := range s.Partitions {
		side := make([]int, s.Peers)
		perm := rp.Perm(s.Peers)
		nA := int(math.Round(p.Split * float64(s.Peers)))
		for i, m := range perm {
			if i >= nA {
				side[m] = 1
			}
		}
		sch.Events = append(sch.Events,
			Event{At: p.At.D(), Kind: EventPartition, Side: side},
			Event{At: (p.At + p.Duration).D(), Kind: EventHeal})
	}
	sort.SliceStable(sch.Events, func(i, j int) bool { return sch.Events[i].At < sch.Events[j].At })
	return sch
}

// manageOps adds the removals and rotations to the schedule and returns
// when each removed member leaves its group ((group, member) → offset).
// An operation due while the group's creator is offline moves to its
// return; one that would move past the end is dropped. The removed member
// is drawn among those neither the creator nor a member host.
func (sch *Schedule) manageOps(s *Scenario, offline [][][2]time.Duration) map[[2]int]time.Duration {
	end := s.Duration.D()
	whenOnline := func(m int, t time.Duration) time.Duration {
		for _, iv := range offline[m] {
			if t >= iv[0] && t < iv[1] {
				t = iv[1]
			}
		}
		return t
	}
	type op struct {
		at    time.Duration
		kind  EventKind
		group int
	}
	var ops []op
	add := func(kind EventKind, list []ManageOp) {
		for _, o := range list {
			for gi, g := range sch.Groups {
				if o.Group != nil && *o.Group != gi {
					continue
				}
				if at := whenOnline(g.Members[0], o.At.D()); at < end {
					ops = append(ops, op{at: at, kind: kind, group: gi})
				}
			}
		}
	}
	add(EventRemove, s.Removals)
	add(EventRotate, s.Rotations)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].at < ops[j].at })

	removedAt := map[[2]int]time.Duration{}
	rr := rngFor(s.Seed, streamRemovals)
	for _, o := range ops {
		ev := Event{At: o.at, Kind: o.kind, Group: o.group}
		if o.kind == EventRemove {
			var cands []int
			for _, m := range sch.Groups[o.group].Members[max(1, s.PeerHosts):] {
				if _, gone := removedAt[[2]int{o.group, m}]; !gone {
					cands = append(cands, m)
				}
			}
			if len(cands) == 0 {
				continue // Validate bounds removals per group; kept for safety.
			}
			ev.Node = cands[rr.IntN(len(cands))]
			removedAt[[2]int{o.group, ev.Node}] = o.at
			sch.Removals++
		} else {
			sch.Rotations++
		}
		sch.Events = append(sch.Events, ev)
	}
	return removedAt
}

// removedAt returns, for every removal of the schedule, when the member
// leaves its group ((group, member) → offset).
func (sch *Schedule) removedAt() map[[2]int]time.Duration {
	out := map[[2]int]time.Duration{}
	for _, ev := range sch.Events {
		if ev.Kind == EventRemove {
			out[[2]int{ev.Group, ev.Node}] = ev.At
		}
	}
	return out
}
