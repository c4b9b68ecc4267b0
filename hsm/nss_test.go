package hsm_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// openNSS provisions a fresh NSS softokn database and returns its token
// logged in. The module is closed when the test ends, so the next test can
// initialise NSS on its own database.
func openNSS(t *testing.T) *hsm.Token {
	t.Helper()
	tok := softhsm.NewNSSTestToken(t)
	return openLoggedIn(t, hsm.ModuleConfig{Path: tok.Module, Params: tok.Params}, tok.Label, tok.PIN)
}

// software-tokens.md: unlike SoftHSM2 2.6.1, NSS wraps with OAEP SHA-256.
func TestNSSProbeAcceptsOAEPSHA256AndSHA1(t *testing.T) {
	tk := openNSS(t)
	for _, h := range []hsm.OAEPHash{hsm.OAEPSHA256, hsm.OAEPSHA1} {
		if err := tk.ProbeOAEP(h); err != nil {
			t.Errorf("NSS wraps with OAEP %v: probe said %v", h, err)
		}
	}
}

func TestNSSGeneratedKeyHasTheTemplatePolicyAndNoCheckValue(t *testing.T) {
	tk := openNSS(t)
	k, err := tk.GenerateAES256("payments", false)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Sensitive || !k.Extractable || k.WrapWithTrusted {
		t.Errorf("policy: sensitive=%v extractable=%v wrapWithTrusted=%v, want true/true/false", k.Sensitive, k.Extractable, k.WrapWithTrusted)
	}
	if k.KeyType != pkcs11.CKK_AES || k.ValueLen != hsm.AESKeyBytes {
		t.Errorf("key type %#x len %d, want AES %d", k.KeyType, k.ValueLen, hsm.AESKeyBytes)
	}
	if k.Label != "payments" || len(k.ID) != hsm.KeyIDBytes {
		t.Errorf("label %q, CKA_ID of %d bytes: want payments and %d", k.Label, len(k.ID), hsm.KeyIDBytes)
	}
	// NSS answers CKR_ATTRIBUTE_TYPE_INVALID for CKA_CHECK_VALUE; the key
	// must still be usable, just without a check value in the records.
	if k.CheckValue != nil || k.CheckValueHex() != "" {
		t.Errorf("NSS 3.87 has no CKA_CHECK_VALUE, yet the key reports %X", k.CheckValue)
	}
	if err := hsm.CheckAES256ForImport(k); err != nil {
		t.Errorf("generated key not importable: %v", err)
	}
	byID, err := tk.FindSecretKey(hsm.KeySelector{ID: k.ID})
	if err != nil {
		t.Fatal(err)
	}
	if byID.Handle != k.Handle || byID.Label != "payments" {
		t.Errorf("found by CKA_ID: handle %d label %q, want %d payments", byID.Handle, byID.Label, k.Handle)
	}
}

// TestNSSWrapOAEPSHA256DecryptsToTheKey plays KMS with RSAES_OAEP_SHA_256.
// NSS has no check value, so the material is checked against a second,
// independent wrap of the same key with SHA-1: both must decrypt to the same
// 32 bytes, and the SHA-256 ciphertext must not decrypt as SHA-1 (a token
// that silently used SHA-1 would pass the first check and fail this one).
func TestNSSWrapOAEPSHA256DecryptsToTheKey(t *testing.T) {
	tk := openNSS(t)
	k, err := tk.GenerateAES256("wrapme", false)
	if err != nil {
		t.Fatal(err)
	}
	priv := kmsWrappingKey(t)
	wrapped, err := tk.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if len(wrapped) != priv.Size() {
		t.Fatalf("wrapped %d bytes, want the %d-byte modulus length", len(wrapped), priv.Size())
	}
	material, err := rsa.DecryptOAEP(sha256.New(), nil, priv, wrapped, nil)
	if err != nil {
		t.Fatalf("KMS side cannot decrypt the token's OAEP SHA-256 output: %v", err)
	}
	if len(material) != hsm.AESKeyBytes {
		t.Fatalf("unwrapped %d bytes, want %d", len(material), hsm.AESKeyBytes)
	}
	if _, err := rsa.DecryptOAEP(sha1.New(), nil, priv, wrapped, nil); err == nil {
		t.Error("the SHA-256 wrap also decrypts as SHA-1: the token did not use SHA-256")
	}
	wrapped1, err := tk.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1)
	if err != nil {
		t.Fatal(err)
	}
	material1, err := rsa.DecryptOAEP(sha1.New(), nil, priv, wrapped1, nil)
	if err != nil {
		t.Fatalf("KMS side cannot decrypt the token's OAEP SHA-1 output: %v", err)
	}
	if !bytes.Equal(material, material1) {
		t.Error("SHA-256 and SHA-1 wraps of the same key decrypt to different material")
	}
}

