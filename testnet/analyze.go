package testnet

import (
	"math"
	"slices"
	"sort"
	"time"
)

// result computes a strategy's metrics from what the collector saw.
func (c *collector) result() StrategyResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.m
	s := m.s
	deadline := s.Deadline.D()
	seconds := int(math.Ceil(s.Duration.D().Seconds()))
	r := StrategyResult{
		Strategy: m.st, Nodes: m.n, Members: s.Peers, Infra: len(m.infra),
		Messages: len(c.sends), SendsFailed: c.sendFails, MemoryPerNode: m.memPerNode,
		NotMeasured: m.notMeasured,
	}

	msgs := make([]int, 0, len(c.sends))
	for id := range c.sends {
		msgs = append(msgs, id)
	}
	sort.Ints(msgs)

	var lat, baseLat []float64
	var pairs, delivered, basePairs, baseDelivered, evPairs, evHeld int
	bucketPairs := make([]int, seconds)
	bucketOK := make([]int, seconds)
	baseBucketOK := make([]int, seconds)
	for _, id := range msgs {
		at, ev := c.sends[id], c.msgEv[id]
		b := min(max(int(at.Sub(c.t0)/time.Second), 0), seconds-1)
		for _, rc := range m.sch.Groups[ev.Group].Members {
			if !c.isRecipient(ev, rc) {
				continue
			}
			k := [2]int{id, rc}
			evPairs++
			if _, ok := c.first[k]; ok || c.held[k] {
				evHeld++
			}
			if !c.onlineThroughout(rc, at, at.Add(deadline)) {
				continue
			}
			pairs++
			bucketPairs[b]++
			if t, ok := c.first[k]; ok && t.Sub(at) <= deadline {
				delivered++
				bucketOK[b]++
				lat = append(lat, ms(t.Sub(at)))
			}
			if s.BaselineOn() {
				basePairs++
				if t, ok := c.baseFirst[k]; ok && t.Sub(at) <= deadline {
					baseDelivered++
					baseBucketOK[b]++
					baseLat = append(baseLat, ms(t.Sub(at)))
				}
			}
		}
	}
	r.DeliveryPairs, r.EventualPairs = pairs, evPairs
	r.DeliveryRatio = ratio(delivered, pairs)
	r.EventualDeliveryRatio = ratio(evHeld, evPairs)
	r.LatencyMs = percentiles(lat)
	r.Series.LatencyCDF = cdf(lat)
	r.Gaps.Open = evPairs - evHeld
	r.Gaps.Notices = c.gapNotices
	r.Duplicates.Shown = c.dupShown
	for i := range seconds {
		r.Series.Delivery = append(r.Series.Delivery, bucketRatio(bucketOK[i], bucketPairs[i]))
		if s.BaselineOn() {
			r.Series.BaselineDelivery = append(r.Series.BaselineDelivery, bucketRatio(baseBucketOK[i], bucketPairs[i]))
		}
		online := 0
		t := c.t0.Add(time.Duration(i)*time.Second + time.Second/2)
		for n := range s.Peers {
			if c.onlineThroughout(n, t, t.Add(time.Nanosecond)) {
				online++
			}
		}
		r.Series.Online = append(r.Series.Online, online)
	}

	if s.ManagedGroups() {
		r.Managed = c.managedResult(&r)
	}
	c.catchUps(&r, msgs)
	c.gaps(&r, msgs)
	if !c.catchUpEnd.IsZero() && !c.trafficEnd.IsZero() {
		r.FinalCatchUpSeconds = round2(c.catchUpEnd.Sub(c.trafficEnd).Seconds())
	}

	// Bytes, duplicates and storage.
	var total, infraSum, memberSum, baseSum int64
	for _, f := range m.finals {
		b := f.bytes
		total += b
		r.Bytes.Max = max(r.Bytes.Max, b)
		if f.member {
			memberSum += b
		} else {
			infraSum += b
		}
		baseSum += f.baseBytes
		r.Series.BytesPerNode = append(r.Series.BytesPerNode, b)
		r.Duplicates.Stored += int64(f.dups)
	}
	if m.measured("bytes_per_node") {
		slices.Sort(r.Series.BytesPerNode)
	} else {
		r.Series.BytesPerNode = nil
	}
	r.Bytes.Total = total
	r.BytesPerNode = round2(float64(total) / float64(m.n))
	r.Bytes.MemberMean = round2(float64(memberSum) / float64(s.Peers))
	if len(m.infra) > 0 {
		r.Bytes.InfraMean = round2(float64(infraSum) / float64(len(m.infra)))
	}
	if r.Messages > 0 {
		r.Duplicates.StoredPerMessage = round2(float64(r.Duplicates.Stored) / float64(r.Messages))
	}
	c.storage(&r)

	if s.BaselineOn() {
		r.Baseline = &Baseline{
			DeliveryRatio: ratio(baseDelivered, basePairs),
			LatencyMs:     percentiles(baseLat),
			BytesPerNode:  round2(float64(baseSum) / float64(m.n)),
		}
		r.Series.BaselineCDF = cdf(baseLat)
		if r.LatencyMs.N > 0 && r.Baseline.LatencyMs.N > 0 {
			r.OverheadMs = &Overhead{
				P50: round2(r.LatencyMs.P50 - r.Baseline.LatencyMs.P50),
				P90: round2(r.LatencyMs.P90 - r.Baseline.LatencyMs.P90),
				P99: round2(r.LatencyMs.P99 - r.Baseline.LatencyMs.P99),
			}
		}
	}
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return math.Round(float64(a)/float64(b)*1e4) / 1e4
}

