package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// fakeKMS is the adversary of issue 16: a KMS endpoint on 127.0.0.1 that
// forwards every request to the real (emulated) KMS but answers
// GetParametersForImport with its own RSA public key, so that whatever
// the HSM wraps under it, the adversary can unwrap. It counts what it saw.
type fakeKMS struct {
	*httptest.Server
	mu   sync.Mutex
	ops  []string
	keys map[string]*rsa.PrivateKey // by wrapping key spec
}

func startFakeKMS(t *testing.T, upstream string) *fakeKMS {
	t.Helper()
	f := &fakeKMS{keys: map[string]*rsa.PrivateKey{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve(upstream)))
	t.Cleanup(f.Close)
	return f
}

// serve forwards to upstream, swapping the wrapping public key.
func (f *fakeKMS) serve(upstream string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
		f.mu.Lock()
		f.ops = append(f.ops, op)
		f.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(http.MethodPost, upstream+"/", bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if op == "GetParametersForImport" && resp.StatusCode == http.StatusOK {
			var in struct{ WrappingKeySpec string }
			_ = json.Unmarshal(body, &in)
			var m map[string]any
			if json.Unmarshal(out, &m) == nil {
				m["PublicKey"] = base64.StdEncoding.EncodeToString(f.publicKey(in.WrappingKeySpec))
				out, _ = json.Marshal(m)
			}
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
	}
}

// publicKey is the adversary's DER public key of the size spec asks for.
func (f *fakeKMS) publicKey(spec string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[spec]
	if !ok {
		bits := map[string]int{"RSA_3072": 3072, "RSA_4096": 4096}[spec]
		if bits == 0 {
			bits = 2048
		}
		k, _ = rsa.GenerateKey(rand.Reader, bits)
		f.keys[spec] = k
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return der
}

// saw returns the operations the adversary was sent.
func (f *fakeKMS) saw() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ops...)
}

// testCA is a CA generated for one test, issuing TLS server certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	PEM  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kmsbridge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a server certificate for hosts (DNS names or IPs).
func (ca *testCA) issue(t *testing.T, hosts ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// startMITMProxy is an HTTPS proxy that terminates every CONNECT itself
// with cert and hands the requests to handler: with a CA the client
// trusts, it sees and answers everything sent "to AWS".
func startMITMProxy(t *testing.T, cert tls.Certificate, handler http.Handler) (string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var connects []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		mu.Lock()
		connects = append(connects, r.Host)
		mu.Unlock()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}})
		if err := tc.Handshake(); err != nil {
			tc.Close()
			return
		}
		br := bufio.NewReader(tc)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				tc.Close()
				return
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			resp := rec.Result()
			resp.ContentLength = int64(rec.Body.Len())
			resp.Body = io.NopCloser(bytes.NewReader(rec.Body.Bytes()))
			resp.Write(tc)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), connects...) }
}

