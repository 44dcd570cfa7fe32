package scripts

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The systemd units run meshnode with flags it has: each ExecStart line,
// run with the test's binary and --help appended, parses.
func TestSystemdUnits(t *testing.T) {
	bin := binary(t)
	for _, unit := range []string{"../docs/systemd/meshnode.service", "../docs/systemd/meshnode-user.service"} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^ExecStart=(\S+) (.*)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s has no ExecStart", unit)
		}
		if !strings.HasSuffix(string(m[1]), "/meshnode") {
			t.Errorf("%s runs %s", unit, m[1])
		}
		args := append(strings.Fields(strings.ReplaceAll(string(m[2]), "%h", t.TempDir())), "--help")
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Errorf("%s: meshnode %s: %v\n%s", unit, strings.Join(args, " "), err, out)
		}
		for _, want := range []string{"Restart=on-failure", "TimeoutStopSec=", "MESHNODE_PASSPHRASE_FILE="} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %s", unit, want)
			}
		}
	}
}
