package e2e

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

func validTo(d time.Duration) string {
	return time.Now().Add(d).UTC().Truncate(time.Second).Format(time.RFC3339)
}

// roundTrip encrypts through KMS and decrypts, returning the ciphertext.
func roundTrip(t *testing.T, c *kms.Client, keyID string) []byte {
	t.Helper()
	ctx := context.Background()
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("card 4111 1111 1111 1111")})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if string(dec.Plaintext) != "card 4111 1111 1111 1111" {
		t.Fatalf("Decrypt gave %q", dec.Plaintext)
	}
	return enc.CiphertextBlob
}

func TestImportGeneratedKeyEndToEnd(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	res := importJSON(t, tok, "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--key-label", "payments-2026", "--generate",
		"--alias", "alias/payments", "--description", "payments data key", "--tag", "owner=payments",
		"--valid-to", validTo(180*24*time.Hour))

	// The summary a user gets.
	if !res.CreatedKMSKey || res.KeyState != "Enabled" || res.Origin != "EXTERNAL" || res.KeySpec != "SYMMETRIC_DEFAULT" {
		t.Errorf("KMS side: created=%v state=%s origin=%s spec=%s", res.CreatedKMSKey, res.KeyState, res.Origin, res.KeySpec)
	}
	if !strings.HasPrefix(res.Arn, "arn:aws:kms:us-east-1:") || !strings.HasSuffix(res.Arn, res.KeyId) {
		t.Errorf("ARN %q does not name key %q", res.Arn, res.KeyId)
	}
	// SoftHSM2 2.6.1 cannot do OAEP SHA-256: the probe must find that and say so.
	if res.WrappingAlgorithm != "RSAES_OAEP_SHA_1" || len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "RSAES_OAEP_SHA_256") {
		t.Errorf("wrapping %s warnings %q: want RSAES_OAEP_SHA_1 with a warning naming SHA-256", res.WrappingAlgorithm, res.Warnings)
	}
	if res.WrappingKeySpec != "RSA_4096" {
		t.Errorf("wrapping key spec %s, want the RSA_4096 default", res.WrappingKeySpec)
	}
	if len(res.KeyMaterialId) != 64 || res.ExpirationModel != "KEY_MATERIAL_EXPIRES" || res.ValidTo == nil {
		t.Errorf("material id %q model %s validTo %v", res.KeyMaterialId, res.ExpirationModel, res.ValidTo)
	}
	if !res.HSM.Generated || res.HSM.KeyLabel != "payments-2026" || len(res.HSM.KeyID) != 32 || res.HSM.Token.Serial != tok.Serial {
		t.Errorf("HSM side: %+v", res.HSM)
	}
	if !res.Verification.EncryptDecrypt || !res.Verification.KeyEnabled {
		t.Errorf("verification: %+v", res.Verification)
	}

	// KMS holds the HSM's material: the emulator's check value equals the token's.
	if got := emu.checkValue(t, res.KeyId); got != res.HSM.KeyCheckValue || len(got) != 6 {
		t.Errorf("check value: KMS %q, HSM %q", got, res.HSM.KeyCheckValue)
	}
	roundTrip(t, emu.KMS, "alias/payments")

	// The link tags and the user's tag are on the key.
	tags, err := emu.KMS.ListResourceTags(context.Background(), &kms.ListResourceTagsInput{KeyId: aws.String(res.KeyId)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tg := range tags.Tags {
		got[aws.ToString(tg.TagKey)] = aws.ToString(tg.TagValue)
	}
	want := map[string]string{
		awskms.TagHSMKeyID: res.HSM.KeyID, awskms.TagHSMKeyLabel: "payments-2026",
		awskms.TagTokenSerial: tok.Serial, awskms.TagTokenLabel: tok.Label, "owner": "payments",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("tag %s = %q, want %q", k, got[k], v)
		}
	}

	// Independent proof, by OpenSSL, that the bytes are what KMS expects.
	a := emu.lastArtifact(t)
	if a.Outcome != "ok" || a.KeyId != res.Arn && a.KeyId != res.KeyId {
		t.Fatalf("artifact: outcome %s key %s", a.Outcome, a.KeyId)
	}
	if fp := publicKeyFingerprint(t, a.WrappingPrivateKeyPEM); fp != res.WrappingPublicKeySHA256 {
		t.Errorf("printed wrapping key fingerprint %s, the key KMS used has %s", res.WrappingPublicKeySHA256, fp)
	}
	sum := sha256.Sum256(a.EncryptedKeyMaterial)
	if hex.EncodeToString(sum[:]) != res.EncryptedKeyMaterialSHA256 {
		t.Error("printed wrapped-material digest does not match what KMS received")
	}
	material := opensslOAEPDecrypt(t, a, "sha1")
	if len(material) != 32 {
		t.Fatalf("OpenSSL decoded %d bytes of material, want 32", len(material))
	}
	if kcv := opensslCheckValue(t, material); kcv != res.HSM.KeyCheckValue {
		t.Errorf("OpenSSL-decoded material has check value %s, the HSM key %s", kcv, res.HSM.KeyCheckValue)
	}
	// The OAEP hash is the one claimed: decoding with SHA-256 must fail.
	if _, err := opensslDecrypt(t, a, "sha256"); err == nil {
		t.Error("the blob also decrypts as OAEP SHA-256; the hash claim is unproven")
	}
}

