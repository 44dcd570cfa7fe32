package keymgmt

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoNetworkImports enforces ARCHITECTURE §2: keymgmt does no network
// I/O, so neither it nor anything it imports (transitively) may pull in a
// networking package.
func TestNoNetworkImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH:", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned only %d packages: %q", len(deps), deps)
	}
	for _, p := range deps {
		if p == "net" || strings.HasPrefix(p, "net/") || strings.Contains(p, "libp2p") ||
			strings.HasPrefix(p, "golang.org/x/net") {
			t.Errorf("keymgmt depends on networking package %s", p)
		}
	}
}
