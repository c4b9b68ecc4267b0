package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// importPaddedP256 creates an EXTERNAL ECC_NIST_P256 key on the running
// emulator and imports a P-256 PKCS#8 followed by pad zero bytes, wrapped
// with RSAES_OAEP_SHA_256 (small enough for OAEP under RSA_2048).
func importPaddedP256(t *testing.T, c *kms.Client, pad int) error {
	t.Helper()
	ctx := context.Background()
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	p, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId: created.KeyMetadata.KeyId, WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048,
	})
	if err != nil {
		t.Fatalf("GetParametersForImport: %v", err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(p.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), append(der, make([]byte, pad)...), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: created.KeyMetadata.KeyId, ImportToken: p.ImportToken, EncryptedKeyMaterial: blob,
		ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	return err
}

func TestLenientPKCS8PaddingFlag(t *testing.T) {
	const warning = "lenient PKCS#8 padding: ignored"
	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{"ok --lenient-pkcs8-padding accepts 5 trailing zeros and warns", nil, []string{"--lenient-pkcs8-padding"}},
		{"ok KMS_EMULATOR_LENIENT_PKCS8_PADDING=true does the same", []string{"KMS_EMULATOR_LENIENT_PKCS8_PADDING=true"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := startEnv(t, tt.env, tt.args...)
			if err := importPaddedP256(t, client(r.url), 5); err != nil {
				t.Fatalf("ImportKeyMaterial of padded PKCS#8: %v", err)
			}
			if err := importPaddedP256(t, client(r.url), 8); err == nil {
				t.Error("8 trailing zeros were accepted")
			}
			r.stop(t, syscall.SIGTERM)
			logs := r.stderr.String()
			if n := strings.Count(logs, warning); n != 1 {
				t.Errorf("stderr has %d %q warnings, want 1:\n%s", n, warning, logs)
			}
			if !strings.Contains(logs, "lenientPKCS8Padding=true") {
				t.Errorf("the start-up line does not say the switch is on:\n%s", logs)
			}
		})
	}
	t.Run("fail off by default: 1 trailing zero is IncorrectKeyMaterialException", func(t *testing.T) {
		r := start(t)
		err := importPaddedP256(t, client(r.url), 1)
		var ikm *types.IncorrectKeyMaterialException
		if !errors.As(err, &ikm) || !strings.Contains(aws.ToString(ikm.Message), "--lenient-pkcs8-padding") {
			t.Errorf("ImportKeyMaterial = %v, want IncorrectKeyMaterialException naming --lenient-pkcs8-padding", err)
		}
		r.stop(t, syscall.SIGTERM)
		if strings.Contains(r.stderr.String(), warning) {
			t.Error("a strict emulator logged the lenient warning")
		}
	})
}
