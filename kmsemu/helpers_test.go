package kmsemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
)

// env is one emulator behind httptest on 127.0.0.1, with the real SDK
// client pointed at it and a frozen clock the test moves explicitly.
type env struct {
	srv    *Server
	url    string
	kms    *kms.Client
	base   time.Time
	offset time.Duration
}

// testBase is the emulator's frozen "now" in tests: fixed, so ValidTo and
// ParametersValidTo are exact.
var testBase = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	if o.TestKeys == nil {
		o.TestKeys = testKeys(t)
	}
	return newEnvWith(t, o)
}

// newEnvFreshKeys is newEnv with no test key cache: the emulator generates
// its wrapping key pairs as it does by default, for the tests of that
// (background pools, on-demand generation).
func newEnvFreshKeys(t *testing.T, o Options) *env {
	t.Helper()
	return newEnvWith(t, o)
}

func newEnvWith(t *testing.T, o Options) *env {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return testBase }
	}
	// The emulator-only operations drive these tests; TestTestOperationsOff
	// checks them off.
	o.TestOperations = true
	if o.ReplicaCreating == 0 {
		// Replicas at once, unless a test is about their Creating state.
		o.ReplicaCreating = -1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(&testLog{t: t}, nil))
	}
	srv := New(o)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	client := regionClient(ts.URL, region)
	return &env{srv: srv, url: ts.URL, kms: client, base: testBase}
}

// regionClient is the real SDK client for url, signing for region, with
// retries off: a retried KMSInternalException would hide what happened.
func regionClient(url, region string) *kms.Client {
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(url) })
}

// testLog sends the server's log lines to t.Log, so they show up with the
// test that failed.
type testLog struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var ctx = context.Background()

// now is the emulator's current time.
func (e *env) now() time.Time { return e.base.Add(e.offset) }

// advance moves the emulator's clock with KmsBridgeAdvanceClock and checks
// the time it reports.
func (e *env) advance(t *testing.T, d time.Duration) {
	t.Helper()
	var out struct{ Now float64 }
	e.rawOK(t, "KmsBridgeAdvanceClock", map[string]any{"Seconds": d.Seconds()}, &out)
	e.offset += d
	if got := time.UnixMilli(int64(out.Now * 1000)); !got.Equal(e.now()) {
		t.Fatalf("KmsBridgeAdvanceClock: Now = %v, want %v", got.UTC(), e.now())
	}
}

// raw posts one awsJson1.1 request without the SDK, for emulator-only
// operations and protocol tests. It returns the status, the X-Amzn-ErrorType
// header and the body.
func (e *env) raw(t *testing.T, target string, body []byte) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), b
}

// rawOK posts op with in as JSON and decodes a 200 answer into out.
func (e *env) rawOK(t *testing.T, op string, in any, out any) {
	t.Helper()
	status, errType, body := e.raw(t, "TrentService."+op, mustJSON(t, in))
	if status != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s: %s", op, status, errType, body)
	}
	if err := jsonUnmarshal(body, out); err != nil {
		t.Fatalf("%s: decode %s: %v", op, body, err)
	}
}

// code is the KMS exception name of an SDK error, or "" for nil.
func code(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "not an API error: " + err.Error()
}

// wantErr fails unless err is the KMS exception wantCode and its message
// contains every one of msgs.
func wantErr(t *testing.T, err error, wantCode string, msgs ...string) {
	t.Helper()
	if got := code(err); got != wantCode {
		t.Fatalf("error = %q (%v), want %s", got, err, wantCode)
	}
	var ae smithy.APIError
	errors.As(err, &ae)
	for _, m := range msgs {
		if !strings.Contains(ae.ErrorMessage(), m) {
			t.Errorf("message %q does not contain %q", ae.ErrorMessage(), m)
		}
	}
}

func (e *env) createKey(t *testing.T, origin types.OriginType) *types.KeyMetadata {
	t.Helper()
	out, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: origin, Description: aws.String("test key")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return out.KeyMetadata
}

func (e *env) describe(t *testing.T, keyID string) *types.KeyMetadata {
	t.Helper()
	out, err := e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("DescribeKey %s: %v", keyID, err)
	}
	return out.KeyMetadata
}

func (e *env) params(t *testing.T, keyID string, alg types.AlgorithmSpec, spec types.WrappingKeySpec) *kms.GetParametersForImportOutput {
	t.Helper()
	out, err := e.kms.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId: aws.String(keyID), WrappingAlgorithm: alg, WrappingKeySpec: spec,
	})
	if err != nil {
		t.Fatalf("GetParametersForImport %s %s: %v", alg, spec, err)
	}
	return out
}

// wrap does what the HSM does in kmsbridge: wrap material under the KMS
// public key with the named algorithm.
func wrap(t *testing.T, publicKeyDER []byte, alg types.AlgorithmSpec, material []byte) []byte {
	t.Helper()
	b, err := wrapMaterial(publicKeyDER, alg, material)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wrapMaterial is wrap for goroutines other than the test's.
func wrapMaterial(publicKeyDER []byte, alg types.AlgorithmSpec, material []byte) ([]byte, error) {
	pubAny, err := x509.ParsePKIXPublicKey(publicKeyDER)
	if err != nil {
		return nil, fmt.Errorf("PublicKey is not a DER SubjectPublicKeyInfo: %w", err)
	}
	pub, ok := pubAny.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("PublicKey is a %T, want RSA", pubAny)
	}
	var h hash.Hash
	switch alg {
	case types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaAesKeyWrapSha1:
		h = sha1.New()
	default:
		h = sha256.New()
	}
	switch alg {
	case types.AlgorithmSpecRsaAesKeyWrapSha1, types.AlgorithmSpecRsaAesKeyWrapSha256:
		aesKey := make([]byte, 32)
		if _, err := rand.Read(aesKey); err != nil {
			return nil, err
		}
		head, err := rsa.EncryptOAEP(h, rand.Reader, pub, aesKey, nil)
		if err != nil {
			return nil, err
		}
		return append(head, kwp.Wrap(aesKey, material)...), nil
	default:
		return rsa.EncryptOAEP(h, rand.Reader, pub, material, nil)
	}
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// importInput builds a valid ImportKeyMaterial request for material into
// keyID, expiring in a day, with fresh RSA_2048 parameters.
func (e *env) importInput(t *testing.T, keyID string, alg types.AlgorithmSpec, material []byte) *kms.ImportKeyMaterialInput {
	t.Helper()
	p := e.params(t, keyID, alg, types.WrappingKeySpecRsa2048)
	return &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(keyID),
		ImportToken:          p.ImportToken,
		EncryptedKeyMaterial: wrap(t, p.PublicKey, alg, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialExpires,
		ValidTo:              aws.Time(e.now().Add(24 * time.Hour)),
	}
}

// importOK imports material into keyID and returns the KeyMaterialId.
func (e *env) importOK(t *testing.T, keyID string, material []byte) string {
	t.Helper()
	out, err := e.kms.ImportKeyMaterial(ctx, e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, material))
	if err != nil {
		t.Fatalf("ImportKeyMaterial: %v", err)
	}
	return aws.ToString(out.KeyMaterialId)
}

// importedKey is an EXTERNAL key with fresh material imported.
func (e *env) importedKey(t *testing.T) (keyID string, material []byte) {
	t.Helper()
	keyID = aws.ToString(e.createKey(t, types.OriginTypeExternal).KeyId)
	material = randBytes(t, 32)
	e.importOK(t, keyID, material)
	return keyID, material
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
