package aws

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func spec(t *testing.T, name string) KeySpec {
	t.Helper()
	s, err := ParseKeySpec(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wrapping(t *testing.T, name string) Wrapping {
	t.Helper()
	w, err := ParseWrappingAlgorithm(name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestCheckWrapping is the protocol note's table: which wrapping KMS
// accepts for which material under which wrapping key.
func TestCheckWrapping(t *testing.T) {
	tests := []struct {
		spec, alg string
		wks       types.WrappingKeySpec
		wantErr   string
	}{
		{"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256", types.WrappingKeySpecRsa2048, ""},
		{"SYMMETRIC_DEFAULT", "RSA_AES_KEY_WRAP_SHA_1", types.WrappingKeySpecRsa2048, ""},
		{"HMAC_512", "RSAES_OAEP_SHA_256", types.WrappingKeySpecRsa2048, ""},
		{"RSA_2048", "RSAES_OAEP_SHA_256", types.WrappingKeySpecRsa4096, "too large for RSA-OAEP alone"},
		{"RSA_4096", "RSAES_OAEP_SHA_1", types.WrappingKeySpecRsa4096, "RSA_AES_KEY_WRAP_SHA_256"},
		{"RSA_4096", "RSA_AES_KEY_WRAP_SHA_256", types.WrappingKeySpecRsa2048, ""},
		{"ECC_NIST_P256", "RSAES_OAEP_SHA_256", types.WrappingKeySpecRsa2048, ""},
		{"ECC_NIST_P384", "RSAES_OAEP_SHA_256", types.WrappingKeySpecRsa2048, ""},
		{"ECC_NIST_P521", "RSAES_OAEP_SHA_256", types.WrappingKeySpecRsa2048, "does not fit RSAES_OAEP_SHA_256 under an RSA_2048"},
		{"ECC_NIST_P521", "RSAES_OAEP_SHA_1", types.WrappingKeySpecRsa2048, "at most 214 bytes"},
		{"ECC_NIST_P521", "RSAES_OAEP_SHA_256", types.WrappingKeySpecRsa3072, ""},
		{"ECC_NIST_P521", "RSA_AES_KEY_WRAP_SHA_256", types.WrappingKeySpecRsa2048, ""},
		{"ECC_SECG_P256K1", "RSAES_OAEP_SHA_1", types.WrappingKeySpecRsa2048, ""},
	}
	for _, tt := range tests {
		name := "ok"
		if tt.wantErr != "" {
			name = "fail"
		}
		t.Run(name+" "+tt.spec+" "+tt.alg+" "+string(tt.wks), func(t *testing.T) {
			err := CheckWrapping(spec(t, tt.spec), wrapping(t, tt.alg), tt.wks)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, kmsimport.ErrInvalidInput) {
				t.Fatalf("got %v, want invalid input containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidWrappingsStrongestFirst(t *testing.T) {
	got := joinWrappings(ValidWrappings(spec(t, "RSA_3072"), types.WrappingKeySpecRsa4096))
	if got != "RSA_AES_KEY_WRAP_SHA_256, RSA_AES_KEY_WRAP_SHA_1" {
		t.Errorf("RSA keys: %s", got)
	}
	got = joinWrappings(ValidWrappings(spec(t, "SYMMETRIC_DEFAULT"), types.WrappingKeySpecRsa2048))
	if got != "RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_256, RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_1" {
		t.Errorf("AES keys: %s", got)
	}
}

func TestKeyUsage(t *testing.T) {
	rsa := spec(t, "RSA_2048")
	if u, err := rsa.Usage(""); err != nil || u != types.KeyUsageTypeSignVerify {
		t.Errorf("RSA default usage %s %v", u, err)
	}
	if u, err := rsa.Usage("encrypt_decrypt"); err != nil || u != types.KeyUsageTypeEncryptDecrypt {
		t.Errorf("RSA ENCRYPT_DECRYPT: %s %v", u, err)
	}
	if _, err := spec(t, "HMAC_256").Usage("SIGN_VERIFY"); err == nil || !strings.Contains(err.Error(), "GENERATE_VERIFY_MAC") {
		t.Errorf("HMAC SIGN_VERIFY: %v", err)
	}
}

func TestParseKeySpecRefusesSM2AndUnknown(t *testing.T) {
	if _, err := ParseKeySpec("SM2"); err == nil || !strings.Contains(err.Error(), "China") {
		t.Errorf("SM2: %v", err)
	}
	if _, err := ParseKeySpec("AES_128"); err == nil || !strings.Contains(err.Error(), "ECC_NIST_P256") {
		t.Errorf("unknown: %v", err)
	}
}

// TestParseKeySpecSaysWhatAWSDoesNotImport: every KMS key spec the SDK
// knows is either importable or refused with what AWS does not allow,
// never as "unknown".
func TestParseKeySpecSaysWhatAWSDoesNotImport(t *testing.T) {
	for _, name := range types.KeySpec("").Values() {
		_, err := ParseKeySpec(string(name))
		switch {
		case err == nil:
		case name == types.KeySpecSm2:
		case strings.Contains(err.Error(), "unknown"):
			t.Errorf("%s is refused as unknown, not with what AWS does not allow: %v", name, err)
		case !strings.Contains(err.Error(), "AWS does not document importing") || !strings.Contains(err.Error(), "kms-input-rules.md"):
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseKeySpec("ECC_NIST_EDWARDS25519"); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "Ed25519") {
		t.Errorf("ECC_NIST_EDWARDS25519: %v", err)
	}
}
