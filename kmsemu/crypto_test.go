package kmsemu

import (
	"bytes"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func (e *env) encrypt(t *testing.T, keyID string, plain []byte, ec map[string]string) []byte {
	t.Helper()
	out, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plain, EncryptionContext: ec})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out.CiphertextBlob
}

func TestEncryptDecrypt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	keyID, _ := e.importedKey(t)
	arn := e.srv.keyARN(keyID)
	name := e.aliasedKey(t)
	if _, err := e.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"tenant": "a", "purpose": "test"}

	for _, ref := range []string{keyID, arn, name, e.srv.aliasARN(name)} {
		t.Run("ok encrypt and decrypt naming the key as "+ref, func(t *testing.T) {
			blob := e.encrypt(t, ref, []byte("hello"), ec)
			out, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec, KeyId: aws.String(ref)})
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if string(out.Plaintext) != "hello" || aws.ToString(out.KeyId) != arn {
				t.Errorf("Decrypt = {%q, %s}", out.Plaintext, aws.ToString(out.KeyId))
			}
		})
	}
	t.Run("ok AWS_KMS key", func(t *testing.T) {
		k := e.awsKMSKey(t)
		out, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: e.encrypt(t, k, []byte{0}, nil)})
		if err != nil || !bytes.Equal(out.Plaintext, []byte{0}) {
			t.Fatalf("Decrypt = %x, %v", out.Plaintext, err)
		}
	})
	t.Run("ok encryption context order does not matter", func(t *testing.T) {
		blob := e.encrypt(t, keyID, []byte("x"), map[string]string{"a": "1", "b": "2"})
		if _, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"b": "2", "a": "1"}}); err != nil {
			t.Fatal(err)
		}
	})

	blob := e.encrypt(t, keyID, []byte("secret"), ec)
	tampered := append([]byte(nil), blob...)
	tampered[len(tampered)-3] ^= 1
	otherMaterial := func(t *testing.T) []byte {
		// Same layout, same key id, but not this key's material id.
		b := append([]byte(nil), blob...)
		b[blobMatOff] ^= 1
		return b
	}
	tests := []struct {
		name string
		run  func(t *testing.T) error
		code string
		msg  string
	}{
		{"fail Decrypt naming another key", func(t *testing.T) error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec, KeyId: aws.String(e.awsKMSKey(t))})
			return err
		}, "IncorrectKeyException", ""},
		{"fail Decrypt with another encryption context", func(t *testing.T) error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"tenant": "b", "purpose": "test"}})
			return err
		}, "InvalidCiphertextException", ""},
		{"fail Decrypt without the encryption context", func(t *testing.T) error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
			return err
		}, "InvalidCiphertextException", ""},
		{"fail Decrypt of a tampered ciphertext", func(t *testing.T) error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: tampered, EncryptionContext: ec})
			return err
		}, "InvalidCiphertextException", ""},
		{"fail Decrypt of a ciphertext naming other key material", func(t *testing.T) error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: otherMaterial(t), EncryptionContext: ec})
			return err
		}, "InvalidCiphertextException", "key material"},
		{"fail Decrypt of bytes that are no ciphertext", func(t *testing.T) error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("not a ciphertext at all")})
			return err
		}, "InvalidCiphertextException", ""},
		{"fail Encrypt with a disabled key", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(e.disabledKey(t)), Plaintext: []byte("x")})
			return err
		}, "DisabledException", ""},
		{"fail Decrypt with a disabled key", func(t *testing.T) error {
			k, _ := e.importedKey(t)
			b := e.encrypt(t, k, []byte("x"), nil)
			if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: b})
			return err
		}, "DisabledException", ""},
		{"fail Encrypt with a key pending import", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(e.externalKey(t)), Plaintext: []byte("x")})
			return err
		}, "KMSInvalidStateException", ""},
		{"fail Encrypt with a key pending deletion", func(t *testing.T) error {
			k, _ := e.importedKey(t)
			if _, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k), Plaintext: []byte("x")})
			return err
		}, "KMSInvalidStateException", ""},
		{"fail Encrypt with an asymmetric algorithm", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}, "InvalidKeyUsageException", ""},
		{"fail Encrypt of more than 4096 bytes", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: make([]byte, 4097)})
			return err
		}, "ValidationException", ""},
		{"fail Encrypt with an unknown alias", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/nope"), Plaintext: []byte("x")})
			return err
		}, "NotFoundException", ""},
		{"fail Encrypt with DryRun (not emulated)", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x"), DryRun: aws.Bool(true)})
			return err
		}, "KmsBridgeNotImplementedException", "DryRun"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.run(t), tt.code, tt.msg)
		})
	}
}
