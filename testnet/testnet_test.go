package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// quick is a small, fast scenario: 20 members in one group.
func quick(st ...Strategy) Scenario {
	s := DefaultScenario()
	s.Name = "test"
	s.Strategies = st
	s.Duration = Duration(4 * time.Second)
	s.Warmup = Duration(time.Second)
	s.CatchUp = Duration(20 * time.Second)
	s.Deadline = Duration(2 * time.Second)
	s.Traffic = Traffic{Rate: 3, Size: 100}
	return s
}

func leakCheck(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, before,
			// libp2p and badger keep process-wide workers.
			goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
			goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
			goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		)
	})
}

func TestTwentyNodesDeliverEverything(t *testing.T) {
	leakCheck(t)
	s := quick(StrategyServer, StrategyPeers)
	// Generous: the test machine's cores are shared; latency is measured,
	// not asserted.
	s.Deadline = Duration(10 * time.Second)
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Strategies {
		t.Logf("%s: %d messages, delivery %.4f, eventual %.4f, latency %+v, baseline %+v",
			r.Strategy, r.Messages, r.DeliveryRatio, r.EventualDeliveryRatio, r.LatencyMs, r.Baseline.LatencyMs)
		if r.Messages == 0 || r.DeliveryPairs == 0 {
			t.Fatalf("%s: nothing measured (%d messages, %d pairs)", r.Strategy, r.Messages, r.DeliveryPairs)
		}
		if r.DeliveryRatio != 1 || r.EventualDeliveryRatio != 1 {
			t.Errorf("%s: delivery %.4f, eventual %.4f; want 1", r.Strategy, r.DeliveryRatio, r.EventualDeliveryRatio)
		}
		if r.Duplicates.Shown != 0 || r.Gaps.Open != 0 {
			t.Errorf("%s: %d messages shown twice, %d never delivered", r.Strategy, r.Duplicates.Shown, r.Gaps.Open)
		}
		if r.LatencyMs.P50 < s20ms {
			t.Errorf("%s: p50 latency %.1f ms is below the link latency", r.Strategy, r.LatencyMs.P50)
		}
		if r.BytesPerNode <= 0 || r.Baseline == nil || r.Baseline.BytesPerNode <= 0 {
			t.Fatalf("%s: bytes not counted: %v, baseline %+v", r.Strategy, r.BytesPerNode, r.Baseline)
		}
		// The baseline is a true baseline: loss-free and churn-free, plain
		// gossipsub over the same connections delivers everything (it
		// delivered 88% under server, when the hub's mesh held 6 of the
		// 20 members and the others waited for gossip).
		if r.Baseline.DeliveryRatio != 1 || r.Baseline.MeshCoverage != 1 {
			t.Errorf("%s: baseline delivery %.4f, mesh coverage %.4f; want 1 and 1", r.Strategy, r.Baseline.DeliveryRatio, r.Baseline.MeshCoverage)
		}
	}
	if st := res.Strategies[0].Storage; st.Hosts != 1 || st.PerHost[0].Envelopes == 0 {
		t.Errorf("server strategy storage %+v: want one host holding envelopes", st)
	}
}

const s20ms = 20 // the default link latency, in ms

// TestPartitionHeals: half the members are cut off from the server and
// the other half for three seconds; with hybrid hosting everything reaches
// everyone once the partition heals.
func TestPartitionHeals(t *testing.T) {
	leakCheck(t)
	s := quick(StrategyHybrid)
	s.Duration = Duration(5 * time.Second)
	s.Deadline = Duration(time.Second)
	s.Partitions = []Partition{{At: Duration(time.Second), Duration: Duration(3 * time.Second), Split: 0.5}}
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Strategies[0]
	t.Logf("hybrid: %d messages, delivery %.4f, eventual %.4f, final catch-up %.1fs, gaps %+v",
		r.Messages, r.DeliveryRatio, r.EventualDeliveryRatio, r.FinalCatchUpSeconds, r.Gaps)
	if r.EventualDeliveryRatio != 1 {
		t.Fatalf("eventual delivery %.4f after the partition healed; want 1", r.EventualDeliveryRatio)
	}
	if r.DeliveryRatio == 1 {
		t.Fatalf("delivery ratio 1 across a partition: the partition cut nothing")
	}
}

