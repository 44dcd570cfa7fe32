package testnet

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory budget of a simulation. Measured (README, Simulator): Go heap
// and stacks after setup were 8.1 MiB per node at 202 nodes (a group of
// 100) and 5.6 MiB at 1,002 nodes (groups of 20); peak RSS was 8.6 GiB
// for 1,002 nodes, about 9 MiB per node. The estimate errs high.
const (
	// memPerNode is the memory one member node costs at rest: two
	// in-memory Badger databases (host store and member database, 1 MiB
	// memtables each), gossipsub, relay, fetch, hostsync, the mocknet host.
	memPerNode = 12 << 20
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
