package kmsimport

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The cloud-neutral core knows nothing of any cloud: these tests fail
// when code in it imports a cloud's SDK or adapter, directly or through
// another package of this module, so each cloud's parts stay behind its
// adapter (kmsimport/aws, kmsimport/gcp, kmsimport/azure). Google's and
// Azure's adapters must not reach AWS's SDK either.

const module = "github.com/kmsbridge/kmsbridge"

// Import path prefixes of the clouds' SDKs and adapters.
var (
	cloudSDKsOnly = []string{"github.com/aws/", "cloud.google.com/", "google.golang.org/api/", "github.com/googleapis/", "github.com/Azure/"}
	awsSDK        = []string{"github.com/aws/", module + "/kmsimport/aws"}
	cloudSDKs     = append([]string{"cloud.google.com/", "google.golang.org/api/", "github.com/googleapis/", "github.com/Azure/",
		module + "/kmsimport/gcp", module + "/kmsimport/azure"}, awsSDK...)
)

// neutral are the packages that must not depend on a cloud, with what
// each must not reach: the core, the journal, the record and the HSM side
// no cloud at all, the other clouds' adapters not AWS.
var neutral = []struct {
	pkg       string
	forbidden []string
}{
	{"kmsimport", cloudSDKs},
	{"journal", cloudSDKs},
	{"record", cloudSDKs},
	{"hsm", cloudSDKs},
	{"kmsimport/gcp", awsSDK},
	{"kmsimport/azure", awsSDK},
}

// forbiddenBy returns the prefix of forbidden that path is under, or "".
func forbiddenBy(path string, forbidden []string) string {
	for _, f := range forbidden {
		if path == strings.TrimSuffix(f, "/") || strings.HasPrefix(path, strings.TrimSuffix(f, "/")+"/") {
			return f
		}
	}
	return ""
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	return root
}

// TestCoreImportsNoCloudSDK walks the imports of each neutral package
// (and of its tests) through every package of this module they reach, and
// fails on any import of a cloud SDK or adapter it must not reach, naming
// the chain that leads to it.
func TestCoreImportsNoCloudSDK(t *testing.T) {
	root := moduleRoot(t)
	for _, n := range neutral {
		t.Run(n.pkg, func(t *testing.T) {
			seen := map[string]bool{}
			var walk func(path string, chain []string, withTests bool)
			walk = func(path string, chain []string, withTests bool) {
				if seen[path] && !withTests {
					return
				}
				seen[path] = true
				dir := filepath.Join(root, strings.TrimPrefix(strings.TrimPrefix(path, module), "/"))
				p, err := build.ImportDir(dir, 0)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				imports := p.Imports
				if withTests {
					imports = append(append(append([]string{}, imports...), p.TestImports...), p.XTestImports...)
				}
				for _, imp := range imports {
					next := append(append([]string{}, chain...), imp)
					switch {
					case forbiddenBy(imp, n.forbidden) != "":
						t.Errorf("%s imports %s, which %s must not reach: %s; move the cloud-specific part into that cloud's adapter (kmsimport/aws, kmsimport/gcp, kmsimport/azure)", path, imp, n.pkg, strings.Join(next, " -> "))
					case imp == module || strings.HasPrefix(imp, module+"/"):
						walk(imp, next, false)
					}
				}
			}
			walk(module+"/"+n.pkg, []string{module + "/" + n.pkg}, true)
		})
	}
}

// ceremonyAdapters are the clouds' adapters a ceremony uses.
var ceremonyAdapters = []string{module + "/kmsimport/aws", module + "/kmsimport/gcp", module + "/kmsimport/azure"}

// ceremonyCloudFiles is the adapters a ceremony file may import, by its
// name: each cloud's part of a ceremony lives in files named for it; nil
// for the core (config, plan, validation, run), which imports none.
func ceremonyCloudFiles(name string) []string {
	switch {
	case strings.HasPrefix(name, "aws_"):
		return ceremonyAdapters[:1]
	case name == "target_gcp.go":
		return ceremonyAdapters[1:2]
	case name == "target_azure.go":
		return ceremonyAdapters[2:]
	case name == "target_clouds.go":
		return ceremonyAdapters[1:]
	}
	return nil
}

