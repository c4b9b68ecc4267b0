package kmsimport

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cloudConstructors are the SDK calls that make a client of a cloud other
// than AWS (AWS's: TestOneKMSClientConstructor), and the one file allowed
// to call each.
var cloudConstructors = map[string]string{
	"cloud.google.com/go/kms/apiv1.NewKeyManagementClient":                                filepath.Join("kmsimport", "gcp", "client.go"),
	"cloud.google.com/go/kms/apiv1.NewKeyManagementRESTClient":                            filepath.Join("kmsimport", "gcp", "client.go"),
	"cloud.google.com/go/kms/apiv1.NewEkmClient":                                          filepath.Join("kmsimport", "gcp", "client.go"),
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys.NewClient":            filepath.Join("kmsimport", "azure", "client.go"),
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys.NewClientWithOptions": filepath.Join("kmsimport", "azure", "client.go"),
}

// policyCalls are the calls that apply the endpoint policy: the shared
// kmsimport.CheckCloudEndpoint, or a cloud package's own function whose
// body calls it (checked below).
var policyCalls = map[string]bool{"CheckCloudEndpoint": true, "checkEndpoint": true, "vaultEndpoint": true}

// TestEveryCloudClientGoesThroughThePolicy: a Cloud KMS or Key Vault
// client is made only in its cloud's client.go, in a function that has
// applied the one endpoint policy (kmsimport.CheckCloudEndpoint, directly
// or through the cloud's checkEndpoint/vaultEndpoint, each of which must
// call it) before the SDK's constructor; a Key Vault client sends through
// the policy's HTTP client (CloudEndpoint.HTTPClient), so the transport
// checks every request. Code that makes a cloud client any other way
// fails this test.
func TestEveryCloudClientGoesThroughThePolicy(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := map[string]int{}
	wrappers := map[string]bool{} // policy wrappers seen calling CheckCloudEndpoint
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "test" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		names := map[string]string{}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			name := p[strings.LastIndex(p, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			names[name] = p
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			var policyAt token.Pos // first policy call in fn
			httpClient := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "HTTPClient" {
					httpClient = true
				}
				return true
			})
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				var name string
				switch fun := call.Fun.(type) {
				case *ast.Ident:
					name = fun.Name
				case *ast.SelectorExpr:
					name = fun.Sel.Name
					if pkg, ok := fun.X.(*ast.Ident); ok {
						target := names[pkg.Name] + "." + fun.Sel.Name
						if allowedFile, ok := cloudConstructors[target]; ok {
							found[target]++
							switch {
							case rel != allowedFile:
								t.Errorf("%s: %s makes a cloud client outside %s, around the endpoint policy", fset.Position(call.Pos()), target, allowedFile)
							case policyAt == token.NoPos || policyAt > call.Pos():
								t.Errorf("%s: %s is called in %s before the endpoint policy (kmsimport.CheckCloudEndpoint) was applied", fset.Position(call.Pos()), target, fn.Name.Name)
							case strings.Contains(target, "azkeys") && !httpClient:
								t.Errorf("%s: the Key Vault client in %s does not send through the policy's HTTP client (CloudEndpoint.HTTPClient)", fset.Position(call.Pos()), fn.Name.Name)
							}
						}
					}
				}
				if policyCalls[name] && policyAt == token.NoPos {
					policyAt = call.Pos()
				}
				if name == "CheckCloudEndpoint" && (fn.Name.Name == "checkEndpoint" || fn.Name.Name == "vaultEndpoint") {
					wrappers[fn.Name.Name] = true
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"cloud.google.com/go/kms/apiv1.NewKeyManagementClient", "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys.NewClient"} {
		if found[c] == 0 {
			t.Errorf("no call of %s found: the test no longer sees the constructors it guards", c)
		}
	}
	for _, w := range []string{"checkEndpoint", "vaultEndpoint"} {
		if !wrappers[w] {
			t.Errorf("%s no longer calls kmsimport.CheckCloudEndpoint: the cloud's clients would be made around the one policy", w)
		}
	}
}
