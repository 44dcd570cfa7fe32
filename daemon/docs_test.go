package daemon

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/node"
)

// docs/api.md names every endpoint the daemon serves, with its methods on
// the same line.
func TestAPIDocsCoverEveryEndpoint(t *testing.T) {
	d := startDaemon(t, initHome(t, node.RoleMember).Home, nil)
	b, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	placeholder := regexp.MustCompile(`\{([a-z]+)\}`)
	if len(d.api.routes) < 20 {
		t.Fatalf("only %d routes recorded", len(d.api.routes))
	}
	for _, r := range d.api.routes {
		method, path, _ := strings.Cut(r, " ")
		// /v1/groups/{group}/read is written /v1/groups/GROUP/read.
		doc := placeholder.ReplaceAllStringFunc(path, func(p string) string { return strings.ToUpper(strings.Trim(p, "{}")) })
		at := regexp.MustCompile(regexp.QuoteMeta(doc) + "([`?, ]|$)")
		found := false
		for _, l := range lines {
			if at.MatchString(l) && strings.Contains(l, method) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("docs/api.md has no line naming %s %s", method, doc)
		}
	}
}

// docs/config.md describes every key of config.json.
func TestConfigDocsCoverEveryKey(t *testing.T) {
	b, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		key, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
		if !strings.Contains(string(b), "`"+key+"`") {
			t.Errorf("docs/config.md does not describe %q", key)
		}
	}
}