// TestCeremonyImportsNoCloudSDK fails when any file of the ceremony
// package, its tests included, imports a cloud's SDK: a ceremony speaks
// to each cloud only through that cloud's adapter (kmsimport/aws,
// kmsimport/gcp, kmsimport/azure), never in the SDK's own types; and
// when a file of the ceremony's core (any but a cloud's own files and
// the tests) imports an adapter.
func TestCeremonyImportsNoCloudSDK(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "ceremony")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			name := filepath.Base(f)
			if sdk := forbiddenBy(path, cloudSDKsOnly); sdk != "" {
				t.Errorf("ceremony/%s imports %s, a cloud's SDK: reach the cloud through its adapter (kmsimport/aws, kmsimport/gcp, kmsimport/azure), adding there what the ceremony needs", name, path)
			}
			adapter := forbiddenBy(path, ceremonyAdapters)
			if adapter == "" || strings.HasSuffix(name, "_test.go") {
				continue
			}
			if allowed := ceremonyCloudFiles(name); allowed == nil || forbiddenBy(path, allowed) == "" {
				t.Errorf("ceremony/%s imports %s: only that cloud's own files (aws_*.go, target_gcp.go, target_azure.go, target_clouds.go) may; the ceremony's plan, validation and run core reaches each cloud through its part's functions or the targetCloud interface", name, path)
			}
		}
	}
}

// TestCeremonyCoreCallsNoAWSPart fails when a file of the ceremony's core
// (any but a cloud's own files, aws_*.go and target_*.go, and the tests)
// calls a function or method of the AWS KMS part (declared in aws_*.go)
// directly: the core reaches AWS KMS, like every cloud, through an
// interface (leadTarget, as the first of the key's targets; cloudPart,
// its part of a plan; targetCloud for the targets entries). Only the
// implementations of the core's interfaces (AWS methods named as a
// method of an interface the core declares) and the functions handing
// them out (those returning such an interface) are exempt, as what the
// core is given to call through the interface.
func TestCeremonyCoreCallsNoAWSPart(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "ceremony")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	parsed := map[string]*ast.File{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed[filepath.Base(f)] = af
	}
	// Without type information a call is known by its name only: a name
	// the core also declares (a validate method of its own) is not the
	// AWS part's alone, and is left out.
	ifaces := coreInterfaces(parsed)
	awsFuncs, coreFuncs := map[string]string{}, map[string]bool{}
	for name, af := range parsed {
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			switch {
			case !ok:
			case !strings.HasPrefix(name, "aws_"):
				coreFuncs[fd.Name.Name] = true
			case !implementsCore(fd, ifaces):
				awsFuncs[fd.Name.Name] = name
			}
		}
	}
	for _, want := range []string{"leadTarget", "cloudPart", "targetCloud"} {
		if ifaces.types[want] == 0 {
			t.Fatalf("the ceremony's core declares no interface %s: update this test to the core's interfaces", want)
		}
	}
	for fn := range coreFuncs {
		delete(awsFuncs, fn)
	}
	for _, want := range []string{"planAWS", "runAWS", "checkAWS", "validateAWS"} {
		if awsFuncs[want] == "" {
			t.Fatalf("ceremony/aws_*.go declares no %s: update this test to the AWS part's functions", want)
		}
	}
	for name, af := range parsed {
		if strings.HasPrefix(name, "aws_") || strings.HasPrefix(name, "target_") {
			continue
		}
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.Ident:
				fn = f.Name
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			}
			if decl := awsFuncs[fn]; decl != "" {
				t.Errorf("%s: ceremony/%s calls %s, the AWS KMS part's own (ceremony/%s): reach it through an interface of the core (leadTarget in targetlist.go, cloudPart in report_shape.go), adding there the capability the core needs", fset.Position(call.Pos()), name, fn, decl)
			}
			return true
		})
	}
}

// interfaces are the interface types the ceremony's core declares, and
// the names of their methods.
type interfaces struct {
	types   map[string]int
	methods map[string]bool
}

// coreInterfaces reads the interfaces declared in the core's files (any
// but a cloud's own, aws_*.go and target_*.go).
func coreInterfaces(parsed map[string]*ast.File) interfaces {
	in := interfaces{types: map[string]int{}, methods: map[string]bool{}}
	for name, af := range parsed {
		if strings.HasPrefix(name, "aws_") || strings.HasPrefix(name, "target_") {
			continue
		}
		ast.Inspect(af, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			it, ok := ts.Type.(*ast.InterfaceType)
			if !ok {
				return true
			}
			in.types[ts.Name.Name] = len(it.Methods.List)
			for _, m := range it.Methods.List {
				for _, id := range m.Names {
					in.methods[id.Name] = true
				}
			}
			return true
		})
	}
	return in
}

// implementsCore says whether fd is what the core reaches only through
// one of its interfaces: a method named as a method of one of them, or a
// function returning one of them.
func implementsCore(fd *ast.FuncDecl, in interfaces) bool {
	if fd.Recv != nil && in.methods[fd.Name.Name] {
		return true
	}
	if fd.Type.Results != nil {
		for _, r := range fd.Type.Results.List {
			if id, ok := r.Type.(*ast.Ident); ok && in.types[id.Name] > 0 {
				return true
			}
		}
	}
	return false
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
