package testnet

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestYAMLMatchesJSON: each shipped YAML scenario loads equal to the JSON
// file of the same name, and validates.
func TestYAMLMatchesJSON(t *testing.T) {
	files, err := filepath.Glob("scenarios/*.y*ml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("%d YAML scenarios shipped (%v); want at least two", len(files), files)
	}
	for _, y := range files {
		t.Run(filepath.Base(y), func(t *testing.T) {
			fromYAML, err := Load(y)
			if err != nil {
				t.Fatal(err)
			}
			fromJSON, err := Load(strings.TrimSuffix(y, filepath.Ext(y)) + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fromYAML, fromJSON) {
				t.Fatalf("YAML and JSON differ:\nyaml %+v\njson %+v", fromYAML, fromJSON)
			}
			if err := fromYAML.Validate(); err != nil && !errors.Is(err, ErrTooLarge) {
				t.Fatal(err)
			}
		})
	}
}

// TestYAMLKeepsDefaults: keys not given keep the defaults, nested ones
// too, as in JSON.
func TestYAMLKeepsDefaults(t *testing.T) {
	s, err := ParseYAML(strings.NewReader("peers: 12\nlink:\n  jitter: 3ms\nremovals:\n  - {at: 2s, group: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultScenario()
	want.Peers = 12
	want.Link.Jitter = Duration(3 * time.Millisecond)
	zero := 0
	want.Removals = []ManageOp{{At: Duration(2 * time.Second), Group: &zero}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
}

func TestBadYAMLScenarios(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       error
		mention    []string
	}{
		{"unknown key", "peers: 10\npeerz: 3\n", ErrScenario, []string{`line 2: unknown key "peerz"`}},
		{"unknown nested key", "link:\n  latency: 10ms\n  lag: 1s\n", ErrScenario, []string{`line 3: unknown key "link.lag"`}},
		{"unknown key in a list", "groups:\n  - count: 1\n    size: 5\n    sise: 6\n", ErrScenario, []string{`line 4: unknown key "groups[0].sise"`}},
		{"unknown key in a flow mapping", "removals: [{at: 5s, member: 3}]\n", ErrScenario, []string{`line 1: unknown key "removals[0].member"`}},
		{"every error at once", "peerz: 1\nhosts: two\n", ErrScenario, []string{`line 1: unknown key "peerz"`, `line 2: key "hosts"`}},
		{"wrong type", "name: x\npeers: ten\n", ErrScenario, []string{`line 2: key "peers"`, "ten"}},
		{"number for a duration", "duration: 20\n", ErrScenario, []string{`line 1: key "duration"`, "duration must be a string"}},
		{"bad duration", "link:\n  latency: 10 parsecs\n", ErrScenario, []string{`line 2: key "link.latency"`, "unknown unit"}},
		{"list for a duration", "warmup: [1s]\n", ErrScenario, []string{`line 1: key "warmup"`}},
		{"duplicate key", "peers: 10\npeers: 11\n", ErrScenario, []string{`line 2`, `"peers" already defined`}},
		{"second document", "peers: 10\n---\npeers: 11\n", ErrScenario, []string{"second YAML document"}},
		{"syntax", "peers: 10\n  hosts: 2\n", ErrScenario, []string{"line 2"}},
		{"empty", "", ErrScenario, []string{"no scenario document"}},
		{"not a mapping", "- peers: 10\n", ErrScenario, []string{"line 1"}},
		{"tab indentation", "link:\n\tlatency: 1s\n", ErrScenario, []string{"line 2"}},
		// Values are checked by Validate, as for JSON.
		{"group larger than peers", "peers: 10\ngroups: [{count: 1, size: 11}]\n", ErrScenario, []string{"size 11"}},
		{"not a number", "traffic: {rate: .nan, size: 100}\n", ErrScenario, []string{"traffic.rate"}},
		{"infinite loss", "link: {loss: .inf}\n", ErrScenario, []string{"link.loss"}},
		{"NaN split", "partitions: [{at: 1s, duration: 1s, split: .nan}]\n", ErrScenario, []string{"partitions[0].split"}},
		{"removal of no group", "rotations: [{at: 5s, group: 1}]\n", ErrScenario, []string{"rotations[0].group 1"}},
		{"too large", "peers: 5000\nhosts: 1\ngroups: [{count: 100, size: 5000}]\n", ErrTooLarge, []string{"available"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseYAML(strings.NewReader(tc.yaml))
			if err == nil {
				err = s.Validate()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v; want %v", err, tc.want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Fatalf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestYAMLKeyLines(t *testing.T) {
	doc := "name: x\nlink:\n  latency: 1s\ngroups:\n  - {count: 1, size: 2}\nstrategies: [server, bot]\npartitions:\n  - at: 1s\n    split: 0.5\n"
	lines := yamlKeyLines([]byte(doc))
	for _, tc := range []struct {
		line  int
		field string
		want  string
	}{
		{1, "", "name"}, {2, "", "link"}, {3, "", "link.latency"}, {4, "", "groups"},
		{5, "", "groups[0]"}, {5, "size", "groups[0].size"}, {5, "sise", "groups[0]"},
		{6, "", "strategies"}, {7, "", "partitions"}, {8, "", "partitions[0].at"}, {9, "", "partitions[0].split"},
		{10, "", ""},
	} {
		if got := lineKey(lines[tc.line], tc.field); got != tc.want {
			t.Errorf("line %d, field %q: key %q; want %q", tc.line, tc.field, got, tc.want)
		}
	}
	if got := yamlKeyLines([]byte("a: [")); len(got) != 0 {
		t.Fatalf("unparsable document mapped to %v", got)
	}
}

// TestLoadByExtension: .yaml and .yml are YAML, anything else JSON.
func TestLoadByExtension(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file, body string
		ok         bool
	}{
		{"a.yaml", "peers: 7\n", true},
		{"b.YML", "peers: 7\n", true},
		{"c.json", `{"peers": 7}`, true},
		{"d.conf", `{"peers": 7}`, true},
		{"e.json", "peers: 7\n", false},
	} {
		p := filepath.Join(dir, tc.file)
		writeFile(t, p, tc.body)
		s, err := Load(p)
		if tc.ok && (err != nil || s.Peers != 7) {
			t.Errorf("%s: %+v, %v; want peers 7", tc.file, s.Peers, err)
		}
		if !tc.ok && !errors.Is(err, ErrScenario) {
			t.Errorf("%s: error %v; want ErrScenario", tc.file, err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.file) {
			t.Errorf("%s: error %q does not name the file", tc.file, err)
		}
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
