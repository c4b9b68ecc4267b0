package kmsemu

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Fidelity rules recorded against real AWS KMS (docs/kms-emulator.md).

func TestCurrentKeyMaterialIdRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	t.Run("ok kept after the material is deleted", func(t *testing.T) {
		keyID, _ := e.importedKey(t)
		id := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId)
		e.deleteMaterial(t, keyID)
		md := e.describe(t, keyID)
		if md.KeyState != types.KeyStatePendingImport || aws.ToString(md.CurrentKeyMaterialId) != id {
			t.Errorf("after DeleteImportedKeyMaterial: %s CurrentKeyMaterialId %q, want PendingImport and %s", md.KeyState, aws.ToString(md.CurrentKeyMaterialId), id)
		}
	})
	t.Run("ok absent on HMAC keys", func(t *testing.T) {
		keyID := e.externalSpecKey(t, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac, types.AlgorithmSpecRsaesOaepSha256, randBytes(t, 32))
		if md := e.describe(t, keyID); md.KeyState != types.KeyStateEnabled || md.CurrentKeyMaterialId != nil {
			t.Errorf("HMAC key: %s CurrentKeyMaterialId %q", md.KeyState, aws.ToString(md.CurrentKeyMaterialId))
		}
	})
}

func TestUpdateAliasSameTypeAndUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	sym := e.awsKMSKey(t)
	if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: aws.String(sym)}); err != nil {
		t.Fatal(err)
	}
	rsaEnc := e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt)
	if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/rsa"), TargetKeyId: aws.String(rsaEnc)}); err != nil {
		t.Fatal(err)
	}
	update := func(alias, target string) error {
		_, err := e.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(target)})
		return err
	}
	for _, tt := range []struct {
		name, alias, target, msg string
	}{
		{"fail symmetric to HMAC", "alias/app", e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac), "HMAC"},
		{"fail symmetric to asymmetric ENCRYPT_DECRYPT", "alias/app", rsaEnc, "asymmetric"},
		{"fail asymmetric ENCRYPT_DECRYPT to SIGN_VERIFY", "alias/rsa", e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecEccNistP256, types.KeyUsageTypeSignVerify), "SIGN_VERIFY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, update(tt.alias, tt.target), "ValidationException", tt.msg, "same key type and key usage")
		})
	}
	t.Run("ok symmetric to symmetric, asymmetric to asymmetric of another spec", func(t *testing.T) {
		if err := update("alias/app", e.externalKey(t)); err != nil {
			t.Error(err)
		}
		if err := update("alias/rsa", e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecRsa3072, types.KeyUsageTypeEncryptDecrypt)); err != nil {
			t.Error(err)
		}
	})
	t.Run("fail alias name without alias/ prefix is ValidationException", func(t *testing.T) {
		_, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("app2"), TargetKeyId: aws.String(sym)})
		wantErr(t, err, "ValidationException", "alias/")
	})
}

func TestDecryptWithAnotherKeyTypeIsIncorrectKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	sym := e.awsKMSKey(t)
	blob := e.encrypt(t, sym, []byte("secret"), nil)
	for _, tt := range []struct{ name, keyID string }{
		{"fail RSA ENCRYPT_DECRYPT key", e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt)},
		{"fail HMAC key", e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac)},
		{"fail another symmetric key", e.awsKMSKey(t)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(tt.keyID), EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault})
			wantErr(t, err, "IncorrectKeyException")
		})
	}
}

func TestJSONMemberNamesExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	keyID := e.awsKMSKey(t)
	for _, tt := range []struct {
		name, target, body string
		status             int
		code, msg          string
	}{
		{"fail member name in another case is not the member", "DescribeKey", `{"keyid":"` + keyID + `"}`, 400, "ValidationException", "'keyId'"},
		{"fail lowerCamel member name", "DescribeKey", `{"keyId":"` + keyID + `"}`, 400, "ValidationException", "'keyId'"},
		{"ok unknown member ignored", "DescribeKey", `{"KeyId":"` + keyID + `","Colour":"blue"}`, 200, "", keyID},
		{"fail nested member name in another case", "CreateKey", `{"Tags":[{"tagkey":"a","TagValue":"b"}]}`, 400, "ValidationException", "tagKey"},
		{"ok lowercase origin is not Origin: the default applies", "CreateKey", `{"origin":"EXTERNAL"}`, 200, "", `"KeyState":"Enabled"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, code, body := e.raw(t, "TrentService."+tt.target, []byte(tt.body))
			if status != tt.status || code != tt.code || !strings.Contains(string(body), tt.msg) {
				t.Errorf("HTTP %d %s %s, want %d %s containing %s", status, code, body, tt.status, tt.code, tt.msg)
			}
		})
	}
	t.Run("ok encryption context keys keep their case", func(t *testing.T) {
		ec := map[string]string{"Tenant": "a", "tenant": "b"}
		blob := e.encrypt(t, keyID, []byte("x"), ec)
		if _, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec}); err != nil {
			t.Errorf("Decrypt with a mixed-case context: %v", err)
		}
	})
}
