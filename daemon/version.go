package daemon

import (
	"runtime/debug"
	"strings"
)

// version is set at link time:
//
//	go build -ldflags "-X github.com/meshnode/meshnode/daemon.version=v0.1.0" ./cmd/meshnode
var version string

// Version is the meshnode version: the link-time version, else the module
// version from the build information (a release tag, or the pseudo-version
// Go derives from the commit), followed by the VCS revision the binary was
// built from when the build recorded it (go build in a git clone does,
// unless -buildvcs=false), for example
//
//	v0.4.1 (git 22f303fc8043, 2026-12-07)
//	v0.0.0-20261207212650-22f303fc8043+dirty (git 22f303fc8043 with local changes, 2026-12-07)
//	devel (git 22f303fc8043, 2026-12-07)
//
// and "devel" alone for a build without either.
func Version() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

func formatVersion(linked string, bi *debug.BuildInfo) string {
	v := linked
	if v == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "devel"
	}
	if bi == nil {
		return v
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	var b strings.Builder
	b.WriteString(v)
	b.WriteString(" (git ")
	b.WriteString(rev[:min(len(rev), 12)])
	if modified {
		b.WriteString(" with local changes")
	}
	if len(when) >= len("2006-01-02") {
		b.WriteString(", ")
		b.WriteString(when[:len("2006-01-02")])
	}
	b.WriteString(")")
	return b.String()
}
