package testnet

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory budget of a simulation. What a node costs at rest (heap
// profile after setup, 202 nodes in groups of 20): the two in-memory
// Badger databases' memtable arenas, 1.3 MiB each (MemTableSize 1 MiB,
// the store's minimum, plus Badger's batch room) — two thirds of the
// heap; the member's Follow channel (512 slots, 0.1 MiB; 4,096 slots were
// 0.9 MiB); gossipsub, relay, fetch, hostsync and the mocknet host with
// about 100 goroutines (0.3 MiB of stacks). The member database's block
// cache, which an unencrypted in-memory database does not use, was 0.4
// MiB of ristretto counters (node turns it off since). Go heap and stacks
// after setup: 4.0 MiB per node; see README, Simulator, for RSS at 2,000
// nodes. The estimate errs high.
const (
	// memPerNode is the memory one node is budgeted at rest, with the
	// garbage collector's headroom.
	memPerNode = 7 << 20
	// memPerStoredCopy is what one message costs per node holding it: the
	// padded envelope in the host store and the decrypted message in the
	// member database, with Badger's skiplist overhead.
	memPerStoredCopy = 3 << 10
	// memHeadroom is kept free for the runtime, the report and the OS.
	memHeadroom = 1 << 30
)

// MemoryEstimate is the memory a scenario needs at its largest strategy.
func (s *Scenario) MemoryEstimate() int64 {
	nodes := int64(s.maxNodes())
	msgs := s.Traffic.Rate * s.Duration.D().Seconds()
	var copies float64
	for _, g := range s.Groups {
		copies += float64(g.Count) * msgs * float64(g.Size+s.PeerHosts+s.Hosts)
	}
	return nodes*memPerNode + int64(copies)*(memPerStoredCopy+int64(s.Traffic.Size))
}

// availableMemory reads MemAvailable from /proc/meminfo (0 if unknown).
func availableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// memLimitPerNode is the soft memory limit (runtime/debug.SetMemoryLimit)
// a simulation runs under, per node: the collector then keeps the heap
// near what is live instead of letting it double (GOGC), which is what
// keeps a 2,000-node run within 8 MiB per node. GOMEMLIMIT in the
// environment takes precedence.
const memLimitPerNode = 6 << 20

// memoryLimit is the soft limit for a scenario: memLimitPerNode per node
// plus the headroom, within what is available.
func (s *Scenario) memoryLimit() int64 {
	l := int64(s.maxNodes())*memLimitPerNode + memHeadroom
	if avail := availableMemory(); avail > memHeadroom {
		l = min(l, avail-memHeadroom/2)
	}
	return l
}

// peakRSS reads this process's peak resident memory (VmHWM; 0 if
// unknown).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// loadAverage reads the 1-minute load average (0 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return v
}

// maxScheduleEvents bounds the events a schedule is drawn with (messages
// plus churn transitions): past it, drawing and holding the schedule alone
// takes minutes and gigabytes before the run starts.
const maxScheduleEvents = 2_000_000

// ScheduleEvents estimates how many events the schedule holds: every
// message of every group, and two transitions per churn cycle of every
// churning member.
func (s *Scenario) ScheduleEvents() float64 {
	events := s.Traffic.Rate * s.Duration.D().Seconds() * float64(s.groupCount())
	if cycle := (s.Churn.Online + s.Churn.Offline).D(); s.Churn.Fraction > 0 && cycle > 0 {
		events += 2 * s.Churn.Fraction * float64(s.Peers) * s.Duration.D().Seconds() / cycle.Seconds()
	}
	return events
}

// checkMemory refuses a scenario whose schedule or memory estimate exceeds
// what this machine can hold.
func (s *Scenario) checkMemory() error {
	if n := s.ScheduleEvents(); n > maxScheduleEvents {
		return fmt.Errorf("%w: the schedule would hold about %.0f messages and churn transitions, at most %d; lower the rate, the groups, the duration or the churn, or lengthen churn.online and churn.offline",
			ErrTooLarge, n, maxScheduleEvents)
	}
	avail := availableMemory()
	if avail == 0 {
		return nil
	}
	need := s.MemoryEstimate()
	if need+memHeadroom > avail {
		return fmt.Errorf("%w: %d nodes and %.0f messages need about %s, and %s is available (keeping %s free); lower peers, groups, rate or duration",
			ErrTooLarge, s.maxNodes(), s.Traffic.Rate*s.Duration.D().Seconds()*float64(s.groupCount()),
			mib(need), mib(avail), mib(memHeadroom))
	}
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
