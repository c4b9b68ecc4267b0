package kmsimport

import (
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
	awsSDK    = []string{"github.com/aws/", module + "/kmsimport/aws"}
	cloudSDKs = append([]string{"cloud.google.com/", "google.golang.org/api/", "github.com/googleapis/", "github.com/Azure/",
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

// ceremonyAWSParts are the ceremony files that still speak AWS's types
// (the AWS requests and status a ceremony key's AWS part needs), each with
// its reason. Every other ceremony file is neutral; an entry no longer
// needed fails the test too, so the list only shrinks.
var ceremonyAWSParts = map[string]string{
	"config.go":      "builds the AWS import request (types.Tag) of a key's AWS part",
	"config_test.go": "checks the AWS import request a key's AWS part builds",
	"run.go":         "reads an AWS key's status (types.KeyState, Origin) to resume a key's AWS part",
	"validate.go":    "checks a key's AWS part against KMS's rules (tags, wrapping key spec)",
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

// TestCeremonyNeutralPartsImportNoAWSSDK fails when a ceremony file other
// than the AWS parts listed above imports AWS's SDK.
func TestCeremonyNeutralPartsImportNoAWSSDK(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "ceremony")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	used := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if forbiddenBy(path, awsSDK[:1]) == "" {
				continue
			}
			if _, ok := ceremonyAWSParts[name]; !ok {
				t.Errorf("ceremony/%s imports %s: only the AWS parts (%s) may; use the AWS adapter (kmsimport/aws) instead", name, path, strings.Join(keys(ceremonyAWSParts), ", "))
			}
			used[name] = true
		}
	}
	for name := range ceremonyAWSParts {
		if !used[name] {
			t.Errorf("ceremony/%s no longer imports AWS's SDK: remove it from ceremonyAWSParts", name)
		}
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
