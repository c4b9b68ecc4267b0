package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/kmsbridge/kmsbridge/kmsemu"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// cleanAWSEnv gives NewClient an environment with dummy credentials and
// no AWS configuration but what a test sets.
func cleanAWSEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS", "AWS_PROFILE", "AWS_CA_BUNDLE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "HTTPS_PROXY", "https_proxy"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return dir
}

// TestNewClientRefusesEveryConfiguredEndpoint drives NewClient through
// every way the SDK lets an endpoint be configured besides the one
// kmsbridge accepts: each is refused before any request.
func TestNewClientRefusesEveryConfiguredEndpoint(t *testing.T) {
	for _, tt := range []struct {
		name   string
		setup  func(t *testing.T, dir, fake string) ClientOptions
		source string
	}{
		{"flag without opt-in", func(t *testing.T, dir, fake string) ClientOptions {
			return ClientOptions{EndpointURL: fake}
		}, "not an endpoint AWS serves"},
		{"ceremony file without opt-in", func(t *testing.T, dir, fake string) ClientOptions {
			return ClientOptions{EndpointURL: fake, InFile: true}
		}, "kms.allow-endpoint: http"},
		{"AWS_ENDPOINT_URL", func(t *testing.T, dir, fake string) ClientOptions {
			t.Setenv("AWS_ENDPOINT_URL", fake)
			return ClientOptions{}
		}, "AWS_ENDPOINT_URL"},
		{"AWS_ENDPOINT_URL_KMS", func(t *testing.T, dir, fake string) ClientOptions {
			t.Setenv("AWS_ENDPOINT_URL_KMS", fake)
			return ClientOptions{}
		}, "AWS_ENDPOINT_URL_KMS"},
		{"config default section", func(t *testing.T, dir, fake string) ClientOptions {
			writeFile(t, filepath.Join(dir, "config"), "[default]\nendpoint_url = "+fake+"\n")
			return ClientOptions{}
		}, "AWS config file"},
		{"config profile", func(t *testing.T, dir, fake string) ClientOptions {
			writeFile(t, filepath.Join(dir, "config"), "[profile ceremony]\nregion = us-east-1\nendpoint_url = "+fake+"\n")
			return ClientOptions{Profile: "ceremony"}
		}, `profile "ceremony"`},
		{"config services section", func(t *testing.T, dir, fake string) ClientOptions {
			writeFile(t, filepath.Join(dir, "config"), "[default]\nservices = fake\n\n[services fake]\nkms =\n  endpoint_url = "+fake+"\n")
			return ClientOptions{}
		}, "services section"},
		{"env endpoint with another named one", func(t *testing.T, dir, fake string) ClientOptions {
			t.Setenv("AWS_ENDPOINT_URL_KMS", fake)
			return ClientOptions{EndpointURL: "http://127.0.0.1:9", AllowEndpoint: "http://127.0.0.1:9"}
		}, "AWS_ENDPOINT_URL_KMS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := cleanAWSEnv(t)
			srv, n := countingServer(t)
			o := tt.setup(t, dir, srv.URL)
			c, err := NewClient(context.Background(), o)
			var ee *kmsimport.EndpointError
			if !errors.As(err, &ee) || !errors.Is(err, kmsimport.ErrInvalidInput) {
				if err == nil {
					// Had it been built, it would have sent here:
					_, err = c.ListKeys(context.Background(), &kms.ListKeysInput{})
				}
				t.Fatalf("NewClient = %v, want an *EndpointError (exit 2)", err)
			}
			if !strings.Contains(err.Error(), tt.source) || !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("refusal %q does not name %q and the endpoint %s", err, tt.source, srv.URL)
			}
			if !strings.Contains(err.Error(), "allow-endpoint") {
				t.Errorf("refusal %q does not say how to opt in", err)
			}
			if n.Load() != 0 {
				t.Errorf("the fake KMS got %d requests", n.Load())
			}
		})
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestNewClientOptInChecks(t *testing.T) {
	cleanAWSEnv(t)
	for _, tt := range []struct {
		name string
		o    ClientOptions
		want string
	}{
		{"allow without endpoint", ClientOptions{AllowEndpoint: "http://127.0.0.1:9"}, "--allow-endpoint confirms the endpoint named with --endpoint-url"},
		{"allow another port", ClientOptions{EndpointURL: "http://127.0.0.1:9", AllowEndpoint: "http://127.0.0.1:8"}, "does not match --endpoint-url"},
		{"http off loopback", ClientOptions{EndpointURL: "http://192.0.2.1:9", AllowEndpoint: "http://192.0.2.1:9"}, "plain http is allowed only to a loopback address"},
		{"not a url", ClientOptions{EndpointURL: "127.0.0.1:9"}, "is not an endpoint URL"},
		{"ca bundle missing", ClientOptions{CABundle: "/nonexistent/ca.pem"}, "--ca-bundle"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(context.Background(), tt.o)
			if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient = %v, want invalid input containing %q", err, tt.want)
			}
		})
	}
	// Naming an endpoint AWS serves for the Region needs no opt-in, and an
	// ambient setting equal to the endpoint in use is no conflict.
	t.Setenv("AWS_ENDPOINT_URL_KMS", "https://kms-fips.us-east-1.amazonaws.com")
	c, err := NewClient(context.Background(), ClientOptions{EndpointURL: "https://kms-fips.us-east-1.amazonaws.com"})
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Endpoint(); e.URL != "https://kms-fips.us-east-1.amazonaws.com" || e.AllowedAs != kmsimport.AllowedAWS || e.Partition != "aws" {
		t.Errorf("Endpoint() = %+v", e)
	}
	if got := c.LegacyTarget(); got != "us-east-1@aws" {
		t.Errorf("LegacyTarget() = %q, want us-east-1@aws", got)
	}
}

