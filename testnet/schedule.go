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
// which members churn, and every event of the traffic phase. Every
// strategy runs the same schedule.
type Schedule struct {
	Seed     uint64      `json:"seed"`
	Groups   []GroupPlan `json:"groups"`
	Churned  []int       `json:"churned"`
	Events   []Event     `json:"events"`
	Messages int         `json:"messages"`
}

// Independent random streams per aspect, so that changing the churn does
// not move the groups or the traffic drawn from the same seed.
const (
	streamGroups uint64 = iota + 1
	streamChurn
	streamTraffic
	streamPartition
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

	// Traffic: a Poisson process per group; the author is drawn among the
	// members online at that moment (none online: nothing is sent).
	rt := rngFor(s.Seed, streamTraffic)
	meanGap := float64(time.Second) / s.Traffic.Rate
	var sends []Event
	for gi, g := range sch.Groups {
		for t := time.Duration(rt.ExpFloat64() * meanGap); t < end; t += time.Duration(rt.ExpFloat64() * meanGap) {
			var cands []int
			for _, m := range g.Members {
				if online(m, t) {
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
