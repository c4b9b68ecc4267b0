package kmsemu

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// artifact mirrors import-NNN.json; decoding it strictly makes a renamed or
// added field fail the test.
type artifact struct {
	KeyId                 string
	WrappingAlgorithm     string
	WrappingKeySpec       string
	EncryptedKeyMaterial  []byte
	WrappingPrivateKeyPEM string
	Outcome               string
}

func readArtifact(t *testing.T, dir string, n int) artifact {
	t.Helper()
	name := filepath.Join(dir, fmt.Sprintf("import-%03d.json", n))
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatalf("artifact %d: %v", n, err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a artifact
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return a
}

// opensslOAEPDecrypt decrypts blob with the PEM private key the way the
// brief for these artifacts says a test checks them: OpenSSL, OAEP, SHA-256
// for both the digest and MGF1.
func opensslOAEPDecrypt(t *testing.T, keyPEM string, blob []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	keyFile, inFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "blob.bin")
	if err := os.WriteFile(keyFile, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inFile, blob, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(opensslPath(t), "pkeyutl", "-decrypt", "-inkey", keyFile, "-in", inFile,
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl pkeyutl -decrypt: %v: %s", err, stderr.String())
	}
	return out
}

func opensslPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/openssl"); serr == nil {
			return "/usr/bin/openssl"
		}
		t.Skip("openssl is not installed, so the artifacts cannot be checked independently")
	}
	return p
}

func TestImportArtifacts(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "artifacts") // created by the server
	e := newEnv(t, Options{ArtifactsDir: dir})
	keyID := e.externalKey(t)
	arn := e.srv.keyARN(keyID)
	material := randBytes(t, 32)

	// 1: OAEP SHA-256, succeeds.
	in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, material)
	if _, err := e.kms.ImportKeyMaterial(ctx, in); err != nil {
		t.Fatal(err)
	}
	// 2: other material, refused.
	_, err := e.kms.ImportKeyMaterial(ctx, e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, randBytes(t, 32)))
	wantErr(t, err, "IncorrectKeyMaterialException")
	// 3: a token nobody issued, refused before any key is known.
	bad := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, material)
	bad.ImportToken = []byte("forged")
	_, err = e.kms.ImportKeyMaterial(ctx, bad)
	wantErr(t, err, "InvalidImportTokenException")
	// 4: RSA_AES_KEY_WRAP_SHA_256, same material, succeeds.
	kw := e.importInput(t, keyID, types.AlgorithmSpecRsaAesKeyWrapSha256, material)
	if _, err := e.kms.ImportKeyMaterial(ctx, kw); err != nil {
		t.Fatal(err)
	}

	t.Run("ok one file per call, with its outcome", func(t *testing.T) {
		want := []struct {
			outcome, alg string
			hasKey       bool
		}{
			{"ok", "RSAES_OAEP_SHA_256", true},
			{"IncorrectKeyMaterialException", "RSAES_OAEP_SHA_256", true},
			{"InvalidImportTokenException", "", false},
			{"ok", "RSA_AES_KEY_WRAP_SHA_256", true},
		}
		for i, w := range want {
			a := readArtifact(t, dir, i+1)
			if a.KeyId != arn || a.Outcome != w.outcome || a.WrappingAlgorithm != w.alg || (a.WrappingPrivateKeyPEM != "") != w.hasKey {
				t.Errorf("import-%03d: KeyId %s Outcome %s alg %q key %v; want %s %s %q %v", i+1, a.KeyId, a.Outcome, a.WrappingAlgorithm, a.WrappingPrivateKeyPEM != "", arn, w.outcome, w.alg, w.hasKey)
			}
			if w.hasKey && a.WrappingKeySpec != "RSA_2048" {
				t.Errorf("import-%03d: WrappingKeySpec %q", i+1, a.WrappingKeySpec)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "import-005.json")); err == nil {
			t.Error("more artifacts than calls")
		}
	})
	t.Run("ok openssl decrypts the OAEP blob to the material", func(t *testing.T) {
		a := readArtifact(t, dir, 1)
		if !bytes.Equal(a.EncryptedKeyMaterial, in.EncryptedKeyMaterial) {
			t.Fatal("EncryptedKeyMaterial is not the blob the client sent")
		}
		if got := opensslOAEPDecrypt(t, a.WrappingPrivateKeyPEM, a.EncryptedKeyMaterial); !bytes.Equal(got, material) {
			t.Errorf("openssl gives %x, want the material", got)
		}
	})
	t.Run("ok openssl unwraps the RSA_AES_KEY_WRAP blob to the material", func(t *testing.T) {
		a := readArtifact(t, dir, 4)
		aesKey := opensslOAEPDecrypt(t, a.WrappingPrivateKeyPEM, a.EncryptedKeyMaterial[:256])
		cmd := exec.Command(opensslPath(t), "enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(aesKey), "-iv", "A65959A6")
		cmd.Stdin = bytes.NewReader(a.EncryptedKeyMaterial[256:])
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl enc -id-aes256-wrap-pad: %v: %s", err, stderr.String())
		}
		if !bytes.Equal(got, material) {
			t.Errorf("openssl gives %x, want the material", got)
		}
	})
}

func TestImportArtifactsNeverOverwrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := filepath.Join(dir, "import-001.json")
	if err := os.WriteFile(old, []byte("from an earlier run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{ArtifactsDir: dir})
	e.importedKey(t)
	if data, _ := os.ReadFile(old); string(data) != "from an earlier run\n" {
		t.Errorf("import-001.json was overwritten: %q", data)
	}
	if a := readArtifact(t, dir, 2); a.Outcome != "ok" {
		t.Errorf("import-002.json Outcome = %q", a.Outcome)
	}
}

func TestImportArtifactsUnwritable(t *testing.T) {
	t.Parallel()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{ArtifactsDir: notDir})
	keyID := e.externalKey(t)
	_, err := e.kms.ImportKeyMaterial(ctx, e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, randBytes(t, 32)))
	wantErr(t, err, "KMSInternalException", "artifact")
	if st := e.describe(t, keyID).KeyState; st != types.KeyStatePendingImport {
		t.Errorf("KeyState = %s after an import whose artifact could not be written, want PendingImport", st)
	}
	// The status is 500, as for every KMSInternalException.
	status, _, _ := e.raw(t, "TrentService.ImportKeyMaterial", mustJSON(t, map[string]any{"KeyId": keyID}))
	if status != 500 {
		t.Errorf("HTTP %d, want 500", status)
	}
}
