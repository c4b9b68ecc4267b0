package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestAirGappedSplit runs prepare and upload online and wrap "offline":
// with no AWS configuration and no endpoint in its environment, and with
// the files carried between separate directories.
func TestAirGappedSplit(t *testing.T) {
	t.Parallel()
	// An EC key from SoftHSM2 2.6 arrives zero-padded after its PKCS#8
	// (software-tokens.md): the emulator tolerates that only when told to.
	emu := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	online, offline := t.TempDir(), t.TempDir()
	bundle := filepath.Join(online, "signer.bundle.json")

	r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-spec", "ECC_NIST_P256", "--alias", "alias/signer",
		"--wrapping-algorithm", "RSA_AES_KEY_WRAP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", bundle)
	if r.Code != 0 {
		t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, bundle, &b)
	if !strings.Contains(r.Stdout, awskms.FormatFingerprint(b.PublicKeySha256)[:19]) {
		t.Errorf("prepare does not print the fingerprint for reading aloud:\n%s", r.Stdout)
	}
	assertMode0600(t, bundle)

	// Carry the bundle to the HSM host.
	carried := filepath.Join(offline, "signer.bundle.json")
	copyFile(t, bundle, carried)
	wrapped := filepath.Join(offline, "signer.wrapped.json")
	offlineEnv := []string{tok.Environ(), "KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PIN=" + tok.PIN,
		// no AWS configuration at all on the HSM host
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_REGION=", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	r = runBinary(t, offlineEnv, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", carried,
		"--expect-fingerprint", awskms.FormatFingerprint(b.PublicKeySha256), "--key-label", "signer", "--generate", "--out", wrapped)
	if r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	assertMode0600(t, wrapped)
	var w kmsimport.Wrapped
	readJSON(t, wrapped, &w)
	if w.KeyId != b.KeyId || len(w.Evidence.PublicKey) == 0 || w.Token.Serial != tok.Serial || w.HSMKey.KeyLabel != "signer" {
		t.Errorf("wrapped file: key %s evidence %d bytes token %s label %s", w.KeyId, len(w.Evidence.PublicKey), w.Token.Serial, w.HSMKey.KeyLabel)
	}

	// Carry it back and upload.
	back := filepath.Join(online, "signer.wrapped.json")
	copyFile(t, wrapped, back)
	res := importJSONArgs(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", back, "--bundle", bundle, "--no-expiry", "--allow-unsigned")
	if res.KeyState != "Enabled" || !res.Verification.MaterialConfirmed || !res.Verification.PublicKeyMatches || len(res.Verification.SignaturesChecked) == 0 {
		t.Errorf("upload did not prove the import: %+v", res.Verification)
	}

	// Outputs are never overwritten.
	r = kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--out", bundle)
	if r.Code != 2 || !strings.Contains(r.Stderr, "already exists") {
		t.Errorf("prepare over an existing file: exit %d %s", r.Code, r.Stderr)
	}
}