// TestChurnCatchUp: members that go offline and come back catch up.
func TestChurnCatchUp(t *testing.T) {
	s := quick(StrategyServer)
	s.Duration = Duration(6 * time.Second)
	s.Churn = Churn{Fraction: 0.3, Online: Duration(2 * time.Second), Offline: Duration(time.Second), Distribution: "fixed"}
	s.Baseline = new(bool)
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	r := res.Strategies[0]
	t.Logf("server with churn: delivery %.4f, eventual %.4f, catch-up %+v (incomplete %d)",
		r.DeliveryRatio, r.EventualDeliveryRatio, r.CatchUpMs, r.CatchUpIncomplete)
	if r.EventualDeliveryRatio != 1 {
		t.Errorf("eventual delivery %.4f; want 1", r.EventualDeliveryRatio)
	}
	if r.CatchUpMs.N+r.CatchUpIncomplete == 0 {
		t.Errorf("no catch-up measured with 30%% churn")
	}
	if r.Baseline != nil {
		t.Errorf("baseline ran although disabled")
	}
}

func TestSameSeedSameSchedule(t *testing.T) {
	s := DefaultScenario()
	s.Peers = 40
	s.Groups = []GroupSpec{{Count: 3, Size: 10}, {Count: 1, Size: 30}}
	s.Churn = Churn{Fraction: 0.4, Online: Duration(3 * time.Second), Offline: Duration(2 * time.Second)}
	s.Partitions = []Partition{{At: Duration(2 * time.Second), Duration: Duration(3 * time.Second), Split: 0.3}}
	one := 3
	s.Removals = []ManageOp{{At: Duration(4 * time.Second)}, {At: Duration(9 * time.Second), Group: &one}}
	s.Rotations = []ManageOp{{At: Duration(6 * time.Second)}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := NewSchedule(&s), NewSchedule(&s)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two different schedules")
	}
	kinds := map[EventKind]int{}
	for _, ev := range a.Events {
		kinds[ev.Kind]++
	}
	if kinds[EventSend] == 0 || kinds[EventOffline] == 0 || kinds[EventOnline] == 0 || kinds[EventPartition] != 1 || kinds[EventHeal] != 1 {
		t.Fatalf("schedule lacks events: %v", kinds)
	}
	// Four groups: a removal in each plus one in group 3, and a rotation
	// in each, unless a creator is offline until the end.
	if kinds[EventRemove] != a.Removals || kinds[EventRotate] != a.Rotations || a.Removals < 3 || a.Rotations < 3 || a.Removals > 5 || a.Rotations > 4 {
		t.Fatalf("schedule has %d removals and %d rotations (%v)", a.Removals, a.Rotations, kinds)
	}
	checkManageOps(t, &s, a)
	for i := 1; i < len(a.Events); i++ {
		if a.Events[i].At < a.Events[i-1].At {
			t.Fatalf("events out of order at %d", i)
		}
	}
	s2 := s
	s2.Seed++
	if reflect.DeepEqual(a, NewSchedule(&s2)) {
		t.Fatal("seeds 1 and 2 gave the same schedule")
	}
	// Changing the removals leaves the traffic before them alone.
	s4 := s
	s4.Removals = nil
	if c := NewSchedule(&s4); !reflect.DeepEqual(sends(a, 4*time.Second), sends(c, 4*time.Second)) {
		t.Fatal("adding removals changed the traffic before them")
	}
	// Changing the churn leaves the groups drawn from the seed alone.
	s3 := s
	s3.Churn.Fraction = 0.1
	if c := NewSchedule(&s3); !reflect.DeepEqual(a.Groups, c.Groups) {
		t.Fatal("changing the churn changed the groups")
	}
}

// sends returns the schedule's sends before an offset.
func sends(sch *Schedule, before time.Duration) []Event {
	var out []Event
	for _, ev := range sch.Events {
		if ev.Kind == EventSend && ev.At < before {
			out = append(out, ev)
		}
	}
	return out
}

