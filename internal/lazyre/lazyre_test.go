package lazyre

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestCompiledOnFirstUseOnce(t *testing.T) {
	r := New(`^([a-z]+)-([0-9]{1,3})$`)
	if r.re != nil {
		t.Fatal("compiled by New: the point is to compile on first use")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if !r.MatchString("abc-12") || r.MatchString("abc-1234") {
				t.Error("MatchString disagrees with regexp")
			}
		})
	}
	wg.Wait()
	first := r.Regexp()
	if first == nil || r.Regexp() != first {
		t.Fatal("compiled more than once")
	}
	if m := r.FindStringSubmatch("ab-7"); len(m) != 3 || m[1] != "ab" || m[2] != "7" {
		t.Fatalf("FindStringSubmatch = %q", m)
	}
	if got := New(`[^a-z]+`).ReplaceAllString("a1b22c", "-"); got != "a-b-c" {
		t.Fatalf("ReplaceAllString = %q", got)
	}
	if got := New(`[0-9]+`).Split("a1b22c", -1); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("Split = %q", got)
	}
	if r.String() != `^([a-z]+)-([0-9]{1,3})$` {
		t.Fatalf("String = %q", r.String())
	}
}

func TestMustCompileAllNamesABadPattern(t *testing.T) {
	mu.Lock()
	saved := all
	all = nil
	mu.Unlock()
	defer func() { mu.Lock(); all = saved; mu.Unlock() }()
	New(`^ok$`)
	New(`^(unclosed$`)
	defer func() {
		p := recover()
		if p == nil || !strings.Contains(p.(string), "^(unclosed$") {
			t.Fatalf("MustCompileAll recovered %v, want a panic naming the bad pattern", p)
		}
	}()
	MustCompileAll()
}

// TestNoPatternCompiledAtStartUp fails when a package kmsbridge links
// compiles a regular expression while it is initialised (a package-level
// regexp.MustCompile or regexp.Compile, or one in an init function):
// every kmsbridge process would pay for it. Use lazyre.New. The emulators
// are long-running servers that use their patterns on every request, so
// they may compile them up front.
func TestNoPatternCompiledAtStartUp(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	servers := map[string]bool{"kmsemu": true, "gcpemu": true, "azkvemu": true,
		"cmd/kms-emulator": true, "cmd/gcp-kms-emulator": true, "cmd/azure-kv-emulator": true}
	var problems []string
	scanned := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "test" || servers[rel]) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		scanned++
		name := map[string]bool{}
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == "regexp" {
				n := "regexp"
				if im.Name != nil {
					n = im.Name.Name
				}
				name[n] = true
			}
		}
		if len(name) == 0 {
			return nil
		}
		for _, decl := range f.Decls {
			var node ast.Node
			switch d := decl.(type) {
			case *ast.GenDecl:
				if d.Tok != token.VAR {
					continue
				}
				node = d
			case *ast.FuncDecl:
				if d.Recv != nil || d.Name.Name != "init" {
					continue
				}
				node = d
			default:
				continue
			}
			called := map[*ast.FuncLit]bool{}
			ast.Inspect(node, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.FuncLit:
					// A function value stored in a variable runs when
					// called, not at start-up; one called at once,
					// func() { ... }(), runs at start-up.
					_, isInit := node.(*ast.FuncDecl)
					return isInit || called[n]
				case *ast.CallExpr:
					if lit, ok := n.Fun.(*ast.FuncLit); ok {
						called[lit] = true
					}
					sel, ok := n.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					if x, ok := sel.X.(*ast.Ident); ok && name[x.Name] && strings.Contains(sel.Sel.Name, "Compile") {
						problems = append(problems, fmt.Sprintf("%s: %s.%s at start-up", rel, x.Name, sel.Sel.Name))
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 50 {
		t.Fatalf("scanned only %d files under %s: the walk is broken", scanned, root)
	}
	for _, p := range problems {
		t.Errorf("%s: every kmsbridge process would compile it; use lazyre.New", p)
	}
}
