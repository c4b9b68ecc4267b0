package safefile

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
	"testing"
)

// banned are the functions that open or read a file by name without
// safefile's checks (a symlink followed, a FIFO waited on, /dev/zero read
// without end, a device truncated), by import path. Referring to one in
// any way (a call, or a function value) outside this package is a
// failure unless allowed below.
var banned = map[string]map[string]bool{
	"os": {"Open": true, "OpenFile": true, "ReadFile": true, "Create": true, "WriteFile": true,
		"NewFile": true, "DirFS": true, "OpenRoot": true, "OpenInRoot": true, "CopyFS": true},
	"io/ioutil":             {"ReadFile": true, "ReadAll": true, "WriteFile": true, "ReadDir": true, "TempFile": true},
	"io/fs":                 {"ReadFile": true},
	"syscall":               {"Open": true, "Openat": true, "Creat": true},
	"golang.org/x/sys/unix": {"Open": true, "Openat": true, "Openat2": true, "Creat": true},
	"crypto/tls":            {"LoadX509KeyPair": true},
}

// boundedReaders are the calls whose result io.ReadAll may read: each
// stops after a cap.
var boundedReaders = map[string]map[string]bool{
	"io":       {"LimitReader": true},
	"net/http": {"MaxBytesReader": true},
	"github.com/kmsbridge/kmsbridge/internal/safefile": {"Limit": true},
}

// allowed are the exceptions, by file (from the module root) and the
// function named, each with its reason. An entry no longer used fails the
// test too, so the list cannot outgrow the code.
var allowed = map[string]string{
	"cmd/kmsbridge/flags.go os.OpenFile":   "/dev/tty, to ask a yes/no question: a terminal, a character device by design, named by kmsbridge, never by the user",
	"cmd/kmsbridge/pin.go os.OpenFile":     "/dev/tty, for the no-echo PIN prompt: a terminal, a character device by design, named by kmsbridge, never by the user",
	"cmd/kmsbridge/docs.go os.WriteFile":   "gen-docs writes docs/cli-reference.md and the man page into the source tree for developers; it reads nothing",
	"kmsimport/httpclient.go io.ReadAll":   "the body of a KMS request the SDK built in memory, a few KB: not a file",
	"softhsm/softhsm.go os.OpenFile":       "writes softhsm2.conf (O_EXCL) into the new directory of a throwaway test token it made itself",
	"softhsm/opencryptoki.go os.OpenFile":  "the lock file of opencryptoki's shared test store, held with flock while a test uses it; nothing is read from it",
	"softhsm/opencryptoki.go os.WriteFile": "marker and pid files in opencryptoki's test store, which only the test helper itself reads back (through safefile)",
}

// TestEveryFileIsReadThroughSafefile fails when any non-test Go file of
// the module (kmsbridge, the emulator, every package; not test/, a module
// of its own) opens or reads a file any other way than through this
// package. It scans every file, so new code is caught, not a list.
func TestEveryFileIsReadThroughSafefile(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	used := map[string]bool{}
	var problems []string
	scanned := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || rel == "internal/safefile" {
				return filepath.SkipDir
			}
			// Another module (test/) has its own rules.
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		scanned++
		for _, p := range scanFile(t, path, rel) {
			key := rel + " " + p.fn
			if _, ok := allowed[key]; ok {
				used[key] = true
				continue
			}
			problems = append(problems, fmt.Sprintf("%s:%d: %s: open and read files with safefile (Open, OpenFile, Read, ReadContext), or add an entry with its reason to allowed", rel, p.line, p.what))
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
		t.Error(p)
	}
	for key := range allowed {
		if !used[key] {
			t.Errorf("allowed entry %q matches no code any more: remove it", key)
		}
	}
}

type finding struct {
	line     int
	fn, what string
}

// scanFile lists the banned references in one file, resolving import
// names (renamed imports included; a dot import of a banned package is a
// finding of its own).
func scanFile(t *testing.T, path, rel string) []finding {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	names := map[string]string{} // local name -> import path
	var out []finding
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name == "." && (banned[p] != nil) {
			out = append(out, finding{fset.Position(imp.Pos()).Line, p + ".", "dot import of " + p})
		}
		names[name] = p
	}
	pkgOf := func(e ast.Expr) (string, string, bool) {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return "", "", false
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok {
			return "", "", false
		}
		p, ok := names[id.Name]
		return p, sel.Sel.Name, ok
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			// io.ReadAll only of a reader that stops after a cap.
			if p, fn, ok := pkgOf(n.Fun); ok && p == "io" && fn == "ReadAll" {
				bounded := false
				if len(n.Args) == 1 {
					if call, ok := n.Args[0].(*ast.CallExpr); ok {
						if bp, bfn, ok := pkgOf(call.Fun); ok && boundedReaders[bp][bfn] {
							bounded = true
						}
					}
				}
				if !bounded {
					out = append(out, finding{fset.Position(n.Pos()).Line, "io.ReadAll", "io.ReadAll of a reader with no cap"})
				}
			}
		case *ast.SelectorExpr:
			if p, fn, ok := pkgOf(n); ok && banned[p][fn] {
				short := p[strings.LastIndex(p, "/")+1:]
				out = append(out, finding{fset.Position(n.Pos()).Line, short + "." + fn, p + "." + fn})
			}
		}
		return true
	})
	return out
}

// TestTheScanFindsWhatItMust runs the scan on code that reads files each
// banned way, so that a scan broken into finding nothing fails here.
func TestTheScanFindsWhatItMust(t *testing.T) {
	src := `package x

import (
	"io"
	xos "os"
	"io/ioutil"
	"net/http"
)

var open = xos.Open

func f(r io.Reader, w http.ResponseWriter, req *http.Request) {
	xos.ReadFile("a")
	xos.OpenFile("a", xos.O_RDONLY, 0)
	ioutil.ReadFile("a")
	io.ReadAll(r)
	io.ReadAll(io.LimitReader(r, 10))
	io.ReadAll(http.MaxBytesReader(w, req.Body, 10))
	xos.Create("b")
}
`
	p := filepath.Join(t.TempDir(), "x.go")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range scanFile(t, p, "x.go") {
		got = append(got, f.fn)
	}
	want := "os.Open os.ReadFile os.OpenFile ioutil.ReadFile io.ReadAll os.Create"
	if strings.Join(got, " ") != want {
		t.Fatalf("found %q, want %q", strings.Join(got, " "), want)
	}
}