func TestSummaryForPeople(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--key-label", "k1", "--generate", "--no-expiry", "--wrapping-key-spec", "RSA_2048")
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, want := range []string{"Import complete.", "key check value", "public key SHA-256", "KeyMaterialId", "never (KEY_MATERIAL_DOES_NOT_EXPIRE)", "RSAES_OAEP_SHA_1"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.Stdout)
		}
	}
	// Each step narrates itself on stderr.
	for _, step := range []string{"step=probe-wrapping", "step=generate-hsm-key", "step=create-kms-key", "step=wrap", "step=import", "step=verify"} {
		if !strings.Contains(r.Stderr, step) {
			t.Errorf("log lacks %s:\n%s", step, r.Stderr)
		}
	}
	if strings.Contains(r.Stderr, "1234") || strings.Contains(r.Stdout, "1234") {
		t.Error("the PIN appears in the output")
	}
}

func TestReimportAfterDeleteMaterial(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	common := []string{"--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048"}
	first := importJSON(t, tok, append(common, "--key-label", "k", "--generate", "--no-expiry")...)
	ct := roundTrip(t, emu.KMS, first.KeyId)

	r := kmsbridge(t, nil, "delete-material", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", first.KeyId)
	if r.Code != 2 || !strings.Contains(r.Stderr, "--yes") {
		t.Fatalf("delete-material without a terminal or --yes: exit %d %s", r.Code, r.Stderr)
	}
	if state := keyState(t, emu, first.KeyId); state != types.KeyStateEnabled {
		t.Fatalf("unconfirmed delete changed the key to %s", state)
	}
	r = kmsbridge(t, nil, "delete-material", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", first.KeyId, "--yes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "CKA_ID "+first.HSM.KeyID) || !strings.Contains(r.Stdout, "kmsbridge renew --token-serial ") {
		t.Fatalf("delete-material: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if state := keyState(t, emu, first.KeyId); state != types.KeyStatePendingImport {
		t.Fatalf("after delete-material the key is %s", state)
	}
	if _, err := emu.KMS.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: ct}); err == nil {
		t.Fatal("Decrypt worked with the material deleted")
	}

	again := importJSON(t, tok, append(common, "--key-label", "k", "--kms-key-id", first.KeyId, "--no-expiry")...)
	if again.CreatedKMSKey || again.HSM.Generated || again.KeyMaterialId != first.KeyMaterialId {
		t.Errorf("re-import: created=%v generated=%v material %s (first %s)", again.CreatedKMSKey, again.HSM.Generated, again.KeyMaterialId, first.KeyMaterialId)
	}
	dec, err := emu.KMS.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: ct})
	if err != nil || string(dec.Plaintext) != "card 4111 1111 1111 1111" {
		t.Fatalf("ciphertext made before the delete: %v %q", err, dec.Plaintext)
	}
}

func TestReimportAfterExpiry(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	common := []string{"--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048"}
	first := importJSON(t, tok, append(common, "--key-label", "k", "--generate", "--valid-to", validTo(2*time.Hour))...)
	ct := roundTrip(t, emu.KMS, first.KeyId)

	emu.advance(t, 3*time.Hour)
	if state := keyState(t, emu, first.KeyId); state != types.KeyStatePendingImport {
		t.Fatalf("after ValidTo the key is %s, want PendingImport", state)
	}
	again := importJSON(t, tok, append(common, "--hsm-key-id", first.HSM.KeyID, "--kms-key-id", first.KeyId, "--valid-to", validTo(30*24*time.Hour))...)
	if again.KeyMaterialId != first.KeyMaterialId || again.KeyState != "Enabled" {
		t.Errorf("re-import after expiry: material %s state %s", again.KeyMaterialId, again.KeyState)
	}
	if _, err := emu.KMS.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: ct}); err != nil {
		t.Fatalf("ciphertext made before expiry: %v", err)
	}
}

func keyState(t *testing.T, emu *emulator, keyID string) types.KeyState {
	t.Helper()
	out, err := emu.KMS.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatal(err)
	}
	return out.KeyMetadata.KeyState
}

func publicKeyFingerprint(t *testing.T, privPEM string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(privPEM))
	if block == nil {
		t.Fatal("artifact has no PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.(crypto.Signer).Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// opensslDecrypt decodes the wrapped blob as KMS would, with openssl
// pkeyutl and OAEP with md as both hash and MGF1 hash.
func opensslDecrypt(t *testing.T, a artifact, md string) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	keyFile, in, out := filepath.Join(dir, "wrapping.pem"), filepath.Join(dir, "wrapped.bin"), filepath.Join(dir, "material.bin")
	if err := os.WriteFile(keyFile, []byte(a.WrappingPrivateKeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, a.EncryptedKeyMaterial, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "pkeyutl", "-decrypt", "-inkey", keyFile,
		"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:"+md, "-pkeyopt", "rsa_mgf1_md:"+md,
		"-in", in, "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("openssl pkeyutl: %v: %s", err, b)
	}
	return os.ReadFile(out)
}

func opensslOAEPDecrypt(t *testing.T, a artifact, md string) []byte {
	t.Helper()
	b, err := opensslDecrypt(t, a, md)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opensslCheckValue is AES-ECB(material, 0^16)[:3] computed by OpenSSL.
func opensslCheckValue(t *testing.T, material []byte) string {
	t.Helper()
	cmd := exec.Command("openssl", "enc", "-aes-256-ecb", "-nopad", "-K", hex.EncodeToString(material))
	cmd.Stdin = strings.NewReader(string(make([]byte, 16)))
	out, err := cmd.Output()
	if err != nil || len(out) != 16 {
		t.Fatalf("openssl enc: %v (%d bytes)", err, len(out))
	}
	return strings.ToUpper(hex.EncodeToString(out[:3]))
}
