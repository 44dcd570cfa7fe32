package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// YAML scenarios: the same keys, defaults and validation as JSON (the
// struct tags carry both names), decoded with yaml.v3's KnownFields so an
// unknown key is an error. yaml.v3 reports errors by line only; on error
// the document is parsed once more into nodes to name the key of each
// line ("line 4: key \"link.latency\": ...").

// ParseYAML decodes a YAML scenario as strictly as Parse does JSON:
// unknown keys, a second document and wrong types are errors naming the
// line and the key. Keys not given keep DefaultScenario's values. Call
// Validate (after applying overrides) before running it.
func ParseYAML(r io.Reader) (Scenario, error) {
	b, err := readScenario(r)
	if err != nil {
		return Scenario{}, err
	}
	s := DefaultScenario()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return Scenario{}, fmt.Errorf("%w: the YAML file holds no scenario document", ErrScenario)
		}
		return Scenario{}, fmt.Errorf("%w: %v", ErrScenario, describeYAMLError(b, err))
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return Scenario{}, fmt.Errorf("%w: a second YAML document after the scenario (one scenario per file)", ErrScenario)
	}
	return s, nil
}

// UnmarshalYAML reads a duration string; a number is refused as in JSON
// (is 20 seconds or nanoseconds?).
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a duration must be a string such as 1.5s or 200ms, got %q", n.Line, n.Value)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

var (
	yamlLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlUnknown = regexp.MustCompile(`^field (\S+) not found in type `)
)

// describeYAMLError rewrites yaml.v3's errors in the scenario's terms:
// each line's key path is added, and "field X not found in type T"
// becomes "unknown key".
func describeYAMLError(b []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A syntax error: "yaml: line 3: did not find expected key".
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	keys := yamlKeyLines(b)
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		what := m[2]
		if u := yamlUnknown.FindStringSubmatch(what); u != nil {
			key := lineKey(keys[line], u[1])
			if key == "" {
				key = u[1]
			}
			msgs = append(msgs, fmt.Sprintf("line %d: unknown key %q", line, key))
			continue
		}
		key := lineKey(keys[line], "")
		if key != "" {
			what = fmt.Sprintf("key %q: %s", key, what)
		}
		msgs = append(msgs, fmt.Sprintf("line %d: %s", line, what))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// yamlKeyLines maps each line of a YAML document to the paths of the
// keys on it ("link.latency", "partitions[1].split"), in document order;
// a flow mapping puts several on one line. Best effort: a document that
// does not parse gives an empty map.
func yamlKeyLines(b []byte) map[int][][]string {
	paths := map[int][][]string{}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return paths
	}
	var walk func(n *yaml.Node, path []string, depth int)
	walk = func(n *yaml.Node, path []string, depth int) {
		if depth > 32 {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, depth+1)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := append(slices.Clone(path), n.Content[i].Value)
				paths[n.Content[i].Line] = append(paths[n.Content[i].Line], k)
				walk(n.Content[i+1], k, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(slices.Clone(path), fmt.Sprintf("[%d]", i)), depth+1)
			}
		}
	}
	walk(&doc, nil, 0)
	return paths
}

// lineKey is the key a line holds: the one named field when given, else
// the common parent of the line's keys ("" if none).
func lineKey(paths [][]string, field string) string {
	if len(paths) == 0 {
		return ""
	}
	if field != "" {
		for _, p := range paths {
			if p[len(p)-1] == field {
				return joinPath(p)
			}
		}
	}
	common := paths[0]
	for _, p := range paths[1:] {
		n := 0
		for n < len(common) && n < len(p) && common[n] == p[n] {
			n++
		}
		common = common[:n]
	}
	return joinPath(common)
}

// joinPath writes a key path as "groups[0].size".
func joinPath(p []string) string {
	var b strings.Builder
	for i, seg := range p {
		if i > 0 && !strings.HasPrefix(seg, "[") {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}
