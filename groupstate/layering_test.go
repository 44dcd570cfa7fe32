package groupstate

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayering enforces that groupstate is pure: its non-test files import
// only the standard library's non-I/O packages, envelope, keymgmt and
// golang.org/x/crypto.
func TestLayering(t *testing.T) {
	allowedPrefixes := []string{
		"github.com/meshnode/meshnode/envelope",
		"github.com/meshnode/meshnode/keymgmt",
		"golang.org/x/crypto/",
	}
	forbidden := []string{"os", "os/exec", "net", "net/http", "io/fs", "io/ioutil", "syscall", "path/filepath", "log", "log/slog", "unsafe", "plugin", "runtime/cgo"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			ok := !strings.Contains(strings.SplitN(path, "/", 2)[0], ".") // standard library
			for _, p := range allowedPrefixes {
				if path == p || strings.HasPrefix(path, p) {
					ok = true
				}
			}
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					ok = false
				}
			}
			if !ok {
				t.Errorf("%s imports %q: groupstate must not do I/O or import networking packages", name, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
