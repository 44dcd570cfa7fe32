package testnet

import (
	"context"
	"testing"
	"time"
)

// quick is a small, fast scenario: 20 members in one group.
func quick(st ...Strategy) Scenario {
	s := DefaultScenario()
	s.Name = "test"
	s.Strategies = st
	s.Duration = Duration(4 * time.Second)
	s.Warmup = Duration(time.Second)
	s.CatchUp = Duration(20 * time.Second)
	s.Traffic = Traffic{Rate: 3, Size: 100}
	return s
}

func TestTwentyNodesDeliverEverything(t *testing.T) {
	s := quick(StrategyServer, StrategyPeers)
	res, err := Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Strategies {
		t.Logf("%s: %+v", r.Strategy, r)
		if r.Messages == 0 {
			t.Fatalf("%s: no messages sent", r.Strategy)
		}
		if r.DeliveryRatio != 1 || r.EventualDeliveryRatio != 1 {
			t.Errorf("%s: delivery %.4f, eventual %.4f; want 1", r.Strategy, r.DeliveryRatio, r.EventualDeliveryRatio)
		}
	}
}