// TestGuardChecksEveryRequest proves the policy holds in the transport:
// a request the SDK is told, per call, to send elsewhere never leaves.
func TestGuardChecksEveryRequest(t *testing.T) {
	cleanAWSEnv(t)
	srv, n := countingServer(t)
	c, err := NewClient(context.Background(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListKeys(context.Background(), &kms.ListKeysInput{}, func(o *kms.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	var ee *kmsimport.EndpointError
	if !errors.As(explain("ListKeys", err), &ee) {
		t.Fatalf("ListKeys to %s: %v, want an *EndpointError", srv.URL, err)
	}
	if n.Load() != 0 {
		t.Errorf("the fake KMS got %d requests", n.Load())
	}
}

// TestEndpointNamesTLSPeer: over https with a private CA given on purpose,
// the client says where it went and which certificate answered; without
// the CA the system roots refuse the same server.
func TestEndpointNamesTLSPeer(t *testing.T) {
	dir := cleanAWSEnv(t)
	srv := httptest.NewTLSServer(kmsemu.New(kmsemu.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))

	c, err := NewClient(context.Background(), ClientOptions{EndpointURL: srv.URL, AllowEndpoint: srv.URL, CABundle: ca})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
		t.Fatal(err)
	}
	e := c.Endpoint()
	spki := sha256.Sum256(srv.Certificate().RawSubjectPublicKeyInfo)
	if e.URL != srv.URL || e.AllowedAs != kmsimport.AllowedOptIn || e.TLS == nil || e.TLS.SPKISHA256 != hex.EncodeToString(spki[:]) {
		t.Fatalf("Endpoint() = %+v (TLS %+v), want %s opt-in with SPKI %x", e, e.TLS, srv.URL, spki)
	}
	if !strings.HasPrefix(e.CABundle, ca+" (SHA-256 ") {
		t.Errorf("CABundle = %q, want the path and digest of %s", e.CABundle, ca)
	}
	f := e.Facts()
	if f["KmsTlsSpkiSha256"] != e.TLS.SPKISHA256 || f["KmsEndpoint"] != srv.URL || f["KmsCaBundle"] == "" {
		t.Errorf("Facts() = %v", f)
	}

	// AWS_CA_BUNDLE alone is not a deliberate CA: ignored, said so, and
	// the system roots refuse the private certificate.
	t.Setenv("AWS_CA_BUNDLE", ca)
	c, err = NewClient(context.Background(), ClientOptions{EndpointURL: srv.URL, AllowEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Notices) != 1 || !strings.Contains(c.Notices[0], "AWS_CA_BUNDLE") || !strings.Contains(c.Notices[0], "--ca-bundle") {
		t.Errorf("Notices = %q, want AWS_CA_BUNDLE ignored, with --ca-bundle as the way", c.Notices)
	}
	if _, err := c.ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("ListKeys without the CA = %v, want a certificate failure", err)
	}
}

// TestOneKMSClientConstructor fails when code of the main module makes a
// KMS client other than through NewClient (client.go): every client must
// carry the endpoint policy's guard. test/ is a module of its own whose
// harness talks to emulators directly; it is not kmsbridge.
func TestOneKMSClientConstructor(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := 0
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
		names := map[string]string{} // local name -> import path
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			name := p[strings.LastIndex(p, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			names[name] = p
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			target := names[pkg.Name] + "." + sel.Sel.Name
			switch target {
			case "github.com/aws/aws-sdk-go-v2/service/kms.New", "github.com/aws/aws-sdk-go-v2/service/kms.NewFromConfig",
				"github.com/aws/aws-sdk-go-v2/config.LoadDefaultConfig":
				if rel != filepath.Join("kmsimport", "aws", "client.go") {
					t.Errorf("%s: %s makes an AWS client around the endpoint policy: use NewClient in kmsimport/aws", fset.Position(call.Pos()), target)
				}
				found++
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("found no KMS client constructor at all: the scan is broken")
	}
}

// TestScopeIsRegionEndpointAndAccount: the journal's scope is the Region,
// the endpoint as resolved and the account STS says the credentials
// belong to, whatever the profile or environment say; the name earlier
// versions used is offered for adoption.
func TestScopeIsRegionEndpointAndAccount(t *testing.T) {
	cleanAWSEnv(t)
	srv := httptest.NewServer(kmsemu.New(kmsemu.Options{AccountID: "444455556666"}))
	t.Cleanup(srv.Close)
	c, err := NewClient(context.Background(), ClientOptions{EndpointURL: srv.URL, AllowEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	target, legacy, err := c.Scope(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if target != "us-east-1@"+host+"@444455556666" {
		t.Errorf("Scope() target = %q, want us-east-1@%s@444455556666", target, host)
	}
	if len(legacy) != 1 || legacy[0] != "us-east-1@"+host {
		t.Errorf("Scope() legacy = %q, want [us-east-1@%s]", legacy, host)
	}

	// An endpoint that answers GetCallerIdentity with no account id is
	// not taken for one: no scope, no change.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Account>../../x</Account><Arn>a</Arn><UserId>u</UserId></GetCallerIdentityResult></GetCallerIdentityResponse>`)
	}))
	t.Cleanup(bad.Close)
	c, err = NewClient(context.Background(), ClientOptions{EndpointURL: bad.URL, AllowEndpoint: bad.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Scope(context.Background()); err == nil || !strings.Contains(err.Error(), "12-digit") {
		t.Errorf("Scope() with a bad account = %v, want a refusal naming the 12-digit account id", err)
	}
}

// fakeKMS counts the requests that reach it: a refusal must leave it at 0.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Error(w, "fake", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestScopeOfAnEndpointWithoutSTS: a KMS-compatible endpoint of the
// operator's own that does not serve STS (local-kms, say) still gets a
// journal scope, changing nothing to learn it: the account its aliases'
// ARNs name, else "unknown". AWS's own endpoints are never treated so.
func TestScopeOfAnEndpointWithoutSTS(t *testing.T) {
	cleanAWSEnv(t)
	emu := kmsemu.New(kmsemu.Options{AccountID: "444455556666"})
	var changes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		if target == "" { // STS speaks form-encoded queries, KMS JSON with a target
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>not here</Message></Error></ErrorResponse>`)
			return
		}
		if !strings.HasSuffix(target, ".ListAliases") {
			changes.Add(1)
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	scope := func() string {
		t.Helper()
		c, err := NewClient(context.Background(), ClientOptions{EndpointURL: srv.URL, AllowEndpoint: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		target, _, err := c.Scope(context.Background())
		if err != nil {
			t.Fatalf("Scope() of an endpoint without STS: %v", err)
		}
		if c.AccountSource == "" {
			t.Error("the client does not say how it learnt the account")
		}
		return target
	}
	if got := scope(); got != "us-east-1@"+host+"@"+UnknownAccount {
		t.Errorf("Scope() with no alias = %q, want us-east-1@%s@%s", got, host, UnknownAccount)
	}
	if changes.Load() != 0 {
		t.Fatalf("learning the scope sent %d requests other than ListAliases", changes.Load())
	}
	// With an alias, its ARN names the account.
	c, err := NewClient(context.Background(), ClientOptions{EndpointURL: srv.URL, AllowEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String("alias/x"), TargetKeyId: k.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	if got := scope(); got != "us-east-1@"+host+"@444455556666" {
		t.Errorf("Scope() with an alias = %q, want the account its ARN names", got)
	}
}