// checkManageOps: each removal picks a member of the group that is
// neither its creator nor a member host, never twice; a removed member
// sends nothing to the group afterwards; the creator is online at each
// operation.
func checkManageOps(t *testing.T, s *Scenario, sch *Schedule) {
	t.Helper()
	removed := map[[2]int]bool{}
	offline := map[int]bool{}
	for _, ev := range sch.Events {
		switch ev.Kind {
		case EventOffline:
			offline[ev.Node] = true
		case EventOnline:
			offline[ev.Node] = false
		case EventRemove, EventRotate:
			members := sch.Groups[ev.Group].Members
			if offline[members[0]] {
				t.Fatalf("%s in group %d at %v while its creator is offline", ev.Kind, ev.Group, ev.At)
			}
			if ev.Kind == EventRotate {
				continue
			}
			k := [2]int{ev.Group, ev.Node}
			if removed[k] || !slices.Contains(members[max(1, s.PeerHosts):], ev.Node) {
				t.Fatalf("removal of node %d from group %d (members %v, removed %v)", ev.Node, ev.Group, members, removed)
			}
			removed[k] = true
		case EventSend:
			if removed[[2]int{ev.Group, ev.Node}] {
				t.Fatalf("message %d sent by node %d after its removal from group %d", ev.Msg, ev.Node, ev.Group)
			}
		}
	}
}

func TestSendersAreOnline(t *testing.T) {
	s := DefaultScenario()
	s.Churn = Churn{Fraction: 0.5, Online: Duration(time.Second), Offline: Duration(time.Second)}
	sch := NewSchedule(&s)
	offline := map[int]bool{}
	for _, ev := range sch.Events {
		switch ev.Kind {
		case EventOffline:
			offline[ev.Node] = true
		case EventOnline:
			offline[ev.Node] = false
		case EventSend:
			if offline[ev.Node] {
				t.Fatalf("message %d sent by node %d while offline", ev.Msg, ev.Node)
			}
		}
	}
}