// TestSplitRefusesBadFiles checks each bad file is refused, with its
// message, before the HSM or KMS is touched.
func TestSplitRefusesBadFiles(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "b.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", bundle); r.Code != 0 {
		t.Fatalf("prepare: %s", r.Stderr)
	}
	var b map[string]any
	readJSON(t, bundle, &b)
	fp := b["PublicKeySha256"].(string)
	other := filepath.Join(dir, "other.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", other); r.Code != 0 {
		t.Fatalf("prepare: %s", r.Stderr)
	}
	var o map[string]any
	readJSON(t, other, &o)

	variant := func(name string, edit func(m map[string]any)) string {
		m := map[string]any{}
		readJSON(t, bundle, &m)
		edit(m)
		p := filepath.Join(dir, name)
		raw, _ := json.Marshal(m)
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrapArgs := func(bundlePath, expect string) []string {
		return []string{"wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundlePath, "--expect-fingerprint", expect,
			"--key-label", "k", "--generate", "--out", filepath.Join(t.TempDir(), "w.json")}
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fail unknown field", wrapArgs(variant("unknown.json", func(m map[string]any) { m["Extra"] = 1 }), fp), `unknown field "Extra"`},
		{"fail swapped public key, digest kept", wrapArgs(variant("swapped.json", func(m map[string]any) { m["PublicKey"] = o["PublicKey"] }), fp), "the file was altered"},
		{"fail swapped public key and digest", wrapArgs(variant("swapped2.json", func(m map[string]any) {
			m["PublicKey"], m["PublicKeySha256"] = o["PublicKey"], o["PublicKeySha256"]
		}), fp), "not the " + fp + " read aloud"},
		{"fail token of another bundle", wrapArgs(variant("token.json", func(m map[string]any) {
			m["ImportToken"] = o["ImportToken"]
		}), fp), "ImportTokenSha256 does not match"},
		{"fail expired", wrapArgs(variant("expired.json", func(m map[string]any) { m["ParametersValidTo"] = "2020-01-01T00:00:00Z" }), fp), "expired"},
		{"fail wrong format", wrapArgs(variant("format.json", func(m map[string]any) { m["Format"] = "something/9" }), fp), "not a kmsbridge import bundle"},
		{"fail missing field", wrapArgs(variant("missing.json", func(m map[string]any) { delete(m, "KeyId") }), fp), "field KeyId is missing"},
		{"fail wrapping invalid for spec", wrapArgs(variant("rsa.json", func(m map[string]any) { m["KeySpec"] = "RSA_2048" }), fp), "too large for RSA-OAEP alone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kmsbridge(t, tok, tt.args...)
			if r.Code != 2 || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("exit %d, want 2 with %q:\n%s", r.Code, tt.want, r.Stderr)
			}
			if strings.Contains(r.Stderr, "opened token") {
				t.Error("the token was opened for a bad bundle")
			}
			if tokenHasLabel(t, tok, "k") {
				t.Error("an HSM key was generated for a bad bundle")
			}
		})
	}

	// A wrapped file paired with the wrong bundle is refused before KMS.
	w := filepath.Join(dir, "w.json")
	if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", fp, "--key-label", "real", "--generate", "--out", w); r.Code != 0 {
		t.Fatalf("wrap: %s", r.Stderr)
	}
	before := emu.keyCount(t)
	r := kmsbridge(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", w, "--bundle", other, "--no-expiry")
	if r.Code != 2 || !strings.Contains(r.Stderr, "was wrapped from another bundle") {
		t.Errorf("upload with the wrong bundle: exit %d %s", r.Code, r.Stderr)
	}
	// A damaged wrapped file is refused.
	var wm map[string]any
	readJSON(t, w, &wm)
	wm["EncryptedKeyMaterial"] = base64.StdEncoding.EncodeToString([]byte("not the blob"))
	damaged := filepath.Join(dir, "damaged.json")
	raw, _ := json.Marshal(wm)
	if err := os.WriteFile(damaged, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	r = kmsbridge(t, nil, "upload", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapped", damaged, "--no-expiry")
	if r.Code != 2 || !strings.Contains(r.Stderr, "digest does not match") {
		t.Errorf("damaged wrapped file: exit %d %s", r.Code, r.Stderr)
	}
	if after := emu.keyCount(t); after != before {
		t.Errorf("refused uploads changed KMS: %d -> %d keys", before, after)
	}
	if st := keyState(t, emu, b["KeyId"].(string)); st != "PendingImport" {
		t.Errorf("refused uploads imported material: key is %s", st)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func assertMode0600(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
}

// importJSONArgs runs a kmsbridge command that prints an import Result.
func importJSONArgs(t *testing.T, env []string, args ...string) awskms.Result {
	t.Helper()
	r := runBinary(t, append([]string{"KMSBRIDGE_PKCS11_MODULE=/nonexistent"}, env...), append(args, "--output", "json")...)
	if r.Code != 0 {
		t.Fatalf("kmsbridge %v: exit %d\n%s", args, r.Code, r.Stderr)
	}
	var res awskms.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("no JSON result: %v\n%s", err, r.Stdout)
	}
	return res
}
