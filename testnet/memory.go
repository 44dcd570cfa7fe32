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

// checkMemory refuses a scenario whose estimate exceeds what is available.
func (s *Scenario) checkMemory() error {
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
