package node

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n"))
}

// duplicateKeys returns the top-level keys a JSON object repeats.
func duplicateKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", line)
	}
	seen := map[string]bool{}
	var dups []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		k := tok.(string)
		if seen[k] {
			dups = append(dups, k)
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
	}
	return dups
}

// Every JSON log line names its component once: each package adds its
// own name to the logger it is given, and callers pass the base logger.
func TestLogComponentOnce(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := DefaultParams(RoleHost)
	p.StablePeerID = false
	p.HostPolicy = PolicyOpen
	n, err := New(context.Background(), p, WithLogger(log), WithDataDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	lines := buf.lines()
	components := map[string]bool{}
	for _, l := range lines {
		if dups := duplicateKeys(t, l); len(dups) > 0 {
			t.Errorf("log line repeats %v: %s", dups, l)
		}
		var m map[string]any
		_ = json.Unmarshal(l, &m)
		if c, ok := m["component"].(string); ok {
			components[c] = true
		}
	}
	if !components["store"] || !components["node"] {
		t.Errorf("the test saw components %v; it needs lines of the store and the node", components)
	}
}
