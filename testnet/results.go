package testnet

import "time"

// Results is the machine-readable outcome of a run (results.json). The
// JSON names are a contract.
type Results struct {
	Scenario Scenario `json:"scenario"`
	// Schedule: the first run's (the scenario's own seed).
	Schedule ScheduleSummary `json:"schedule"`
	Machine  Machine         `json:"machine"`
	// Mode is how the nodes ran: "memory" (one process, mocknet) or
	// "processes" (one meshnode daemon per node, TCP on loopback).
	Mode string `json:"mode"`
	// Runs of the scenario and their seeds (DeriveSeed).
	Runs  int      `json:"runs"`
	Seeds []uint64 `json:"seeds"`
	// Strategies: per strategy, the means over the runs (one run: its
	// figures) and every figure's estimate in "stats".
	Strategies []StrategyResult `json:"strategies"`
	// PerRun: each run's own results (only with several runs).
	PerRun  []RunResult `json:"per_run,omitempty"`
	Started time.Time   `json:"started"`
	Elapsed float64     `json:"elapsed_seconds"`
	// Validation: with run --validate, the same scenario in memory and as
	// processes, whose differences the report shows.
	Validation *Validation `json:"validation,omitempty"`
	// PeakRSS is the simulator process's peak resident memory (memory
	// mode: every node is in it), and per node of the largest strategy;
	// MemoryLimit the soft memory limit it ran under (0: GOMEMLIMIT).
	PeakRSS        int64 `json:"peak_rss_bytes,omitempty"`
	PeakRSSPerNode int64 `json:"peak_rss_per_node_bytes,omitempty"`
	MemoryLimit    int64 `json:"memory_limit_bytes,omitempty"`
	// Load is the machine's load average (1 minute) at the start and the
	// end: the nodes share its cores, and latency is wall-clock.
	Load [2]float64 `json:"load_average"`
}

// Modes of a run.
const (
	ModeMemory    = "memory"
	ModeProcesses = "processes"
)

// Validation is one scenario run in both modes.
type Validation struct {
	Memory    *Results `json:"memory"`
	Processes *Results `json:"processes"`
}

// RunResult is one run of a scenario (one seed).
type RunResult struct {
	Seed       uint64           `json:"seed"`
	Schedule   ScheduleSummary  `json:"schedule"`
	Strategies []StrategyResult `json:"strategies"`
	Elapsed    float64          `json:"elapsed_seconds"`
}

