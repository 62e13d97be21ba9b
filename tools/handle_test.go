package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/signalsmith/agent-server/store"
)

// handleFile is the one file of the package that may hold the warehouse
// and mask previews itself.
const handleFile = "handle.go"

// TestNoToolReachesTheUnboundWarehouse holds the line of handle.go: no
// field of Deps can carry a warehouse, and no file of the package but
// handle.go has an expression of type store.Warehouse (a field, a call of
// its Query or CheckSQL, a conversion) or masks a preview itself, so a
// tool can only query through the caller's bound handle. The checker is
// run on the package as it is and on the package with a file added that
// breaks each rule, so it is shown to catch what it looks for.
func TestNoToolReachesTheUnboundWarehouse(t *testing.T) {
	t.Parallel()
	wh := reflect.TypeFor[store.Warehouse]()
	deps := reflect.TypeFor[Deps]()
	for i := range deps.NumField() {
		if f := deps.Field(i); f.Type == wh || f.Type.Implements(wh) {
			t.Errorf("Deps.%s (%s) can carry a warehouse", f.Name, f.Type)
		}
	}

	exports, files := goListExports(t)
	cases := []struct {
		name  string
		extra string
		want  []string // substrings of the uses to be found outside handle.go
	}{
		{"the package as it is", "", nil},
		{"a tool that queries the raw warehouse", `package tools
import ("context"; "github.com/signalsmith/agent-server/store")
func leak(ctx context.Context, call *Call) { _, _ = call.Warehouse.ws.wh.Query(ctx, store.QueryLimits{}, "SELECT 1") }
`, []string{"store.Warehouse"}},
		{"a tool with a warehouse of its own", `package tools
import "github.com/signalsmith/agent-server/store"
type own struct{ w store.Warehouse }
func (o own) check() { _ = o.w.CheckSQL }
`, []string{"store.Warehouse"}},
		{"a tool that masks by itself", `package tools
import "github.com/signalsmith/agent-server/guardrails"
var _ = guardrails.MaskPreview
`, []string{"guardrails.MaskPreview"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inHandle, outside := rawWarehouseUses(t, exports, files, tc.extra)
			if inHandle == 0 {
				t.Fatalf("found no use of the warehouse in %s: the check looks at nothing", handleFile)
			}
			if len(tc.want) == 0 && len(outside) > 0 {
				t.Errorf("the unbound warehouse or masking is used outside %s:\n%s", handleFile, strings.Join(outside, "\n"))
			}
			for _, w := range tc.want {
				found := false
				for _, o := range outside {
					found = found || strings.Contains(o, w)
				}
				if !found {
					t.Errorf("the added file's use of %s was not found; found: %v", w, outside)
				}
			}
		})
	}
}

// goListExports returns the export data files of the package's
// dependencies by import path, and the package's own non-test files.
func goListExports(t *testing.T) (map[string]string, []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-export", "-deps", "-json=ImportPath,Export,Dir,GoFiles", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	var files []string
	self, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath, Export, Dir string
			GoFiles                 []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		if p.Dir == self {
			for _, f := range p.GoFiles {
				files = append(files, filepath.Join(p.Dir, f))
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("go list named no files of package tools")
	}
	return exports, files
}

// rawWarehouseUses type-checks the package's files (plus extra, a file's
// source, when not empty) and counts the expressions of type
// store.Warehouse and the uses of guardrails' preview masking in
// handle.go, and lists those elsewhere.
func rawWarehouseUses(t *testing.T, exports map[string]string, files []string, extra string) (int, []string) {
	t.Helper()
	fset := token.NewFileSet()
	var parsed []*ast.File
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
	}
	if extra != "" {
		f, err := parser.ParseFile(fset, "extra.go", extra, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
	}
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, errors.New("no export data for " + path)
		}
		return os.Open(file)
	})
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: imp}
	if _, err := conf.Check("github.com/signalsmith/agent-server/tools", fset, parsed, info); err != nil {
		t.Fatalf("type-check package tools: %v", err)
	}
	inHandle := 0
	var outside []string
	note := func(pos token.Pos, what string) {
		p := fset.Position(pos)
		if filepath.Base(p.Filename) == handleFile {
			inHandle++
			return
		}
		outside = append(outside, p.String()+": "+what)
	}
	for expr, tv := range info.Types {
		if named, ok := tv.Type.(*types.Named); ok && isObject(named.Obj(), "store", "Warehouse") {
			note(expr.Pos(), "an expression of type store.Warehouse")
		}
	}
	for id, obj := range info.Uses {
		if isObject(obj, "guardrails", "MaskPreview") || isObject(obj, "guardrails", "PreviewColumns") {
			note(id.Pos(), "guardrails."+obj.Name())
		}
	}
	return inHandle, outside
}

// isObject reports whether obj is the package-level name of the module's
// package pkg (its last path element).
func isObject(obj types.Object, pkg, name string) bool {
	return obj != nil && obj.Pkg() != nil && obj.Name() == name &&
		obj.Pkg().Path() == "github.com/signalsmith/agent-server/"+pkg
}

// TestUnboundWarehouseRefusesEverything: a call the gate did not bind a
// warehouse to runs no query.
func TestUnboundWarehouseRefusesEverything(t *testing.T) {
	t.Parallel()
	var w *Warehouse
	ctx := context.Background()
	cases := []struct {
		name string
		run  func() error
	}{
		{"Tables", func() error { _, err := w.Tables(ctx); return err }},
		{"Describe", func() error { _, err := w.Describe(ctx, "analytics", "customers"); return err }},
		{"CheckSQL", func() error { _, err := w.CheckSQL(ctx, "SELECT 1"); return err }},
		{"Count", func() error { _, err := w.Count(ctx, nil); return err }},
		{"Filtered", func() error { _, err := w.Filtered(ctx); return err }},
		{"Preview", func() error {
			_, err := w.Preview(ctx, []store.Column{{Name: "id", PII: store.PIINone}}, 5, "the preview", func([]string, int) (string, []any, error) {
				return "SELECT 1 AS id", nil, nil
			})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.run(); !errors.Is(err, errUnbound) {
				t.Errorf("err = %v, want %v", err, errUnbound)
			}
		})
	}
}
