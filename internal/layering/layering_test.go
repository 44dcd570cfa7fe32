package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/meshnode/meshnode/"

// rule is what one package of the project may depend on.
type rule struct {
	// imports are the project's packages it may import directly (module
	// paths without the module prefix; "internal/..." allows every
	// internal package).
	imports []string
	// pure: no I/O; the package may not import the standard library's
	// I/O packages (groupstate: the group rules).
	pure bool
	// noNetwork: nothing it imports (transitively) may reach the network
	// (keymgmt: keys; envelope: the format hosts see).
	noNetwork bool
}

// internalPkgs are the internal helpers; any package may use them.
const internalPkgs = "internal/..."

// Every package of the tree has a row: a new package is placed in the
// layers here, in the same change that adds it. Data flows top to
// bottom (ARCHITECTURE §2); a package imports only packages below it.
var rules = map[string]rule{
	// Binaries and the tools around them.
	"cmd/meshnode": {imports: []string{"api", "bench", "daemon", "groupstate", "keymgmt", "node", "testnet", "webui", internalPkgs}},
	"scripts":      {imports: []string{internalPkgs}},
	"testnet":      {imports: []string{"api", "daemon", "groupstate", "keymgmt", "node", "relay", "store", "envelope", internalPkgs}},
	"bench":        {imports: []string{"api", "daemon", "node", "relay", "fetch", "hostsync", "reconcile", "store", "envelope", "admission", "groupstate", "keymgmt", internalPkgs}},

	// The running node's home and its control API.
	"daemon": {imports: []string{"api", "webui", "node", "contacts", "admission", "directory", "groupstate", "keymgmt", "store", "envelope", internalPkgs}},
	"webui":  {imports: []string{"api", internalPkgs}},
	"api":    {imports: []string{internalPkgs}}, // the wire types: no node or lower layers' types

	// The node assembles the layers below.
	"node": {imports: []string{"contacts", "admission", "directory", "envelope", "fetch", "groupstate", "hostsync", "keymgmt", "reconcile", "relay", "store", internalPkgs}},

	// The layers node wires: contacts sit above the member layer (still in
	// node) and never import node; node calls them.
	"contacts": {imports: []string{"directory", "envelope", "groupstate", "keymgmt"}},

	// Hosts: they see only envelopes and decrypt nothing.
	"relay":     {imports: []string{"admission", "envelope", "store", internalPkgs}},
	"fetch":     {imports: []string{"admission", "envelope", "store", internalPkgs}},
	"hostsync":  {imports: []string{"admission", "envelope", "reconcile", "store", internalPkgs}},
	"reconcile": {imports: []string{"envelope"}},
	"directory": {imports: []string{"admission", "envelope", "keymgmt", internalPkgs}},
	"admission": {imports: []string{"envelope", "store", internalPkgs}},
	"store":     {imports: []string{"envelope", "internal/lsm"}},

	// The group rules and keys.
	"groupstate": {imports: []string{"envelope", "keymgmt", "internal/pow"}, pure: true, noNetwork: true},
	"keymgmt":    {imports: []string{"envelope", "internal/pow"}, noNetwork: true},
	"envelope":   {pure: true, noNetwork: true},

	// Internal helpers: below everything but the store and the envelope.
	"internal/errtext":   {},
	"internal/layering":  {},
	"internal/lsm":       {}, // on-demand compaction of in-memory Badger databases (store, node)
	"internal/pow":       {noNetwork: true},
	"internal/ratelimit": {},
	"internal/status":    {imports: []string{"envelope", "store", "internal/errtext"}},
	"internal/testutil":  {imports: []string{"envelope"}},
	"internal/wire":      {},
}

// libp2pRoot is the go-libp2p package that builds a host with all its
// transports; only the packages that assemble nodes import it (a
// protocol package takes a host.Host).
const libp2pRoot = "github.com/libp2p/go-libp2p"

var libp2pRootAllowed = []string{"node", "bench", "testnet"}

// pureForbidden are the standard library's I/O packages a pure package
// may not reach.
var pureForbidden = []string{"os", "os/exec", "net", "net/http", "io/fs", "io/ioutil", "syscall", "path/filepath", "log", "log/slog", "unsafe", "plugin", "runtime/cgo"}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
	Module     *struct{ Main bool }
}

func listTree(t *testing.T) []pkg {
	t.Helper()
	touchTree(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH:", err)
	}
	cmd := exec.Command(goTool, "list", "-e", "-json=ImportPath,Imports,Deps", "../../...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// touchTree opens every directory and stats every Go file and go.mod of
// the tree. The go tool caches a test's result by the files the test
// process itself reads; go list reads them in a process of its own, so
// without this a cached pass would hide a new import.
func touchTree(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "../.." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			_, err = os.Stat(p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// allowed reports whether a rule's imports admit the project package p.
func allowed(imports []string, p string) bool {
	for _, a := range imports {
		if a == p || strings.HasSuffix(a, "/...") && strings.HasPrefix(p, strings.TrimSuffix(a, "...")) {
			return true
		}
	}
	return false
}

func isNetwork(p string) bool {
	return p == "net" || strings.HasPrefix(p, "net/") || strings.Contains(p, "libp2p") ||
		strings.HasPrefix(p, "golang.org/x/net") || strings.HasPrefix(p, "vendor/golang.org/x/net")
}

// TestLayering checks every package of the tree against rules.
func TestLayering(t *testing.T) {
	checked := map[string]bool{}
	for _, p := range listTree(t) {
		name, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		r, ok := rules[name]
		if !ok {
			t.Errorf("package %s has no row in internal/layering's rules: place it in the layers (ARCHITECTURE §2)", name)
			continue
		}
		checked[name] = true
		for _, imp := range p.Imports {
			if dep, ok := strings.CutPrefix(imp, module); ok && !allowed(r.imports, dep) {
				t.Errorf("%s imports %s: not allowed by the layering (ARCHITECTURE §2)", name, dep)
			}
			if imp == libp2pRoot && !slices.Contains(libp2pRootAllowed, name) {
				t.Errorf("%s imports the go-libp2p root package: only %v assemble hosts; take a host.Host", name, libp2pRootAllowed)
			}
			if r.pure && slices.ContainsFunc(pureForbidden, func(bad string) bool { return imp == bad || strings.HasPrefix(imp, bad+"/") }) {
				t.Errorf("%s imports %s: it must not do I/O", name, imp)
			}
		}
		for _, d := range p.Deps {
			if r.noNetwork && isNetwork(d) {
				t.Errorf("%s depends on the networking package %s", name, d)
			}
		}
	}
	for name := range rules {
		if !checked[name] {
			t.Errorf("rules has a row for %s, which is not in the tree: remove it", name)
		}
	}
}

// TestRulesAreLayered checks the table itself: no package may import
// itself or one that (transitively) may import it back.
func TestRulesAreLayered(t *testing.T) {
	var visit func(from string, seen []string)
	visit = func(from string, seen []string) {
		for _, to := range rules[from].imports {
			if strings.HasSuffix(to, "/...") {
				continue // the internal helpers are checked as rows of their own
			}
			if slices.Contains(seen, to) {
				t.Errorf("the rules allow a cycle: %s -> %s", strings.Join(seen, " -> "), to)
				continue
			}
			visit(to, append(slices.Clone(seen), to))
		}
	}
	for name := range rules {
		visit(name, []string{name})
	}
}
