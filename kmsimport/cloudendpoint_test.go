package kmsimport

import (
	"crypto/x509"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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

// TestCheckCloudEndpointIsOnePolicy: for any cloud, the rules are the
// same: its own endpoints over https on 443; any other only when named
// and confirmed (same scheme, host and port); plain http only to
// loopback, even confirmed; no credentials in the URL; and the decision
// is what Endpoint says.
func TestCheckCloudEndpointIsOnePolicy(t *testing.T) {
	g := Genuine{Cloud: "example", Match: func(h string) (string, bool) {
		return "example.net", strings.HasSuffix(h, ".example.net")
	}, Names: "an Example endpoint (*.example.net)"}
	for _, c := range []struct {
		endpoint string
		allowed  []string
		as, want string
	}{
		{"", nil, "example", ""},
		{"https://kms.example.net", nil, "example", ""},
		{"https://KMS.Example.NET:443/", nil, "example", ""},
		{"https://kms.example.net:8443", nil, "", "not an Example endpoint"},
		{"https://kms.example.net.evil.test", nil, "", "not an Example endpoint"},
		{"https://evil.test", nil, "", "--allow-endpoint https://evil.test"},
		{"https://evil.test", []string{"https://evil.test:443"}, AllowedOptIn, ""},
		{"https://evil.test", []string{"https://evil.test:8443"}, "", "nor the confirmed"},
		{"http://127.0.0.1:9000", []string{"http://127.0.0.1:9000"}, AllowedOptIn, ""},
		{"http://localhost:9000", []string{"http://127.0.0.1:9000"}, "", "nor the confirmed"},
		{"http://127.0.0.1:9000", nil, "", "--allow-endpoint http://127.0.0.1:9000"},
		{"http://kms.example.net", nil, "", "plain http is allowed only to a loopback address"},
		{"http://10.0.0.1:80", []string{"http://10.0.0.1:80"}, "", "plain http is allowed only to a loopback address"},
		{"https://u:p@kms.example.net", nil, "", "credentials"},
		{"https://kms.example.net/v1/keys", nil, "", "has a path"},
		{"ftp://kms.example.net", nil, "", "not an endpoint URL"},
	} {
		ep, err := CheckCloudEndpoint(g, c.endpoint, "https://default.example.net", c.allowed)
		if c.want != "" {
			if err == nil || !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CheckCloudEndpoint(%q, %q) = %v, want a refusal with %q", c.endpoint, c.allowed, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("CheckCloudEndpoint(%q, %q) = %v", c.endpoint, c.allowed, err)
			continue
		}
		if e := ep.Endpoint(); e.AllowedAs != c.as || e.Cloud != "example" {
			t.Errorf("CheckCloudEndpoint(%q, %q).Endpoint() = %+v, want AllowedAs %q, Cloud example", c.endpoint, c.allowed, e, c.as)
		}
	}
}

// TestCloudHTTPClientChecksEveryRequest: the HTTP client a cloud's SDK
// sends through refuses, per request, any URL the policy refuses, and
// notes the TLS peer of what it allowed.
func TestCloudHTTPClientChecksEveryRequest(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(srv.Close)
	other, n := countingServer(t)
	g := Genuine{Cloud: "example", Match: func(string) (string, bool) { return "", false }, Names: "an Example endpoint"}
	ep, err := CheckCloudEndpoint(g, srv.URL, "", []string{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	hc := ep.HTTPClient(5*time.Second, pool)
	resp, err := hc.Get(srv.URL + "/keys/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	e := ep.Endpoint()
	if e.TLS == nil || e.TLS.SPKISHA256 == "" || e.AllowedAs != AllowedOptIn {
		t.Errorf("after a request: %+v, want the TLS peer noted", e)
	}
	_, err = hc.Get(other.URL + "/keys/k")
	var ee *EndpointError
	if !errors.As(err, &ee) || n.Load() != 0 {
		t.Errorf("a request elsewhere: %v (%d reached it), want an *EndpointError and nothing sent", err, n.Load())
	}
}

// countingServer counts the requests that reach it: a refusal must leave it at 0.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "fake", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}
