package gcpemu_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/kmsbridge/kmsbridge/gcpemu"
)

// restClient speaks plain HTTP/JSON to the emulator's REST front end, as
// gcloud or curl would.
type restClient struct {
	t    *testing.T
	base string
}

// startREST serves both front ends of one emulator: Google's gRPC client
// and a plain HTTP client.
func startREST(t *testing.T, opts gcpemu.Options) (*gcpemu.Server, *restClient) {
	t.Helper()
	srv, _, _ := start(t, opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeREST(l) }()
	t.Cleanup(func() { l.Close() })
	return srv, &restClient{t: t, base: "http://" + l.Addr().String()}
}

// do sends one request; it returns the status code and the decoded body.
func (c *restClient) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=UTF-8" {
		c.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		c.t.Fatalf("%s %s: not JSON: %v\n%s", method, path, err, raw)
	}
	return resp.StatusCode, out
}

func (c *restClient) ok(method, path, body string) map[string]any {
	c.t.Helper()
	code, out := c.do(method, path, body)
	if code != 200 {
		c.t.Fatalf("%s %s: %d %v", method, path, code, out)
	}
	return out
}

// wantError checks Google's JSON error body {"error":{code,message,status}}.
func (c *restClient) wantError(method, path, body string, code int, st, msg string) {
	c.t.Helper()
	got, out := c.do(method, path, body)
	e, _ := out["error"].(map[string]any)
	if got != code || e == nil || e["code"] != float64(code) || e["status"] != st || !strings.Contains(e["message"].(string), msg) {
		c.t.Fatalf("%s %s: got %d %v, want %d %s containing %q", method, path, got, out, code, st, msg)
	}
	if len(e) != 3 {
		c.t.Fatalf("error body has fields %v, want code, message, status", e)
	}
}