// TestFakeKMSRefusedOnEveryRoute drives the wrapping-key substitution
// attack through every way the AWS SDK lets a KMS endpoint be configured,
// and the air-gapped split: each run is refused before the HSM wraps
// anything, with the exit code and message the README's taxonomy gives,
// the fake KMS gets no ImportKeyMaterial (and, where kmsbridge refuses up
// front, no request at all) and no key is generated or wrapped file
// written.
func TestFakeKMSRefusedOnEveryRoute(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	importArgs := func(tok string, extra ...string) []string {
		return append([]string{"import", "--token-label", tok, "--key-label", "victim", "--generate", "--no-expiry",
			"--wrapping-key-spec", "RSA_2048"}, extra...)
	}
	type route struct {
		name string
		// args builds the command line (leading K=V are environment) for
		// the fake's URL in a fresh directory.
		args     func(t *testing.T, dir, fake, tokLabel string) []string
		code     int
		want     []string
		anyFake  bool // the fake may see requests (it is not where kmsbridge sends)
		viaProxy bool
	}
	routes := []route{
		{name: "flag without opt-in", args: func(t *testing.T, dir, fake, tok string) []string {
			return importArgs(tok, "--endpoint-url", fake)
		}, code: 2, want: []string{"KMS endpoint %s refused", "not an endpoint AWS serves for Region us-east-1", "--endpoint-url %s --allow-endpoint %s"}},
		{name: "AWS_ENDPOINT_URL", args: func(t *testing.T, dir, fake, tok string) []string {
			return append([]string{"AWS_ENDPOINT_URL=" + fake}, importArgs(tok)...)
		}, code: 2, want: []string{"KMS endpoint %s refused", "the environment (AWS_ENDPOINT_URL)", "--allow-endpoint %s"}},
		{name: "AWS_ENDPOINT_URL_KMS", args: func(t *testing.T, dir, fake, tok string) []string {
			return append([]string{"AWS_ENDPOINT_URL_KMS=" + fake}, importArgs(tok)...)
		}, code: 2, want: []string{"KMS endpoint %s refused", "the environment (AWS_ENDPOINT_URL_KMS)", "--allow-endpoint %s"}},
		{name: "config default section", args: func(t *testing.T, dir, fake, tok string) []string {
			cfg := writeTestFile(t, dir, "config", "[default]\nregion = us-east-1\nendpoint_url = "+fake+"\n")
			return append([]string{"AWS_CONFIG_FILE=" + cfg}, importArgs(tok)...)
		}, code: 2, want: []string{"KMS endpoint %s refused", "the AWS config file", `profile "default"`, "--allow-endpoint %s"}},
		{name: "config profile", args: func(t *testing.T, dir, fake, tok string) []string {
			cfg := writeTestFile(t, dir, "config", "[profile ceremony]\nregion = us-east-1\nendpoint_url = "+fake+"\n")
			return append([]string{"AWS_CONFIG_FILE=" + cfg}, importArgs(tok, "--profile", "ceremony")...)
		}, code: 2, want: []string{"KMS endpoint %s refused", `profile "ceremony"`, "--allow-endpoint %s"}},
		{name: "config services section", args: func(t *testing.T, dir, fake, tok string) []string {
			cfg := writeTestFile(t, dir, "config", "[default]\nregion = us-east-1\nservices = fake\n\n[services fake]\nkms =\n  endpoint_url = "+fake+"\n")
			return append([]string{"AWS_CONFIG_FILE=" + cfg}, importArgs(tok)...)
		}, code: 2, want: []string{"KMS endpoint %s refused", "services section", "--allow-endpoint %s"}},
		{name: "ceremony file without endpoint, endpoint in env", args: func(t *testing.T, dir, fake, tok string) []string {
			file := writeTestFile(t, dir, "c.yaml", fmt.Sprintf("hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n"+
				"kms:\n  region: us-east-1\nrecord: %s\noperators:\n  - Alice (custodian)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n"+
				"  - hsm-label: victim\n    generate: true\n    key-spec: SYMMETRIC_DEFAULT\n    key-usage: ENCRYPT_DECRYPT\n    alias: alias/victim\n"+
				"    wrapping-algorithm: RSAES_OAEP_SHA_1\n    wrapping-key-spec: RSA_2048\n    no-expiry: true\n", softhsm.DefaultModule, tok, filepath.Join(dir, "r.jsonl")))
			return []string{"AWS_ENDPOINT_URL_KMS=" + fake, "ceremony", "run", file}
		}, code: 2, want: []string{"KMS endpoint %s refused", "AWS_ENDPOINT_URL_KMS", "kms.endpoint: %s and kms.allow-endpoint: %s"}},
		{name: "prepare with endpoint in env", args: func(t *testing.T, dir, fake, tok string) []string {
			return []string{"AWS_ENDPOINT_URL_KMS=" + fake, "prepare", "--wrapping-key-spec", "RSA_2048", "--out", filepath.Join(dir, "bundle.json")}
		}, code: 2, want: []string{"KMS endpoint %s refused", "AWS_ENDPOINT_URL_KMS"}},
		// The adversary's proxy presents a certificate for AWS's own name,
		// issued by a CA it planted in AWS_CA_BUNDLE.
		{name: "CA bundle in env plus a proxy", args: func(t *testing.T, dir, fake, tok string) []string {
			return importArgs(tok) // environment set by the test below
		}, code: 4, want: []string{"AWS_CA_BUNDLE=", "is ignored", "--ca-bundle FILE", "TLS certificate does not verify"}, anyFake: true, viaProxy: true},
	}
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			tok := newToken(t)
			dir := t.TempDir()
			fake := startFakeKMS(t, emu.URL)
			args := rt.args(t, dir, fake.URL, tok.Label)
			var connects func() []string
			if rt.viaProxy {
				ca := newTestCA(t)
				proxyURL, c := startMITMProxy(t, ca.issue(t, "kms.us-east-1.amazonaws.com"), http.HandlerFunc(fake.serve(emu.URL)))
				connects = c
				args = append([]string{"AWS_CA_BUNDLE=" + writeTestFile(t, dir, "ca.pem", string(ca.PEM)), "HTTPS_PROXY=" + proxyURL}, args...)
			}
			keysBefore := emu.keyCount(t)
			r := kmsbridge(t, tok, args...)
			if r.Code != rt.code {
				t.Fatalf("exit %d, want %d\nstderr:\n%s\nstdout:\n%s", r.Code, rt.code, r.Stderr, r.Stdout)
			}
			for _, w := range rt.want {
				if w = strings.ReplaceAll(w, "%s", fake.URL); !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.Stderr)
				}
			}
			saw := fake.saw()
			for _, op := range saw {
				if op == "ImportKeyMaterial" || op == "GetParametersForImport" {
					t.Errorf("the fake KMS was sent %s: %v", op, saw)
				}
			}
			if !rt.anyFake && len(saw) > 0 {
				t.Errorf("the fake KMS was sent %v; a refusal sends nothing", saw)
			}
			if connects != nil && len(connects()) == 0 {
				t.Errorf("the proxy saw no CONNECT: the route was not exercised")
			}
			if tokenHasLabel(t, tok, "victim") {
				t.Errorf("an HSM key was generated although the endpoint was refused")
			}
			if _, err := os.Stat(filepath.Join(dir, "bundle.json")); err == nil {
				t.Errorf("a bundle was written")
			}
			if n := emu.keyCount(t); n != keysBefore {
				t.Errorf("KMS keys %d -> %d: a refused run changed KMS", keysBefore, n)
			}
		})
	}

	// The air-gapped split: a prepare that did go to the fake (its host
	// opted in) writes a bundle that names the fake; the offline wrap shows
	// it and refuses it unless the same opt-in is given there too.
	t.Run("prepare through the fake, then offline wrap", func(t *testing.T) {
		tok := newToken(t)
		dir := t.TempDir()
		fake := startFakeKMS(t, emu.URL)
		bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
		r := kmsbridge(t, nil, "prepare", "--endpoint-url", fake.URL, "--allow-endpoint", fake.URL, "--wrapping-key-spec", "RSA_2048", "--out", bundle)
		if r.Code != 0 {
			t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
		}
		var b kmsimport.Bundle
		readJSON(t, bundle, &b)
		if b.KmsEndpoint == nil || b.KmsEndpoint.URL != fake.URL || b.KmsEndpoint.AllowedAs != kmsimport.AllowedOptIn {
			t.Fatalf("bundle KmsEndpoint = %+v, want %s opted in", b.KmsEndpoint, fake.URL)
		}
		if !strings.Contains(r.Stdout, "from endpoint      "+fake.URL+" (NOT AWS") {
			t.Errorf("prepare does not say where the wrapping key came from:\n%s", r.Stdout)
		}
		offlineEnv := []string{tok.Environ(), "KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PIN=" + tok.PIN,
			"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_REGION=", "AWS_CONFIG_FILE=/nonexistent"}
		r = runBinary(t, offlineEnv, "wrap", "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
			"--key-label", "victim", "--generate", "--out", wrapped)
		if r.Code != 2 || !strings.Contains(r.Stderr, "came from KMS endpoint:\n\n    "+fake.URL+" (NOT AWS") ||
			!strings.Contains(r.Stderr, "confirm it on this host too: --allow-endpoint "+fake.URL) {
			t.Fatalf("offline wrap of the fake's bundle: exit %d, want 2 naming the endpoint and the opt-in\n%s", r.Code, r.Stderr)
		}
		if _, err := os.Stat(wrapped); err == nil {
			t.Errorf("a wrapped file was written")
		}
		if tokenHasLabel(t, tok, "victim") {
			t.Errorf("an HSM key was generated before the bundle's endpoint was checked")
		}
		// A bundle whose endpoint was stripped is no better.
		var m map[string]any
		raw, _ := os.ReadFile(bundle)
		json.Unmarshal(raw, &m)
		delete(m, "KmsEndpoint")
		stripped := writeTestFile(t, dir, "stripped.json", mustJSON(t, m))
		r = runBinary(t, offlineEnv, "wrap", "--token-label", tok.Label, "--bundle", stripped, "--expect-fingerprint", b.PublicKeySha256,
			"--key-label", "victim", "--generate", "--out", wrapped)
		if r.Code != 2 || !strings.Contains(r.Stderr, "names no KMS endpoint") {
			t.Errorf("wrap of a bundle without KmsEndpoint: exit %d\n%s", r.Code, r.Stderr)
		}
		for _, op := range fake.saw() {
			if op == "ImportKeyMaterial" {
				t.Errorf("the fake KMS was sent ImportKeyMaterial")
			}
		}
	})
}

func writeTestFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startTLSEmulator puts the emulator behind a loopback TLS server whose
// certificate a generated CA issued; it returns the https URL and the PEM
// file of the CA.
func startTLSEmulator(t *testing.T, emu *emulator) (string, string, *x509.Certificate) {
	t.Helper()
	up, _ := url.Parse(emu.URL)
	ca := newTestCA(t)
	cert := ca.issue(t, "127.0.0.1")
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(up))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, writeTestFile(t, t.TempDir(), "ca.pem", string(ca.PEM)), cert.Leaf
}

// TestOptedInEndpointIsRecorded: the opt-in path works over TLS with a
// private CA given on purpose, and the result, every record entry and the
// split bundle say where the key went: the endpoint, the TLS peer's
// identity and SPKI fingerprint, the wrapping public key's fingerprint.
func TestOptedInEndpointIsRecorded(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	ep, caFile, leaf := startTLSEmulator(t, emu)
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	wantSPKI := hex.EncodeToString(spki[:])
	tok := newToken(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "record.jsonl")
	opt := []string{"--endpoint-url", ep, "--allow-endpoint", ep, "--ca-bundle", caFile}

	// Without the CA, the system roots refuse the endpoint.
	r := kmsbridge(t, tok, append([]string{"import", "--token-label", tok.Label, "--key-label", "k0", "--generate", "--no-expiry",
		"--endpoint-url", ep, "--allow-endpoint", ep}, "--wrapping-key-spec", "RSA_2048")...)
	if r.Code != 4 || !strings.Contains(r.Stderr, "TLS certificate does not verify") || !strings.Contains(r.Stderr, "--ca-bundle FILE") {
		t.Fatalf("import over TLS without --ca-bundle: exit %d, want 4 naming --ca-bundle\n%s", r.Code, r.Stderr)
	}

	res := importJSON(t, tok, append([]string{"--token-label", tok.Label, "--key-label", "k", "--generate", "--no-expiry",
		"--wrapping-key-spec", "RSA_2048", "--record", rec}, opt...)...)
	e := res.KMSEndpoint
	if e == nil || e.URL != ep || e.AllowedAs != kmsimport.AllowedOptIn || e.TLS == nil || e.TLS.SPKISHA256 != wantSPKI ||
		!strings.Contains(strings.Join(e.TLS.IPAddresses, ","), "127.0.0.1") || !strings.HasPrefix(e.CABundle, caFile) {
		t.Fatalf("result KmsEndpoint = %+v (TLS %+v), want %s, opt-in, SPKI %s, CA bundle %s", e, e.TLS, ep, wantSPKI, caFile)
	}
	art := emu.lastArtifact(t)
	pemKey, _ := pem.Decode([]byte(art.WrappingPrivateKeyPEM))
	priv, err := x509.ParsePKCS8PrivateKey(pemKey.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(priv.(*rsa.PrivateKey).Public())
	if res.WrappingPublicKeySHA256 != kmsimport.Fingerprint(pubDER) {
		t.Errorf("result WrappingPublicKeySha256 %s is not the emulator's wrapping key %s", res.WrappingPublicKeySHA256, kmsimport.Fingerprint(pubDER))
	}

	// Every record entry names the endpoint; the entry of the step that
	// took the wrapping key names the TLS peer and the key's fingerprint.
	raw, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	sawParams := false
	for _, l := range lines {
		var en struct {
			Step    string
			Inputs  map[string]string
			Outputs map[string]string
		}
		if err := json.Unmarshal([]byte(l), &en); err != nil {
			t.Fatal(err)
		}
		if en.Inputs["KmsEndpoint"] != ep {
			t.Errorf("record entry %s has Inputs.KmsEndpoint %q, want %s", en.Step, en.Inputs["KmsEndpoint"], ep)
		}
		if en.Step == "get-parameters" {
			sawParams = true
			if en.Outputs["KmsTlsSpkiSha256"] != wantSPKI || en.Outputs["WrappingPublicKeySha256"] != res.WrappingPublicKeySHA256 || en.Outputs["KmsEndpoint"] != ep {
				t.Errorf("get-parameters entry outputs %v lack the endpoint, TLS SPKI %s or wrapping key fingerprint", en.Outputs, wantSPKI)
			}
		}
	}
	if !sawParams {
		t.Errorf("no get-parameters entry in the record:\n%s", raw)
	}

	// The text result says it too.
	r = kmsbridge(t, tok, append([]string{"import", "--token-label", tok.Label, "--key-label", "k2", "--generate", "--no-expiry", "--wrapping-key-spec", "RSA_2048"}, opt...)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "endpoint") || !strings.Contains(r.Stdout, wantSPKI) || !strings.Contains(r.Stdout, "public key SHA-256") {
		t.Errorf("text result does not name the endpoint, SPKI and wrapping key:\n%s\n%s", r.Stdout, r.Stderr)
	}

	// The split: the bundle carries the endpoint and TLS identity, and the
	// offline wrap shows it and, confirmed there too, wraps.
	bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
	r = kmsbridge(t, nil, append([]string{"prepare", "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", bundle}, opt...)...)
	if r.Code != 0 {
		t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	if b.KmsEndpoint == nil || b.KmsEndpoint.URL != ep || b.KmsEndpoint.TLS == nil || b.KmsEndpoint.TLS.SPKISHA256 != wantSPKI {
		t.Fatalf("bundle KmsEndpoint = %+v, want %s with SPKI %s", b.KmsEndpoint, ep, wantSPKI)
	}
	r = kmsbridge(t, tok, "wrap", "--allow-endpoint", ep, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
		"--key-label", "s", "--generate", "--out", wrapped)
	if r.Code != 0 || !strings.Contains(r.Stderr, "came from KMS endpoint:\n\n    "+ep) || !strings.Contains(r.Stderr, wantSPKI) {
		t.Fatalf("wrap: exit %d, want 0 showing %s and SPKI %s\n%s", r.Code, ep, wantSPKI, r.Stderr)
	}
	if i, j := strings.Index(r.Stderr, "came from KMS endpoint"), strings.Index(r.Stderr, "Wrapping public key SHA-256 in the bundle"); i < 0 || j < i {
		t.Errorf("wrap must show the endpoint before the fingerprint and the wrap:\n%s", r.Stderr)
	}
}

// TestPrivateCAThroughAProxyIsRecorded: AWS's own endpoint name reached
// through an HTTPS proxy whose TLS is verified by a private CA given on
// purpose (as for a VPC endpoint behind an inspecting appliance) works, and
// the result records the endpoint, the proxy, the CA bundle and the peer.
func TestPrivateCAThroughAProxyIsRecorded(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	up, _ := url.Parse(emu.URL)
	ca := newTestCA(t)
	// The journal's scope asks STS (sts.us-east-1.amazonaws.com) for the
	// account through the same proxy; the emulator answers both.
	cert := ca.issue(t, "kms.us-east-1.amazonaws.com", "sts.us-east-1.amazonaws.com")
	proxyURL, connects := startMITMProxy(t, cert, httputil.NewSingleHostReverseProxy(up))
	caFile := writeTestFile(t, t.TempDir(), "ca.pem", string(ca.PEM))
	tok := newToken(t)
	r := kmsbridge(t, tok, "HTTPS_PROXY="+proxyURL, "import", "--output", "json", "--token-label", tok.Label, "--key-label", "k", "--generate", "--no-expiry",
		"--wrapping-key-spec", "RSA_2048", "--ca-bundle", caFile)
	var res awskms.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); r.Code != 0 || err != nil {
		t.Fatalf("import through the proxy: exit %d, %v\n%s", r.Code, err, r.Stderr)
	}
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	e := res.KMSEndpoint
	if e == nil || e.URL != "https://kms.us-east-1.amazonaws.com" || e.AllowedAs != kmsimport.AllowedAWS || e.Proxy != proxyURL ||
		!strings.HasPrefix(e.CABundle, caFile) || e.TLS == nil || e.TLS.SPKISHA256 != hex.EncodeToString(spki[:]) {
		t.Fatalf("KmsEndpoint = %+v (TLS %+v), want AWS's us-east-1 endpoint via %s, CA bundle %s, SPKI %x", e, e.TLS, proxyURL, caFile, spki)
	}
	if len(connects()) == 0 {
		t.Errorf("the proxy saw no CONNECT")
	}
}
