package daemon

import "runtime/debug"

// version is set at link time:
//
//	go build -ldflags "-X github.com/meshnode/meshnode/daemon.version=v0.1.0" ./cmd/meshnode
var version string

// Version is the meshnode version: the link-time version, else the module
// version from the build information, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