func (c *restClient) waitVersion(name string) map[string]any {
	c.t.Helper()
	for range 100 {
		v := c.ok("GET", "/v1/"+name+"?alt=json", "")
		if v["state"] != "PENDING_IMPORT" {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("version stayed PENDING_IMPORT")
	return nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestRESTImportEncryptDecryptDestroy(t *testing.T) {
	t.Parallel()
	srv, c := startREST(t, gcpemu.Options{ImportDelay: 30 * time.Millisecond, Now: time.Now})
	ring := loc + "/keyRings/rest-ring"
	// The recorded 404 for a missing ring, then its creation [kcc].
	c.wantError("GET", "/v1/"+ring+"?alt=json", "", 404, "NOT_FOUND", "KeyRing "+ring+" not found.")
	r := c.ok("POST", "/v1/"+loc+"/keyRings?alt=json&keyRingId=rest-ring", "")
	if r["name"] != ring || r["createTime"] == nil {
		t.Fatalf("created ring %v", r)
	}
	c.wantError("POST", "/v1/"+loc+"/keyRings?keyRingId=rest-ring", "", 409, "ALREADY_EXISTS", "already exists")
	if got := c.ok("GET", "/v1/"+ring, ""); got["name"] != ring {
		t.Fatalf("get ring %v", got)
	}
	if l := c.ok("GET", "/v1/"+loc+"/keyRings?pageSize=100", ""); len(l["keyRings"].([]any)) != 1 || l["totalSize"] != float64(1) {
		t.Fatalf("list rings %v", l)
	}

	key := c.ok("POST", "/v1/"+ring+"/cryptoKeys?cryptoKeyId=k1&skipInitialVersionCreation=true",
		`{"purpose":"ENCRYPT_DECRYPT","importOnly":true,"labels":{"kmsbridge-owner":"abc"},
		  "versionTemplate":{"algorithm":"GOOGLE_SYMMETRIC_ENCRYPTION","protectionLevel":"HSM"}}`)
	keyName := ring + "/cryptoKeys/k1"
	if key["name"] != keyName || key["labels"].(map[string]any)["kmsbridge-owner"] != "abc" || key["importOnly"] != true {
		t.Fatalf("created key %v", key)
	}
	if l := c.ok("GET", "/v1/"+ring+"/cryptoKeys", ""); len(l["cryptoKeys"].([]any)) != 1 {
		t.Fatalf("list keys %v", l)
	}

	job := c.ok("POST", "/v1/"+ring+"/importJobs?alt=json&importJobId=job1", `{"importMethod":"RSA_OAEP_3072_SHA1_AES_256","protectionLevel":"HSM"}`)
	if job["state"] != "PENDING_GENERATION" || job["publicKey"] != nil || job["attestation"] != nil {
		t.Fatalf("a new job, as recorded, is PENDING_GENERATION without key or attestation: %v", job)
	}
	srv.WaitGenerated(time.Minute)
	job = c.ok("GET", "/v1/"+ring+"/importJobs/job1?alt=json", "")
	att, _ := job["attestation"].(map[string]any)
	chains, _ := att["certChains"].(map[string]any)
	if job["state"] != "ACTIVE" || att["format"] != "CAVIUM_V2_COMPRESSED" || att["content"] == nil || chains["caviumCerts"] == nil || chains["googleCardCerts"] == nil || chains["googlePartitionCerts"] == nil {
		t.Fatalf("an active HSM job has the recorded attestation fields: %v", job)
	}
	if l := c.ok("GET", "/v1/"+ring+"/importJobs?alt=json&pageSize=100", ""); len(l["importJobs"].([]any)) != 1 || l["totalSize"] != float64(1) {
		t.Fatalf("list jobs %v", l)
	}
	pemText := job["publicKey"].(map[string]any)["pem"].(string)
	pub := jobKey(t, &kmspb.ImportJob{PublicKey: &kmspb.ImportJob_WrappingPublicKey{Pem: pemText}})

	material := make([]byte, 32)
	_, _ = rand.Read(material)
	body, _ := json.Marshal(map[string]any{"algorithm": "GOOGLE_SYMMETRIC_ENCRYPTION", "importJob": ring + "/importJobs/job1",
		"wrappedKey": b64(wrapRSAAES(t, pub, true, material))})
	v := c.ok("POST", "/v1/"+keyName+"/cryptoKeyVersions:import", string(body))
	if v["state"] != "PENDING_IMPORT" {
		t.Fatalf("imported version %v", v)
	}
	v = c.waitVersion(v["name"].(string))
	if v["state"] != "ENABLED" {
		t.Fatalf("version %v", v)
	}
	if l := c.ok("GET", "/v1/"+keyName+"/cryptoKeyVersions", ""); len(l["cryptoKeyVersions"].([]any)) != 1 {
		t.Fatalf("list versions %v", l)
	}

	enc := c.ok("POST", "/v1/"+keyName+":encrypt", `{"plaintext":"`+b64([]byte("hello"))+`"}`)
	if enc["name"] != v["name"] || enc["ciphertextCrc32c"] == nil {
		t.Fatalf("encrypt %v", enc)
	}
	dec := c.ok("POST", "/v1/"+keyName+":decrypt", `{"ciphertext":"`+enc["ciphertext"].(string)+`"}`)
	if dec["plaintext"] != b64([]byte("hello")) {
		t.Fatalf("decrypt %v", dec)
	}
	d := c.ok("POST", "/v1/"+v["name"].(string)+":destroy", "{}")
	if d["state"] != "DESTROY_SCHEDULED" {
		t.Fatalf("destroy %v", d)
	}
	c.wantError("POST", "/v1/"+v["name"].(string)+":destroy", "{}", 400, "FAILED_PRECONDITION", "DESTROY_SCHEDULED")
}

func TestRESTMacSignAndPublicKeyShareGRPCState(t *testing.T) {
	t.Parallel()
	srv, gc, _ := start(t, gcpemu.Options{Now: time.Now})
	// A second front end on the same server: what gRPC made, REST reads.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeREST(l) }()
	t.Cleanup(func() { l.Close() })
	c := &restClient{t: t, base: "http://" + l.Addr().String()}

	c.ok("POST", "/v1/"+loc+"/keyRings?keyRingId=r1", "")
	c.ok("POST", "/v1/"+loc+"/keyRings/r1/cryptoKeys?cryptoKeyId=mac&skipInitialVersionCreation=true",
		`{"purpose":"MAC","importOnly":true,"versionTemplate":{"algorithm":"HMAC_SHA256","protectionLevel":"SOFTWARE"}}`)
	c.ok("POST", "/v1/"+loc+"/keyRings/r1/importJobs?importJobId=j", `{"importMethod":"RSA_OAEP_3072_SHA256","protectionLevel":"SOFTWARE"}`)
	srv.WaitGenerated(time.Minute)
	job := c.ok("GET", "/v1/"+loc+"/keyRings/r1/importJobs/j", "")
	if job["attestation"] != nil {
		t.Fatalf("a SOFTWARE job has no attestation: %v", job)
	}
	pub := jobKey(t, &kmspb.ImportJob{PublicKey: &kmspb.ImportJob_WrappingPublicKey{Pem: job["publicKey"].(map[string]any)["pem"].(string)}})
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	keyName := loc + "/keyRings/r1/cryptoKeys/mac"
	v := c.ok("POST", "/v1/"+keyName+"/cryptoKeyVersions:import",
		`{"algorithm":"HMAC_SHA256","importJob":"`+loc+`/keyRings/r1/importJobs/j","wrappedKey":"`+b64(wrapped)+`"}`)
	v = c.waitVersion(v["name"].(string))
	m := c.ok("POST", "/v1/"+v["name"].(string)+":macSign", `{"data":"`+b64([]byte("msg"))+`"}`)
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("msg"))
	if m["mac"] != b64(h.Sum(nil)) {
		t.Fatalf("macSign %v", m)
	}
	// getPublicKey of a MAC version is refused as the gRPC server refuses it.
	c.wantError("GET", "/v1/"+v["name"].(string)+"/publicKey", "", 400, "FAILED_PRECONDITION", "not asymmetric")
	// An EC key imported over REST: getPublicKey gives its public key.
	c.ok("POST", "/v1/"+loc+"/keyRings/r1/cryptoKeys?cryptoKeyId=ec&skipInitialVersionCreation=true",
		`{"purpose":"ASYMMETRIC_SIGN","importOnly":true,"versionTemplate":{"algorithm":"EC_SIGN_P256_SHA256","protectionLevel":"SOFTWARE"}}`)
	c.ok("POST", "/v1/"+loc+"/keyRings/r1/importJobs?importJobId=aes", `{"importMethod":"RSA_OAEP_3072_SHA256_AES_256","protectionLevel":"SOFTWARE"}`)
	srv.WaitGenerated(time.Minute)
	aesJob := c.ok("GET", "/v1/"+loc+"/keyRings/r1/importJobs/aes", "")
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ev := c.ok("POST", "/v1/"+loc+"/keyRings/r1/cryptoKeys/ec/cryptoKeyVersions:import",
		`{"algorithm":"EC_SIGN_P256_SHA256","importJob":"`+loc+`/keyRings/r1/importJobs/aes","wrappedKey":"`+
			b64(wrapRSAAES(t, jobKey(t, &kmspb.ImportJob{PublicKey: &kmspb.ImportJob_WrappingPublicKey{Pem: aesJob["publicKey"].(map[string]any)["pem"].(string)}}), false, p8))+`"}`)
	ev = c.waitVersion(ev["name"].(string))
	pk := c.ok("GET", "/v1/"+ev["name"].(string)+"/publicKey", "")
	spki, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if pk["pem"] != string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})) || pk["algorithm"] != "EC_SIGN_P256_SHA256" || pk["pemCrc32c"] == nil {
		t.Fatalf("getPublicKey %v", pk)
	}

	// The gRPC front end of the same server sees the version.
	gv, err := gc.GetCryptoKeyVersion(context.Background(), &kmspb.GetCryptoKeyVersionRequest{Name: v["name"].(string)})
	if err != nil || gv.State != kmspb.CryptoKeyVersion_ENABLED {
		t.Fatalf("gRPC view of the REST-imported version: %v %v", gv, err)
	}
}

