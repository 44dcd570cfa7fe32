package testnet

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGroups(t *testing.T) {
	got, err := ParseGroups(" 10x20, 1x100 ")
	if want := []GroupSpec{{10, 20}, {1, 100}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
	if got, err := ParseGroups(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"10", "x20", "10x", "10x20x3", "ax2", "2xb", "1x2,,3x4", "1x2,"} {
		if _, err := ParseGroups(bad); !errors.Is(err, ErrScenario) {
			t.Errorf("%q: error %v; want ErrScenario", bad, err)
		}
	}
}

func TestParsePartitions(t *testing.T) {
	got, err := ParsePartitions("5s/10s/0.25,20s/5s")
	want := []Partition{
		{At: Duration(5 * time.Second), Duration: Duration(10 * time.Second), Split: 0.25},
		{At: Duration(20 * time.Second), Duration: Duration(5 * time.Second), Split: 0.5},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	if got, err := ParsePartitions(" "); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v, %v", got, err)
	}
	for _, bad := range []struct{ in, mention string }{
		{"5s", "AT/DURATION"},
		{"5s/10s/0.5/1", "AT/DURATION"},
		{"5/10s", "start"},
		{"5s/ten", "duration"},
		{"5s/10s/half", "split"},
		{"5s/10s,", "empty item"},
	} {
		_, err := ParsePartitions(bad.in)
		if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), bad.mention) {
			t.Errorf("%q: error %v; want ErrScenario mentioning %q", bad.in, err, bad.mention)
		}
	}
}

func TestParseManageOps(t *testing.T) {
	got, err := ParseManageOps("8s,20s/1")
	one := 1
	want := []ManageOp{{At: Duration(8 * time.Second)}, {At: Duration(20 * time.Second), Group: &one}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"8", "8s/", "8s/one", "8s/1/2", "/1", strings.Repeat("1s,", maxListItems) + "1s"} {
		if _, err := ParseManageOps(bad); !errors.Is(err, ErrScenario) {
			t.Errorf("%.20q: error %v; want ErrScenario", bad, err)
		}
	}
}

func TestEvery(t *testing.T) {
	got, err := Every(10*time.Second, 30*time.Second)
	want := []ManageOp{{At: Duration(10 * time.Second)}, {At: Duration(20 * time.Second)}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v; want %+v (none at the end itself)", got, err, want)
	}
	if got, err := Every(time.Minute, 30*time.Second); err != nil || len(got) != 0 {
		t.Fatalf("period longer than the traffic: %v, %v", got, err)
	}
	for _, every := range []time.Duration{0, -time.Second, time.Millisecond} {
		if _, err := Every(every, time.Hour); !errors.Is(err, ErrScenario) {
			t.Errorf("every %v: error %v; want ErrScenario", every, err)
		}
	}
}
