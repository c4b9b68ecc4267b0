package kmsemu

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

var (
	wantRSASigning = []types.SigningAlgorithmSpec{
		types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512,
		types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPssSha512,
	}
	wantRSAEncryption = []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecRsaesOaepSha1, types.EncryptionAlgorithmSpecRsaesOaepSha256}
)

// TestCreateKeySpecs creates a key of every emulated spec and usage and
// checks the algorithms DescribeKey lists for it, then the spec/usage pairs
// KMS refuses.
func TestCreateKeySpecs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	sign := types.KeyUsageTypeSignVerify
	tests := []struct {
		spec  types.KeySpec
		usage types.KeyUsageType
		enc   []types.EncryptionAlgorithmSpec
		sig   []types.SigningAlgorithmSpec
		mac   []types.MacAlgorithmSpec
	}{
		{types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}, nil, nil},
		{types.KeySpecHmac224, types.KeyUsageTypeGenerateVerifyMac, nil, nil, []types.MacAlgorithmSpec{types.MacAlgorithmSpecHmacSha224}},
		{types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac, nil, nil, []types.MacAlgorithmSpec{types.MacAlgorithmSpecHmacSha256}},
		{types.KeySpecHmac384, types.KeyUsageTypeGenerateVerifyMac, nil, nil, []types.MacAlgorithmSpec{types.MacAlgorithmSpecHmacSha384}},
		{types.KeySpecHmac512, types.KeyUsageTypeGenerateVerifyMac, nil, nil, []types.MacAlgorithmSpec{types.MacAlgorithmSpecHmacSha512}},
		{types.KeySpecRsa2048, sign, nil, wantRSASigning, nil},
		{types.KeySpecRsa3072, sign, nil, wantRSASigning, nil},
		{types.KeySpecRsa4096, sign, nil, wantRSASigning, nil},
		{types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt, wantRSAEncryption, nil, nil},
		{types.KeySpecRsa4096, types.KeyUsageTypeEncryptDecrypt, wantRSAEncryption, nil, nil},
		{types.KeySpecEccNistP256, sign, nil, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}, nil},
		{types.KeySpecEccNistP384, sign, nil, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384}, nil},
		{types.KeySpecEccNistP521, sign, nil, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha512}, nil},
		{types.KeySpecEccSecgP256k1, sign, nil, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}, nil},
	}
	for _, tt := range tests {
		t.Run("ok EXTERNAL "+string(tt.spec)+" "+string(tt.usage), func(t *testing.T) {
			out, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: tt.spec, KeyUsage: tt.usage})
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			for _, md := range []*types.KeyMetadata{out.KeyMetadata, e.describe(t, aws.ToString(out.KeyMetadata.KeyId))} {
				if md.KeySpec != tt.spec || string(md.CustomerMasterKeySpec) != string(tt.spec) || md.KeyUsage != tt.usage || md.KeyState != types.KeyStatePendingImport {
					t.Errorf("KeySpec %s/%s KeyUsage %s KeyState %s", md.KeySpec, md.CustomerMasterKeySpec, md.KeyUsage, md.KeyState)
				}
				if !slices.Equal(md.EncryptionAlgorithms, tt.enc) || !slices.Equal(md.SigningAlgorithms, tt.sig) || !slices.Equal(md.MacAlgorithms, tt.mac) {
					t.Errorf("EncryptionAlgorithms %v SigningAlgorithms %v MacAlgorithms %v, want %v %v %v",
						md.EncryptionAlgorithms, md.SigningAlgorithms, md.MacAlgorithms, tt.enc, tt.sig, tt.mac)
				}
			}
		})
	}
	t.Run("ok deprecated CustomerMasterKeySpec ECC_SECG_P256K1", func(t *testing.T) {
		out, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, CustomerMasterKeySpec: types.CustomerMasterKeySpecEccSecgP256k1, KeyUsage: sign})
		if err != nil {
			t.Fatal(err)
		}
		if out.KeyMetadata.KeySpec != types.KeySpecEccSecgP256k1 {
			t.Errorf("KeySpec = %s", out.KeyMetadata.KeySpec)
		}
	})

	fails := []struct {
		name  string
		spec  types.KeySpec
		usage types.KeyUsageType
		code  string
		msg   string
	}{
		{"fail HMAC_256 without KeyUsage", types.KeySpecHmac256, "", "ValidationException", "KeyUsage is required"},
		{"fail RSA_2048 without KeyUsage (SIGN_VERIFY or ENCRYPT_DECRYPT must be chosen)", types.KeySpecRsa2048, "", "ValidationException", "ENCRYPT_DECRYPT or SIGN_VERIFY"},
		{"fail ECC_NIST_P256 without KeyUsage", types.KeySpecEccNistP256, "", "ValidationException", "KeyUsage is required"},
		{"fail HMAC_256 with SIGN_VERIFY", types.KeySpecHmac256, sign, "ValidationException", "not compatible"},
		{"fail HMAC_512 with ENCRYPT_DECRYPT", types.KeySpecHmac512, types.KeyUsageTypeEncryptDecrypt, "ValidationException", "not compatible"},
		{"fail RSA_3072 with GENERATE_VERIFY_MAC", types.KeySpecRsa3072, types.KeyUsageTypeGenerateVerifyMac, "ValidationException", "not compatible"},
		{"fail RSA_2048 with KEY_AGREEMENT", types.KeySpecRsa2048, types.KeyUsageTypeKeyAgreement, "ValidationException", "not compatible"},
		{"fail ECC_NIST_P384 with ENCRYPT_DECRYPT", types.KeySpecEccNistP384, types.KeyUsageTypeEncryptDecrypt, "ValidationException", "not compatible"},
		{"fail ECC_SECG_P256K1 with KEY_AGREEMENT", types.KeySpecEccSecgP256k1, types.KeyUsageTypeKeyAgreement, "ValidationException", "not compatible"},
		{"fail SYMMETRIC_DEFAULT with GENERATE_VERIFY_MAC", types.KeySpecSymmetricDefault, types.KeyUsageTypeGenerateVerifyMac, "ValidationException", "not compatible"},
		{"fail ML_DSA_44 not emulated", types.KeySpecMlDsa44, sign, "KmsBridgeNotImplementedException", "ML_DSA_44"},
		{"fail ECC_NIST_EDWARDS25519 not emulated", types.KeySpecEccNistEdwards25519, sign, "KmsBridgeNotImplementedException", "ECC_NIST_EDWARDS25519"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: tt.spec, KeyUsage: tt.usage})
			wantErr(t, err, tt.code, tt.msg)
		})
	}
}
