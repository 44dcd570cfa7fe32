package daemon

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	vcs := func(mod string, kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/meshnode/meshnode", Version: mod}}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	rev := "22f303fc8043a5e173212f7c5b27ae8666be57f3"
	for _, c := range []struct {
		linked string
		bi     *debug.BuildInfo
		want   string
	}{
		{"", nil, "devel"},
		{"", vcs("(devel)"), "devel"},
		{"v1.0.0", vcs("(devel)"), "v1.0.0"},
		{"", vcs("v0.4.1", "vcs.revision", rev, "vcs.time", "2026-12-07T21:26:50Z", "vcs.modified", "false"), "v0.4.1 (git 22f303fc8043, 2026-12-07)"},
		{"", vcs("(devel)", "vcs.revision", rev, "vcs.time", "2026-12-07T21:26:50Z", "vcs.modified", "true"), "devel (git 22f303fc8043 with local changes, 2026-12-07)"},
		{"", vcs("v0.0.0-20261207212650-22f303fc8043+dirty", "vcs.revision", rev), "v0.0.0-20261207212650-22f303fc8043+dirty (git 22f303fc8043)"},
	} {
		if got := formatVersion(c.linked, c.bi); got != c.want {
			t.Errorf("formatVersion(%q, %+v) = %q, want %q", c.linked, c.bi, got, c.want)
		}
	}
}