// ScheduleSummary describes the seed's schedule.
type ScheduleSummary struct {
	Groups     int `json:"groups"`
	Messages   int `json:"messages"`
	Churned    int `json:"churned_members"`
	Offlines   int `json:"offline_events"`
	Partitions int `json:"partitions"`
	// Removals and Rotations scheduled (managed groups).
	Removals  int `json:"removals,omitempty"`
	Rotations int `json:"rotations,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	CPUs            int    `json:"cpus"`
	AvailableMemory int64  `json:"available_memory_bytes"`
	GoVersion       string `json:"go_version"`
}

// Percentiles of a distribution, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// StrategyResult is one strategy's metrics.
type StrategyResult struct {
	Strategy Strategy `json:"strategy"`
	Nodes    int      `json:"nodes"`
	Members  int      `json:"members"`
	Infra    int      `json:"infrastructure_nodes"`
	// Messages sent, and sends that failed outright at the author.
	Messages    int `json:"messages"`
	SendsFailed int `json:"sends_failed"`

	// DeliveryRatio: of (message, member) pairs whose member was online
	// from the send until the deadline, the fraction shown within it.
	DeliveryRatio float64 `json:"delivery_ratio"`
	DeliveryPairs int     `json:"delivery_pairs"`
	// EventualDeliveryRatio: of every (message, other member of the
	// group) pair, the fraction held after the final catch-up phase.
	EventualDeliveryRatio float64 `json:"eventual_delivery_ratio"`
	EventualPairs         int     `json:"eventual_pairs"`
	// LatencyMs: send → shown (Follow), over pairs delivered within the
	// deadline.
	LatencyMs Percentiles `json:"latency_ms"`
	// CatchUpMs: from a member coming back online until it showed every
	// message of its groups sent while it was away (incomplete ones are
	// counted apart).
	CatchUpMs         Percentiles `json:"catchup_ms"`
	CatchUpIncomplete int         `json:"catchup_incomplete"`
	// FinalCatchUpSeconds: how long the final phase took.
	FinalCatchUpSeconds float64 `json:"final_catchup_seconds"`

	Duplicates Duplicates `json:"duplicates"`
	Gaps       Gaps       `json:"gaps"`

	// BytesPerNode: mean application bytes (sent + received) per node
	// from the start of traffic to the end of the final phase.
	BytesPerNode float64   `json:"bytes_per_node"`
	Bytes        ByteStats `json:"bytes"`
	// Storage of every node that hosts a group for others.
	Storage StorageStats `json:"storage"`

	// Managed: removals, rotations and forward secrecy (managed groups
	// only).
	Managed *ManagedResult `json:"managed,omitempty"`

	Baseline   *Baseline `json:"baseline,omitempty"`
	OverheadMs *Overhead `json:"overhead_ms,omitempty"`

	// MemoryPerNode: Go heap and stacks per node after setup.
	MemoryPerNode int64   `json:"memory_per_node_bytes"`
	SetupSeconds  float64 `json:"setup_seconds"`

	Series Series `json:"series"`

	// Warnings: what went wrong in the run without stopping it (processes
	// mode: a node late for the traffic, a group not formed).
	Warnings []string `json:"warnings,omitempty"`

	// NotMeasured lists the figures (JSON paths) this mode cannot
	// measure, such as bytes in processes mode: their values are not
	// data, and they have no stats.
	NotMeasured []string `json:"not_measured,omitempty"`

	// Stats: every figure above over the runs, by JSON path (such as
	// "latency_ms.p99"): mean, 95% confidence interval, the values.
	Stats map[string]Estimate `json:"stats,omitempty"`
}

// Duplicates counts redundant deliveries.
type Duplicates struct {
	// Shown: a message shown twice to the same member (must be 0).
	Shown int `json:"shown"`
	// Stored: envelopes a node received again after storing them (the
	// cost of redundant paths: gossip, relay, catch-up, sync), from the
	// start of traffic.
	Stored           int64   `json:"stored"`
	StoredPerMessage float64 `json:"stored_per_message"`
}

// Gaps are holes in an author's sequence as members saw them.
type Gaps struct {
	// Detected: messages shown while an earlier message of the same author
	// in the same group was not shown yet (a gap opened).
	Detected int `json:"detected"`
	// Filled: messages shown after a later message of the same author
	// (a gap closed).
	Filled int `json:"filled"`
	// Open: pairs never delivered, even after the final catch-up.
	Open int `json:"open"`
	// Notices: gap notices the nodes showed (a gap no host could fill).
	Notices int `json:"notices"`
}

// ByteStats break down application bytes (sent + received per node).
type ByteStats struct {
	MemberMean float64 `json:"member_mean"`
	InfraMean  float64 `json:"infrastructure_mean"`
	Max        int64   `json:"max"`
	Total      int64   `json:"total"`
}

// StorageStats summarise store.Usage of hosting nodes.
type StorageStats struct {
	Hosts         int           `json:"hosts"`
	MeanBytes     float64       `json:"mean_bytes"`
	MaxBytes      int64         `json:"max_bytes"`
	MeanEnvelopes float64       `json:"mean_envelopes"`
	PerHost       []HostStorage `json:"per_host"`
}

// HostStorage is one hosting node's store usage.
type HostStorage struct {
	Node      int    `json:"node"`
	Role      string `json:"role"`
	Bytes     int64  `json:"bytes"`
	Envelopes int64  `json:"envelopes"`
	Mailboxes int64  `json:"mailboxes"`
}

// Baseline is plain gossipsub over the same nodes, links, connections and
// traffic (see baseline.go for what it is and why its hosts' degree is
// raised).
type Baseline struct {
	DeliveryRatio float64     `json:"delivery_ratio"`
	LatencyMs     Percentiles `json:"latency_ms"`
	BytesPerNode  float64     `json:"bytes_per_node"`
	// MeshCoverage: when traffic started, the fraction of (hosting node,
	// group, member connected to it) with the member in the hosting
	// node's baseline mesh (1: every hosting node forwards to every
	// member).
	MeshCoverage float64 `json:"mesh_coverage"`
}

// Overhead is meshnode's latency minus the baseline's, per percentile.
type Overhead struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Series are the plots' data.
type Series struct {
	// LatencyCDF: (latency ms, fraction) points.
	LatencyCDF [][2]float64 `json:"latency_cdf"`
	// BaselineCDF: the same for the baseline.
	BaselineCDF [][2]float64 `json:"baseline_cdf,omitempty"`
	// Delivery per second of the traffic phase: the delivery ratio of
	// messages sent in that second (-1: no pairs).
	Delivery         []float64 `json:"delivery"`
	BaselineDelivery []float64 `json:"baseline_delivery,omitempty"`
	// Online members per second.
	Online []int `json:"online"`
	// BytesPerNode sorted ascending.
	BytesPerNode []int64 `json:"bytes_per_node"`
	// CatchUpCDF: (catch-up ms, fraction) points of the catch-ups.
	CatchUpCDF [][2]float64 `json:"catchup_cdf,omitempty"`
	// KeyCatchUpCDF: (ms, fraction) of the managed groups' key catch-ups
	// (all members of an operation).
	KeyCatchUpCDF [][2]float64 `json:"key_catchup_cdf,omitempty"`
	// Bands: the series over several runs (mean and 95% interval).
	Bands *SeriesBands `json:"bands,omitempty"`
}

// ManagedResult measures the manager operations of managed groups.
type ManagedResult struct {
	// Rotations done, each removal's included; Removals done; Failed:
	// operations the manager could not do (or that did not rotate).
	Rotations int `json:"rotations"`
	Removals  int `json:"removals"`
	Failed    int `json:"failed"`
	// KeyCatchUpMs: per operation, from the manager finishing it (for a
	// member offline then, from its return) until the last remaining
	// member of the group was in the new epoch (its node accepted the key
	// update); operations some member never reached are counted apart. KeyCatchUpMemberMs: the same per member.
	KeyCatchUpMs         Percentiles `json:"key_catchup_ms"`
	KeyCatchUpMemberMs   Percentiles `json:"key_catchup_member_ms"`
	KeyCatchUpIncomplete int         `json:"key_catchup_incomplete"`
	// ForwardSecrecy checks what removed members showed or hold.
	ForwardSecrecy ForwardSecrecy `json:"forward_secrecy"`
}

// ForwardSecrecy is what removed members read after their removal.
type ForwardSecrecy struct {
	// Checked: messages sent in the group after a removal was done, once
	// per removal.
	Checked int `json:"checked"`
	// Violations: messages of the removal's epoch or later that the
	// removed member showed or holds (must be 0).
	Violations int `json:"violations"`
	// OldEpochShown: messages sent after the removal by a member whose
	// node had not received the key update yet, so still in the old
	// epoch, which the removed member can read (the race the protocol
	// allows, not a key leak).
	OldEpochShown int `json:"old_epoch_shown"`
}
