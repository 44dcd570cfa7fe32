package testnet

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Short text forms of the scenario's lists, for command-line flags. Each
// is a comma-separated list; an empty string is an empty list. Errors
// wrap ErrScenario and quote the item that is wrong; Validate still
// checks the values against the rest of the scenario.
//
//	groups:      COUNTxSIZE            "10x20,1x100"
//	partitions:  AT/DURATION[/SPLIT]   "5s/10s/0.5,20s/5s" (SPLIT 0.5)
//	removals,
//	rotations:   AT[/GROUP]            "8s,20s/1" (no GROUP: every group)

// maxListItems bounds a list given in text form.
const maxListItems = 1000

// splitList splits a comma-separated list, trimming spaces; "" is none.
func splitList(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	items := strings.Split(s, ",")
	if len(items) > maxListItems {
		return nil, fmt.Errorf("%w: %d items; at most %d", ErrScenario, len(items), maxListItems)
	}
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
		if items[i] == "" {
			return nil, fmt.Errorf("%w: empty item in %q", ErrScenario, s)
		}
	}
	return items, nil
}

// ParseGroups reads groups as COUNTxSIZE[,COUNTxSIZE…]: "10x20,1x100" is
// ten groups of 20 members and one of 100.
func ParseGroups(s string) ([]GroupSpec, error) {
	items, err := splitList(s)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]GroupSpec, 0, len(items))
	for _, it := range items {
		c, z, ok := strings.Cut(it, "x")
		count, err1 := strconv.Atoi(c)
		size, err2 := strconv.Atoi(z)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: groups %q: want COUNTxSIZE, such as 4x12", ErrScenario, it)
		}
		out = append(out, GroupSpec{Count: count, Size: size})
	}
	return out, nil
}

// ParsePartitions reads partitions as AT/DURATION[/SPLIT][,…]: "5s/10s/0.5"
// splits the network 5 s into the traffic for 10 s with half the members
// on the infrastructure's side. SPLIT defaults to 0.5.
func ParsePartitions(s string) ([]Partition, error) {
	items, err := splitList(s)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]Partition, 0, len(items))
	for _, it := range items {
		f := strings.Split(it, "/")
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("%w: partition %q: want AT/DURATION or AT/DURATION/SPLIT, such as 5s/10s/0.5", ErrScenario, it)
		}
		at, err := time.ParseDuration(f[0])
		if err != nil {
			return nil, fmt.Errorf("%w: partition %q: start: %v", ErrScenario, it, err)
		}
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return nil, fmt.Errorf("%w: partition %q: duration: %v", ErrScenario, it, err)
		}
		p := Partition{At: Duration(at), Duration: Duration(d), Split: 0.5}
		if len(f) == 3 {
			if p.Split, err = strconv.ParseFloat(f[2], 64); err != nil {
				return nil, fmt.Errorf("%w: partition %q: split: want a fraction such as 0.5", ErrScenario, it)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseManageOps reads removals or rotations as AT[/GROUP][,…]: "8s,20s/1"
// is one at 8 s in every group and one at 20 s in group 1 (groups are
// numbered from 0 in the order of the scenario's groups).
func ParseManageOps(s string) ([]ManageOp, error) {
	items, err := splitList(s)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	out := make([]ManageOp, 0, len(items))
	for _, it := range items {
		a, g, hasGroup := strings.Cut(it, "/")
		at, err := time.ParseDuration(a)
		if err != nil {
			return nil, fmt.Errorf("%w: operation %q: want AT or AT/GROUP, such as 8s or 20s/1: %v", ErrScenario, it, err)
		}
		op := ManageOp{At: Duration(at)}
		if hasGroup {
			gi, err := strconv.Atoi(g)
			if err != nil {
				return nil, fmt.Errorf("%w: operation %q: group %q is not a group number", ErrScenario, it, g)
			}
			op.Group = &gi
		}
		out = append(out, op)
	}
	return out, nil
}

// Every returns operations in every group at every, 2×every, … before
// end (the traffic phase's duration): a periodic rotation or removal.
func Every(every, end time.Duration) ([]ManageOp, error) {
	if every <= 0 {
		return nil, fmt.Errorf("%w: period %v: want more than 0", ErrScenario, every)
	}
	if n := end / every; n > maxListItems {
		return nil, fmt.Errorf("%w: every %v in %v is %d operations; at most %d", ErrScenario, every, end, n, maxListItems)
	}
	var out []ManageOp
	for at := every; at < end; at += every {
		out = append(out, ManageOp{At: Duration(at)})
	}
	return out, nil
}
