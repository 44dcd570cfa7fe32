package testnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any bytes give a scenario or an ErrScenario, never a panic;
// a parsed scenario validates or is refused with a sentinel, and a valid
// one yields a schedule.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("scenarios/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	def, _ := json.Marshal(DefaultScenario())
	f.Add(def)
	f.Add([]byte(`{"peers": 3, "groups": [{"count": 1, "size": 3}], "duration": "1s"}`))
	f.Add([]byte(`{"peers": 6, "peer_hosts": 1, "groups": [{"count": 2, "size": 5}], "removals": [{"at": "1s", "group": 1}], "rotations": [{"at": "2s"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrScenario) {
				t.Fatalf("parse error without ErrScenario: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			if !errors.Is(err, ErrScenario) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("validate error without a sentinel: %v", err)
			}
			return
		}
		// Keep schedules small enough to draw quickly.
		if s.Traffic.Rate*s.Duration.D().Seconds()*float64(s.groupCount()) > 1e5 {
			return
		}
		sch := NewSchedule(&s)
		if len(sch.Groups) != s.groupCount() {
			t.Fatalf("%d groups drawn, want %d", len(sch.Groups), s.groupCount())
		}
	})
}
