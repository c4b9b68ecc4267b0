package ceremony

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The ceremony's core structs (those declared in any file but a cloud's
// own, aws_*.go and target_*.go) hold no AWS part: a cloud's fields live
// behind its adapter (Plan.part, Outcome.results, Clouds), so the core
// cannot come to depend on AWS again one field at a time.

// awsPackages are the import paths whose types are AWS's own.
var awsPackages = []string{"github.com/kmsbridge/kmsbridge/kmsimport/aws", "github.com/aws/"}

// coreStructExempt are core fields allowed an AWS name, with the reason.
var coreStructExempt = map[string]string{
	// The ceremony file's own aws: switch, as the operator writes it
	// (config.go); it is a bool, and says nothing of how AWS is reached.
	"Key.AWS": "the file's aws: field",
}

// awsTypes is the type names the AWS part declares (in aws_*.go).
func awsTypes(files map[string]*ast.File) map[string]bool {
	types := map[string]bool{}
	for name, af := range files {
		if !strings.HasPrefix(name, "aws_") {
			continue
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				types[ts.Name.Name] = true
			}
			return true
		})
	}
	return types
}

// awsFields lists the fields of the structs declared in af (named or
// anonymous, at any depth) that are named aws* (an embedding by its
// type's name) or whose type names an AWS type: one the AWS part
// declares (aws), or one of an AWS package, through pointers, slices,
// maps, channels, functions and generic arguments.
func awsFields(fset *token.FileSet, af *ast.File, aws map[string]bool) []string {
	pkgs := map[string]string{} // local name -> import path
	for _, imp := range af.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := filepath.Base(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		pkgs[name] = path
	}
	isAWSPkg := func(x string) bool {
		for _, p := range awsPackages {
			if path := pkgs[x]; path == strings.TrimSuffix(p, "/") || strings.HasPrefix(path, p) {
				return true
			}
		}
		return false
	}
	// awsIn is the first AWS type t names, or "".
	var awsIn func(t ast.Expr) string
	awsIn = func(t ast.Expr) string {
		found := ""
		ast.Inspect(t, func(n ast.Node) bool {
			if found != "" {
				return false
			}
			switch n := n.(type) {
			case *ast.StructType:
				return false // an anonymous struct's fields are checked as its own
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && isAWSPkg(x.Name) {
					found = x.Name + "." + n.Sel.Name
				}
				return false
			case *ast.Ident:
				if aws[n.Name] {
					found = n.Name
				}
			}
			return true
		})
		return found
	}
	var out []string
	var walk func(owner string, st *ast.StructType)
	walk = func(owner string, st *ast.StructType) {
		for _, f := range st.Fields.List {
			names := []string{}
			for _, id := range f.Names {
				names = append(names, id.Name)
			}
			if len(f.Names) == 0 { // embedded: named by its type
				t := f.Type
				if s, ok := t.(*ast.StarExpr); ok {
					t = s.X
				}
				switch t := t.(type) {
				case *ast.Ident:
					names = append(names, t.Name)
				case *ast.SelectorExpr:
					names = append(names, t.Sel.Name)
				}
			}
			where := fset.Position(f.Pos()).String()
			for _, n := range names {
				if _, ok := coreStructExempt[owner+"."+n]; ok {
					continue
				}
				if strings.HasPrefix(strings.ToLower(n), "aws") {
					out = append(out, where+": "+owner+"."+n+" is named for AWS")
				}
			}
			if typ := awsIn(f.Type); typ != "" {
				out = append(out, where+": "+owner+"."+strings.Join(names, ",")+" has AWS type "+typ)
			}
		}
	}
	ast.Inspect(af, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.TypeSpec:
			if st, ok := n.Type.(*ast.StructType); ok {
				walk(n.Name.Name, st)
				// Its nested anonymous structs are reached below, named
				// by their position.
			}
		case *ast.StructType:
			if !isTopLevel(af, n) {
				walk("struct@"+fset.Position(n.Pos()).String(), n)
			}
		}
		return true
	})
	return out
}

// isTopLevel says whether st is the type of a type declaration (which
// awsFields checks under the type's name).
func isTopLevel(af *ast.File, st *ast.StructType) bool {
	top := false
	ast.Inspect(af, func(n ast.Node) bool {
		if ts, ok := n.(*ast.TypeSpec); ok && ts.Type == st {
			top = true
		}
		return !top
	})
	return top
}

// TestCeremonyCoreStructsHoldNoAWSPart fails when a struct of the
// ceremony's core (any file but aws_*.go and target_*.go) has a field or
// embedding named aws*, or one of an AWS type (declared in aws_*.go, or
// from kmsimport/aws or AWS's SDK): such a part belongs behind the AWS
// adapter (Plan.part, Outcome.results, Clouds.AWS).
func TestCeremonyCoreStructsHoldNoAWSPart(t *testing.T) {
	paths, err := filepath.Glob("*.go")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Go files: %v", err)
	}
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = af
	}
	aws := awsTypes(files)
	for _, want := range []string{"awsPlan", "awsOutcome", "AWSClients", "awsTarget"} {
		if !aws[want] {
			t.Fatalf("aws_*.go declares no %s: update this test to the AWS part's types", want)
		}
	}
	var problems []string
	for name, af := range files {
		if strings.HasPrefix(name, "aws_") || strings.HasPrefix(name, "target_") {
			continue
		}
		problems = append(problems, awsFields(fset, af, aws)...)
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Errorf("%s: move it behind the AWS part (aws_*.go: Plan.part, Outcome.results, Clouds.AWS), and reach it through the core's interfaces", p)
	}
}

// TestCoreStructsGuardFinds: the guard above finds every way a core
// struct can come to hold an AWS part, so it fails when one does.
func TestCoreStructsGuardFinds(t *testing.T) {
	const src = `package ceremony

import (
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	sdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

type Plan struct {
	awsOutcome
	*AWSClients
	Spec     awskms.KeySpec
	Results  map[string][]*awskms.Result
	Call     func(sdk.Options) error
	AwsThing int
	Nested   struct{ Inner awsPlan }
	Fine     gcp.Result
	Also     []string
}

type Key struct {
	AWS *bool
}
`
	fset := token.NewFileSet()
	af, err := parser.ParseFile(fset, "core.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(awsFields(fset, af, map[string]bool{"awsOutcome": true, "AWSClients": true, "awsPlan": true}), "\n")
	for _, want := range []string{"Plan.awsOutcome is named for AWS", "Plan.awsOutcome has AWS type awsOutcome", "Plan.AWSClients has AWS type",
		"Plan.Spec has AWS type awskms.KeySpec", "Plan.Results has AWS type awskms.Result", "Plan.Call has AWS type sdk.Options",
		"Plan.AwsThing is named for AWS", ".Inner has AWS type awsPlan"} {
		if !strings.Contains(got, want) {
			t.Errorf("the guard does not find %q; it found:\n%s", want, got)
		}
	}
	for _, clean := range []string{"Fine", "Also", "Key.AWS"} {
		if strings.Contains(got, clean) {
			t.Errorf("the guard finds %s, which holds no AWS part (or is exempt):\n%s", clean, got)
		}
	}
}
