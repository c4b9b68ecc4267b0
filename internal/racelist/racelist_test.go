package racelist

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// syncImports are packages whose use means goroutines share state.
var syncImports = map[string]bool{
	"sync": true, "sync/atomic": true,
	"golang.org/x/sync/errgroup": true, "golang.org/x/sync/semaphore": true, "golang.org/x/sync/singleflight": true,
}

// servers are the calls that start a server, whose handlers run on
// goroutines of their own, by import path.
var servers = map[string]map[string]bool{
	"net/http":                    {"Serve": true, "ServeTLS": true, "ListenAndServe": true, "ListenAndServeTLS": true, "Server": true},
	"net/http/httptest":           {"NewServer": true, "NewTLSServer": true, "NewUnstartedServer": true},
	"google.golang.org/grpc":      {"NewServer": true},
	"google.golang.org/grpc/test": {},
}

// concurrency returns why the package in dir (its tests included) runs
// code on more than one goroutine, or nothing.
func concurrency(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var why []string
	seen := map[string]bool{}
	add := func(format string, a ...any) {
		if w := fmt.Sprintf(format, a...); !seen[w] {
			seen[w] = true
			why = append(why, w)
		}
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		names := map[string]string{} // local name -> import path
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if syncImports[p] {
				add("%s imports %s", e.Name(), p)
			}
			n := p[strings.LastIndex(p, "/")+1:]
			if im.Name != nil {
				n = im.Name.Name
			}
			names[n] = p
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				add("%s starts a goroutine", e.Name())
			case *ast.FuncDecl:
				if n.Recv != nil && n.Name.Name == "ServeHTTP" {
					add("%s serves HTTP (ServeHTTP)", e.Name())
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok {
					if p, ok := names[x.Name]; ok && servers[p][n.Sel.Name] {
						add("%s starts a server (%s.%s)", e.Name(), x.Name, n.Sel.Name)
					}
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Parallel" && len(n.Args) == 0 && strings.HasSuffix(e.Name(), "_test.go") {
					add("%s runs parallel tests", e.Name())
				}
			}
			return true
		})
	}
	return why, nil
}

// listed reads packages.txt: one package a line, as ./dir, with # comments.
func listed(t *testing.T) map[string]bool {
	f, err := os.Open("packages.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(strings.SplitN(s.Text(), "#", 2)[0])
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "./") || strings.ContainsAny(line, " \t") {
			t.Fatalf("packages.txt: %q: want one package a line, as ./dir", line)
		}
		if out[line] {
			t.Errorf("packages.txt: %s listed twice", line)
		}
		out[line] = true
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRaceListIsExactlyTheConcurrentPackages fails when a package of the
// root module runs code on several goroutines (its tests included) and is
// not in packages.txt, so its unit tests would run without the race
// detector; and when a listed package no longer does, so the list cannot
// outgrow the code.
func TestRaceListIsExactlyTheConcurrentPackages(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	list := listed(t)
	found := map[string][]string{}
	pkgs := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if rel != "." && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_") || d.Name() == "testdata" || rel == "test") {
			return filepath.SkipDir // test/ is a module of its own, with its own list in the Makefile
		}
		if m, _ := filepath.Glob(filepath.Join(path, "*.go")); len(m) == 0 {
			return nil
		}
		pkgs++
		why, err := concurrency(path)
		if err != nil {
			return err
		}
		if len(why) > 0 {
			found["./"+rel] = why
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if pkgs < 30 || len(found) < 10 {
		t.Fatalf("found %d packages, %d of them concurrent, under %s: the walk is broken", pkgs, len(found), root)
	}
	var missing []string
	for p := range found {
		if !list[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("%s runs code on several goroutines (%s) but is not in internal/racelist/packages.txt: add it, so make test runs its tests with -race", p, strings.Join(found[p], "; "))
	}
	for p := range list {
		if _, ok := found[p]; !ok {
			t.Errorf("internal/racelist/packages.txt lists %s, which starts no goroutine, uses no sync, serves nothing and runs no parallel test (or does not exist): remove it", p)
		}
	}
}