func TestRESTEnumEncodingIntAsRecorded(t *testing.T) {
	t.Parallel()
	srv, c := startREST(t, gcpemu.Options{})
	c.ok("POST", "/v1/"+loc+"/keyRings?keyRingId=r1", "")
	// The KCC controller's query, as recorded: $alt=json;enum-encoding=int.
	j := c.ok("POST", "/v1/"+loc+"/keyRings/r1/importJobs?%24alt=json%3Benum-encoding%3Dint&importJobId=j", `{"importMethod":1,"protectionLevel":2}`)
	if j["importMethod"] != float64(1) || j["protectionLevel"] != float64(2) || j["state"] != float64(1) {
		t.Fatalf("enums as integers: %v", j)
	}
	srv.WaitGenerated(time.Minute)
	j = c.ok("GET", "/v1/"+loc+"/keyRings/r1/importJobs/j?%24alt=json%3Benum-encoding%3Dint", "")
	if j["state"] != float64(2) || j["attestation"].(map[string]any)["format"] != float64(4) {
		t.Fatalf("recorded: state 2, format 4; got %v", j)
	}
}

func TestRESTRefusals(t *testing.T) {
	t.Parallel()
	_, c := startREST(t, gcpemu.Options{Projects: []string{"test-project"}})
	c.wantError("POST", "/v1/"+loc+"/keyRings?keyRingId=r1&bogus=1", "", 400, "INVALID_ARGUMENT", `Unknown name "bogus"`)
	c.wantError("POST", "/v1/"+loc+"/keyRings?keyRingId=r1", `{"nope":1}`, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
	c.wantError("POST", "/v1/"+loc+"/keyRings?keyRingId=bad!id", "", 400, "INVALID_ARGUMENT", "Invalid key ring ID")
	c.wantError("GET", "/v1/projects/other-project/locations/us-central1/keyRings/r1", "", 403, "PERMISSION_DENIED", "denied")
	c.wantError("GET", "/v1/"+loc+"/keyRings/r1/cryptoKeys/k", "", 404, "NOT_FOUND", "KeyRing "+loc+"/keyRings/r1 not found.")
	c.wantError("GET", "/v2/nothing", "", 404, "NOT_FOUND", "not found")
	if l := c.ok("GET", "/v1/"+loc, ""); l["name"] != loc || l["locationId"] != "us-central1" {
		t.Fatalf("location %v", l)
	}
	c.wantError("GET", "/v1/projects/test-project/locations/mars-north1", "", 404, "NOT_FOUND", "Location projects/test-project/locations/mars-north1 not found.")
	c.wantError("DELETE", "/v1/"+loc+"/keyRings/r1", "", 404, "NOT_FOUND", "not found")
	c.wantError("GET", "/v1/"+loc+"/keyRings?alt=proto", "", 400, "INVALID_ARGUMENT", "alt=json")
	c.wantError("POST", "/v1/"+loc+"/keyRings?keyRingId=r1", strings.Repeat(" ", 300<<10)+"{}", 400, "INVALID_ARGUMENT", "larger than")

	// A request addressed to another host name (DNS rebinding) is refused.
	req, _ := http.NewRequest("GET", c.base+"/v1/"+loc+"/keyRings", nil)
	req.Host = "attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !bytes.Contains(raw, []byte("not a loopback name")) {
		t.Fatalf("foreign Host: %d %s", resp.StatusCode, raw)
	}
}

func TestRESTFaultsAreTheGRPCOnes(t *testing.T) {
	t.Parallel()
	_, c := startREST(t, gcpemu.Options{Faults: []gcpemu.Fault{{Method: "CreateKeyRing", Lost: true}}})
	c.wantError("POST", "/v1/"+loc+"/keyRings?keyRingId=r1", "", 503, "UNAVAILABLE", "answer lost")
	// The lost answer's effect is there: re-running finds it.
	c.wantError("POST", "/v1/"+loc+"/keyRings?keyRingId=r1", "", 409, "ALREADY_EXISTS", "already exists")
}

func TestServeRESTRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	srv, err := gcpemu.New(gcpemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skip("cannot listen on 0.0.0.0 here:", err)
	}
	defer l.Close()
	if err := srv.ServeREST(l); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("ServeREST on 0.0.0.0: %v", err)
	}
}