// software-tokens.md: NSS does not enforce CKA_WRAP_WITH_TRUSTED. The
// capability probe finds that out on a throwaway session key (NSS wraps it
// under an untrusted key), and Generate then refuses dual control before
// making anything, so nobody takes --wrap-with-trusted for dual control on NSS.
func TestNSSDoesNotEnforceWrapWithTrusted(t *testing.T) {
	tk := openNSS(t)
	err := tk.DualControlSupported()
	var u *hsm.UnsupportedError
	if !errors.As(err, &u) || u.Kind != hsm.KindDualControl || !strings.Contains(err.Error(), "does not enforce the attribute") {
		t.Fatalf("NSS 3.87 was expected to ignore CKA_WRAP_WITH_TRUSTED; the probe says %v: update docs and this test", err)
	}
	if _, err := tk.GenerateAES256("dual-control", true); !errors.As(err, &u) || u.Kind != hsm.KindDualControl {
		t.Fatalf("Generate with dual control on NSS: got %v, want the dual-control refusal", err)
	}
	if inUse, err := tk.LabelInUse("dual-control"); err != nil || inUse {
		t.Errorf("a refused dual-control generation left an object labelled dual-control (in use %v, err %v)", inUse, err)
	}
}

// TestNSSRSAAESWrapOfEveryKeyType composes RSA-AES with OAEP SHA-256 on
// NSS (KWP through the one-call wrap its short size query needs) and checks
// the unwrapped PKCS#8 is exact DER.
func TestNSSRSAAESWrapOfEveryKeyType(t *testing.T) {
	tk := openNSS(t)
	if err := tk.ProbeRSAAES(hsm.OAEPSHA256); err != nil {
		t.Fatalf("NSS composes RSA-AES with OAEP SHA-256: %v", err)
	}
	priv := kmsWrappingKey(t)
	for i, p := range []hsm.KeyParams{hsm.AES256(), hsm.HMACKey(28), hsm.RSAKey(2048), hsm.ECKey(hsm.P521)} {
		k, err := tk.Generate(fmt.Sprintf("nss%d", i), p, false)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		blob, err := tk.WrapRSAAES(k, &priv.PublicKey, hsm.OAEPSHA256)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		aesKey, err := rsa.DecryptOAEP(sha256.New(), nil, priv, blob[:256], nil)
		if err != nil {
			t.Fatalf("%s: OAEP SHA-256 part: %v", p, err)
		}
		cmd := exec.Command("openssl", "enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(aesKey), "-iv", "A65959A6")
		cmd.Stdin = bytes.NewReader(blob[256:])
		material, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: openssl unwrap: %v", p, err)
		}
		if p.Secret() {
			if len(material) != p.Bytes {
				t.Errorf("%s: unwrapped %d bytes, want exactly %d", p, len(material), p.Bytes)
			}
			continue
		}
		if _, err := x509.ParsePKCS8PrivateKey(material); err != nil {
			t.Errorf("%s: NSS's PKCS#8 is not exact DER: %v", p, err)
		}
	}
}

func TestNSSCannotGenerateSecp256k1(t *testing.T) {
	tk := openNSS(t)
	_, err := tk.Check(hsm.Ask{Key: hsm.ECKey(hsm.Secp256k1), Generate: true, Wrap: hsm.WrapMethod{OAEP: hsm.OAEPSHA256}})
	var u *hsm.UnsupportedError
	if !errors.As(err, &u) || u.Kind != hsm.KindGenerate || !strings.Contains(err.Error(), "CKR_DOMAIN_PARAMS_INVALID") {
		t.Fatalf("the probe says %v: want secp256k1 generation refused with CKR_DOMAIN_PARAMS_INVALID", err)
	}
	_, err = tk.Generate("k1", hsm.ECKey(hsm.Secp256k1), false)
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_DOMAIN_PARAMS_INVALID)) {
		t.Fatalf("got %v, want CKR_DOMAIN_PARAMS_INVALID (software-tokens.md)", err)
	}
}