func TestBadScenarios(t *testing.T) {
	tests := []struct {
		name, json string
		want       error
		mention    string
	}{
		{"unknown key", "{\n\"peers\": 10,\n\"peerz\": 3}", ErrScenario, `line 3: unknown key "peerz"`},
		{"unknown nested key", `{"link": {"latency": "10ms", "lag": "1s"}}`, ErrScenario, `line 1: unknown key "lag"`},
		{"unknown escaped key", `{"l\u0061g": "1s"}`, ErrScenario, `unknown key "lag"`},
		{"trailing data", `{"peers": 10} {"peers": 11}`, ErrScenario, "after the scenario"},
		{"wrong type", "{\n\"peers\": \"ten\"}", ErrScenario, `line 2: key "peers": want a int`},
		{"wrong nested type", `{"link": {"bandwidth": "fast"}}`, ErrScenario, `key "link.bandwidth"`},
		{"bad duration", `{"duration": 20}`, ErrScenario, "duration must be a string"},
		{"syntax", "{\n\"peers\": 10,\n}", ErrScenario, "line 3"},
		{"one peer", `{"peers": 1}`, ErrScenario, "peers 1"},
		{"group larger than peers", `{"peers": 10, "groups": [{"count": 1, "size": 11}]}`, ErrScenario, "size 11"},
		{"unknown strategy", `{"strategies": ["cloud"]}`, ErrScenario, `"cloud"`},
		{"strategy with spaces", `{"strategies": ["\nhybrid"]}`, ErrScenario, `"\nhybrid" is not one of`},
		{"strategy twice", `{"strategies": ["bot", "bot"]}`, ErrScenario, "twice"},
		{"server without hosts", `{"strategies": ["server"], "hosts": 0}`, ErrScenario, "hosts 0"},
		{"zero rate", `{"traffic": {"rate": 0, "size": 100}}`, ErrScenario, "traffic.rate"},
		{"huge message", `{"traffic": {"rate": 1, "size": 10000000}}`, ErrScenario, "traffic.size"},
		{"loss", `{"link": {"loss": 0.9}}`, ErrScenario, "link.loss"},
		{"negative latency", `{"link": {"latency": "-1s"}}`, ErrScenario, "link.latency"},
		{"partition past the end", `{"duration": "10s", "partitions": [{"at": "8s", "duration": "5s", "split": 0.5}]}`, ErrScenario, "partitions[0]"},
		{"overlapping partitions", `{"partitions": [{"at": "1s", "duration": "5s", "split": 0.5}, {"at": "2s", "duration": "1s", "split": 0.5}]}`, ErrScenario, "partitions[1]"},
		{"churn without periods", `{"churn": {"fraction": 0.5}}`, ErrScenario, "churn.online"},
		{"removal member key", `{"removals": [{"at": "5s", "group": 0, "member": 3}]}`, ErrScenario, `unknown key "member"`},
		{"removal past the end", `{"duration": "10s", "removals": [{"at": "10s"}]}`, ErrScenario, "removals[0]: at 10s"},
		{"rotation of no group", `{"rotations": [{"at": "5s", "group": 1}]}`, ErrScenario, "rotations[0].group 1"},
		{"negative rotation", `{"rotations": [{"at": "-1s"}]}`, ErrScenario, "rotations[0]"},
		{"too many removals", `{"peers": 5, "peer_hosts": 3, "groups": [{"count": 1, "size": 5}], "removals": [{"at": "1s"}, {"at": "2s"}, {"at": "3s"}]}`, ErrScenario, "only 2 removable"},
		{"too large", `{"peers": 5000, "hosts": 1, "groups": [{"count": 100, "size": 5000}]}`, ErrTooLarge, "available"},
		{"too much churn", `{"peers": 5000, "duration": "1h", "groups": [{"count": 1, "size": 10}], "churn": {"fraction": 1, "online": "100ms", "offline": "100ms"}}`, ErrTooLarge, "churn transitions"},
		{"too many messages", `{"peers": 100, "duration": "1h", "groups": [{"count": 10, "size": 10}], "traffic": {"rate": 100, "size": 100}}`, ErrTooLarge, "at most 2000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(strings.NewReader(tc.json))
			if err == nil {
				err = s.Validate()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v; want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestShippedScenariosAreValid(t *testing.T) {
	for _, name := range []string{"small", "medium", "partition", "churn", "managed", "managed-groups", "validate", "scale-2000"} {
		s, err := Load("scenarios/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestTextRoundTrip(t *testing.T) {
	for _, size := range []int{minTextSize, 100, 4000} {
		txt := messageText(1234, size)
		if len(txt) != size {
			t.Fatalf("text of %d bytes for size %d", len(txt), size)
		}
		if id, ok := parseText(txt); !ok || id != 1234 {
			t.Fatalf("parse(%q) = %d, %v", txt[:20], id, ok)
		}
	}
	for _, bad := range []string{"", "hello", "tn abc", "tn 12345678"} {
		if _, ok := parseText(bad); ok {
			t.Fatalf("parsed %q", bad)
		}
	}
}

// TestManagedRemovalAndRotation: a managed group of nine loses a member
// and rotates once; the remaining members get every message, and the
// removed member shows nothing of the epochs after its removal.
func TestManagedRemovalAndRotation(t *testing.T) {
	leakCheck(t)
	s := quick(StrategyServer, StrategyBot)
	s.Peers = 9
	s.PeerHosts = 1
	s.Groups = []GroupSpec{{Count: 1, Size: 9}}
	s.Duration = Duration(6 * time.Second)
	// Generous: the test machine's cores are shared.
	s.Deadline = Duration(10 * time.Second)
	s.Removals = []ManageOp{{At: Duration(1500 * time.Millisecond)}}
	s.Rotations = []ManageOp{{At: Duration(3 * time.Second)}}
	s.Baseline = new(bool)
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if res.Schedule.Removals != 1 || res.Schedule.Rotations != 1 {
		t.Fatalf("schedule %+v: want one removal and one rotation", res.Schedule)
	}
	for _, r := range res.Strategies {
		mg := r.Managed
		if mg == nil {
			t.Fatalf("%s: no managed-group metrics", r.Strategy)
		}
		t.Logf("%s: %d messages, delivery %.4f, eventual %.4f, managed %+v", r.Strategy, r.Messages, r.DeliveryRatio, r.EventualDeliveryRatio, *mg)
		if r.DeliveryRatio != 1 || r.EventualDeliveryRatio != 1 || r.Gaps.Open != 0 {
			t.Errorf("%s: delivery %.4f, eventual %.4f, %d never delivered; want every message at every remaining member",
				r.Strategy, r.DeliveryRatio, r.EventualDeliveryRatio, r.Gaps.Open)
		}
		if mg.Removals != 1 || mg.Rotations != 2 || mg.Failed != 0 {
			t.Errorf("%s: %d removals, %d rotations, %d failed; want 1, 2, 0", r.Strategy, mg.Removals, mg.Rotations, mg.Failed)
		}
		if mg.KeyCatchUpMs.N != 2 || mg.KeyCatchUpIncomplete != 0 {
			t.Errorf("%s: key catch-up %+v, %d incomplete; want both operations reached by everyone", r.Strategy, mg.KeyCatchUpMs, mg.KeyCatchUpIncomplete)
		}
		if mg.ForwardSecrecy.Checked == 0 {
			t.Errorf("%s: no message sent after the removal was checked", r.Strategy)
		}
		if mg.ForwardSecrecy.Violations != 0 {
			t.Errorf("%s: the removed member shows %d messages of the epochs after its removal", r.Strategy, mg.ForwardSecrecy.Violations)
		}
	}
	var html bytes.Buffer
	if err := WriteReport(&html, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "forward-secrecy violations</th>") {
		t.Error("report.html lacks the managed-groups table")
	}
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(js, []byte(`"forward_secrecy":{"checked":`)) || !bytes.Contains(js, []byte(`"delivery_ratio"`)) {
		t.Error("results.json lacks the managed-group fields")
	}
}

// TestSeveralManagedGroups: two managed groups of six among ten members,
// so at least two members join both (their key packages, made in the
// same second, must differ); one removal in group 1 and a rotation in
// every group. Every remaining member gets every message and every
// epoch; the removed member reads nothing after its removal.
func TestSeveralManagedGroups(t *testing.T) {
	leakCheck(t)
	s := quick(StrategyServer)
	s.Peers = 10
	s.PeerHosts = 1
	s.Groups = []GroupSpec{{Count: 2, Size: 6}}
	s.Duration = Duration(5 * time.Second)
	// Generous: the test machine's cores are shared.
	s.Deadline = Duration(10 * time.Second)
	one := 1
	s.Removals = []ManageOp{{At: Duration(1500 * time.Millisecond), Group: &one}}
	s.Rotations = []ManageOp{{At: Duration(3 * time.Second)}}
	s.Baseline = new(bool)
	sch := NewSchedule(&s)
	if both := shared(sch.Groups[0].Members, sch.Groups[1].Members); len(both) < 2 {
		t.Fatalf("members of both groups %v; want at least two", both)
	}
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if res.Schedule.Removals != 1 || res.Schedule.Rotations != 2 {
		t.Fatalf("schedule %+v: want one removal and two rotations", res.Schedule)
	}
	r := res.Strategies[0]
	mg := r.Managed
	t.Logf("%s: %d messages, delivery %.4f, eventual %.4f, setup %.1fs, managed %+v", r.Strategy, r.Messages, r.DeliveryRatio, r.EventualDeliveryRatio, r.SetupSeconds, *mg)
	if r.Messages == 0 || r.EventualDeliveryRatio != 1 || r.Gaps.Open != 0 {
		t.Errorf("%d messages, eventual delivery %.4f, %d never delivered; want every message at every remaining member", r.Messages, r.EventualDeliveryRatio, r.Gaps.Open)
	}
	if mg.Removals != 1 || mg.Rotations != 3 || mg.Failed != 0 {
		t.Errorf("%d removals, %d rotations, %d failed; want 1, 3, 0", mg.Removals, mg.Rotations, mg.Failed)
	}
	if mg.KeyCatchUpMs.N != 3 || mg.KeyCatchUpIncomplete != 0 {
		t.Errorf("key catch-up %+v, %d incomplete; want all three operations reached by every member", mg.KeyCatchUpMs, mg.KeyCatchUpIncomplete)
	}
	if mg.ForwardSecrecy.Violations != 0 {
		t.Errorf("the removed member shows %d messages of the epochs after its removal", mg.ForwardSecrecy.Violations)
	}
}

func shared(a, b []int) []int {
	var out []int
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
