package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// restCall sends one request to the emulator's REST front end
// with plain HTTP, as gcloud or curl would.
func restCall(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, url, raw)
	}
	return resp.StatusCode, out
}

// TestGCPImportThroughGRPCReadBackOverREST: kmsbridge imports through
// Google's gRPC client; the same emulator's REST front end then shows the
// ring, the labelled import-only key, the attested job and the enabled
// version, and uses the key.
func TestGCPImportThroughGRPCReadBackOverREST(t *testing.T) {
	emu := startGCPEmulator(t, "--rest-listen", "127.0.0.1:0")
	tok := newToken(t)
	res := gcpImportJSON(t, tok, emu.args(tok.Label, t.TempDir(), "restkey", "--key-label", "restkey", "--generate")...)
	key := gcpRing + "/cryptoKeys/restkey"
	get := func(path string) map[string]any {
		t.Helper()
		code, out := restCall(t, "GET", emu.REST+"/v1/"+path+"?alt=json", "")
		if code != 200 {
			t.Fatalf("GET %s: %d %v", path, code, out)
		}
		return out
	}
	if r := get(gcpRing); r["name"] != gcpRing {
		t.Errorf("ring %v", r)
	}
	ck := get(key)
	labels, _ := ck["labels"].(map[string]any)
	if ck["importOnly"] != true || ck["purpose"] != "ENCRYPT_DECRYPT" || labels["kmsbridge-hsm-key-id"] != res.HSM.KeyID {
		t.Errorf("crypto key over REST %v (HSM key id %s)", ck, res.HSM.KeyID)
	}
	v := get(res.CryptoKeyVersion)
	if v["state"] != "ENABLED" || v["algorithm"] != "GOOGLE_SYMMETRIC_ENCRYPTION" || v["protectionLevel"] != "HSM" {
		t.Errorf("version over REST %v", v)
	}
	job := get(v["importJob"].(string))
	att, _ := job["attestation"].(map[string]any)
	if job["importMethod"] != res.ImportMethod || att["format"] != "CAVIUM_V2_COMPRESSED" || !strings.Contains(job["publicKey"].(map[string]any)["pem"].(string), "BEGIN PUBLIC KEY") {
		t.Errorf("import job over REST %v", job)
	}
	code, list := restCall(t, "GET", emu.REST+"/v1/"+key+"/cryptoKeyVersions", "")
	if code != 200 || len(list["cryptoKeyVersions"].([]any)) != 1 {
		t.Errorf("versions over REST: %d %v", code, list)
	}
	pt := base64.StdEncoding.EncodeToString([]byte("card 4111"))
	code, enc := restCall(t, "POST", emu.REST+"/v1/"+key+":encrypt", `{"plaintext":"`+pt+`"}`)
	if code != 200 {
		t.Fatalf("encrypt over REST: %d %v", code, enc)
	}
	code, dec := restCall(t, "POST", emu.REST+"/v1/"+key+":decrypt", `{"ciphertext":"`+enc["ciphertext"].(string)+`"}`)
	if code != 200 || dec["plaintext"] != pt {
		t.Errorf("decrypt over REST: %d %v", code, dec)
	}
	// A key kmsbridge never made: Google's JSON error body.
	code, e := restCall(t, "GET", emu.REST+"/v1/"+gcpRing+"/cryptoKeys/absent", "")
	if errBody, _ := e["error"].(map[string]any); code != 404 || errBody["status"] != "NOT_FOUND" || errBody["message"] != "CryptoKey "+gcpRing+"/cryptoKeys/absent not found." {
		t.Errorf("missing key over REST: %d %v", code, e)
	}
}
