package node

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/meshnode/meshnode/contacts"
)

// TestMemberDBPrefixesDistinct: the member database's key prefixes (every
// constant named pfx... in the package) are distinct bytes, wherever they
// are declared: two features sharing a prefix would read each other's
// records.
func TestMemberDBPrefixesDistinct(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[rune]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "pfx") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.CHAR {
						continue
					}
					v, _, _, err := strconv.UnquoteChar(strings.Trim(lit.Value, "'"), '\'')
					if err != nil {
						t.Fatal(err)
					}
					if other, dup := seen[v]; dup {
						t.Errorf("%s and %s are both %q", other, id.Name, v)
					}
					seen[v] = id.Name
				}
			}
		}
	}
	if pfxContacts != contacts.Namespace {
		t.Errorf("pfxContacts is %q, contacts.Namespace %q", pfxContacts, contacts.Namespace)
	}
	if len(seen) < 10 {
		t.Fatalf("found only %d prefixes: %v", len(seen), seen)
	}
}