func bucketRatio(a, b int) float64 {
	if b == 0 {
		return -1
	}
	return ratio(a, b)
}

// dupCounter is the node's count of envelopes received again.
const dupCounter = "meshnode_node_envelopes_duplicate_total"

// catchUps measures, for every return of a member during the traffic
// phase, how long it took to show what it had missed.
func (c *collector) catchUps(r *StrategyResult, msgs []int) {
	m := c.m
	var times []float64
	for node := range m.s.Peers {
		ivs := c.offline[node]
		for i, iv := range ivs {
			back := iv.to
			if back.IsZero() || !c.trafficEnd.IsZero() && !back.Before(c.trafficEnd) {
				continue
			}
			var nextOff time.Time
			if i+1 < len(ivs) {
				nextOff = ivs[i+1].from
			}
			pending, done, ok := 0, back, true
			for _, id := range msgs {
				at, ev := c.sends[id], c.msgEv[id]
				if !at.Before(back) || !c.isRecipient(ev, node) {
					continue
				}
				t, shown := c.first[[2]int{id, node}]
				if shown && !t.After(back) {
					continue
				}
				pending++
				if !shown || (!nextOff.IsZero() && t.After(nextOff)) {
					ok = false
					continue
				}
				done = maxTime(done, t)
			}
			if pending == 0 {
				continue
			}
			if !ok {
				r.CatchUpIncomplete++
				continue
			}
			times = append(times, ms(done.Sub(back)))
		}
	}
	r.CatchUpMs = percentiles(times)
	r.Series.CatchUpCDF = cdf(times)
}

// gaps counts, per (member, group, author), messages shown while an
// earlier one was missing (a gap detected) and messages shown after a
// later one (a gap filled).
func (c *collector) gaps(r *StrategyResult, msgs []int) {
	type key struct{ node, group, author int }
	seqs := map[key][]time.Time{}
	never := c.catchUpEnd.Add(time.Hour)
	for _, id := range msgs {
		ev := c.msgEv[id]
		for _, rc := range c.m.sch.Groups[ev.Group].Members {
			if !c.isRecipient(ev, rc) {
				continue
			}
			t, ok := c.first[[2]int{id, rc}]
			if !ok {
				t = never
			}
			k := key{rc, ev.Group, ev.Node}
			seqs[k] = append(seqs[k], t)
		}
	}
	for _, ts := range seqs {
		var prefixMax time.Time
		for _, t := range ts {
			if t != never && prefixMax.After(t) {
				r.Gaps.Detected++
			}
			prefixMax = maxTime(prefixMax, t)
		}
		suffixMin := never
		for i := len(ts) - 1; i >= 0; i-- {
			if ts[i] != never && suffixMin.Before(ts[i]) {
				r.Gaps.Filled++
			}
			if ts[i].Before(suffixMin) {
				suffixMin = ts[i]
			}
		}
	}
}

// storage summarises the store usage of every node that hosts groups
// for others.
func (c *collector) storage(r *StrategyResult) {
	var sum, env int64
	for _, f := range c.m.finals {
		if !f.hosting {
			continue
		}
		u := f.usage
		r.Storage.PerHost = append(r.Storage.PerHost, u)
		sum += u.Bytes
		env += u.Envelopes
		r.Storage.MaxBytes = max(r.Storage.MaxBytes, u.Bytes)
	}
	r.Storage.Hosts = len(r.Storage.PerHost)
	if r.Storage.Hosts > 0 {
		r.Storage.MeanBytes = round2(float64(sum) / float64(r.Storage.Hosts))
		r.Storage.MeanEnvelopes = round2(float64(env) / float64(r.Storage.Hosts))
	}
}
