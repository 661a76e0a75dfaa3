package dmap

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"
)

// declaredErrors lists the exported Err variables the Go file path declares; with reexport,
// it fails the test for one whose value is not the engine's variable of the same name.
func declaredErrors(t *testing.T, path string, reexport bool) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Err") {
						continue
					}
					names = append(names, n.Name)
					if !reexport {
						continue
					}
					if !isEngineVar(vs.Values[i], n.Name) {
						t.Errorf("%s is not engine.%s", n.Name, n.Name)
					}
				}
			}
		}
	}
	return names
}

// TestErrorsAreTheEngines: dmap re-exports every sentinel of the engine a user can meet (all
// but the re-routing ones a caller never sees), each the engine's own value, so that errors.Is
// matches an error from the engine, local or remote, with dmap's sentinel.
func TestErrorsAreTheEngines(t *testing.T) {
	internalOnly := []string{"ErrWrongOwner", "ErrNoLease"}
	var want []string
	for _, n := range declaredErrors(t, "../internal/engine/errors.go", false) {
		if !slices.Contains(internalOnly, n) {
			want = append(want, n)
		}
	}
	got := declaredErrors(t, "errors.go", true)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("dmap declares %v, the engine's user-facing errors are %v", got, want)
	}
}

// isEngineVar reports whether e is the expression engine.name.
func isEngineVar(e ast.Expr, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	return ok && x.Name == "engine" && sel.Sel.Name == name
}
