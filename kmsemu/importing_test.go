package kmsemu

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

var allWrappingAlgorithms = []types.AlgorithmSpec{
	types.AlgorithmSpecRsaesOaepSha1,
	types.AlgorithmSpecRsaesOaepSha256,
	types.AlgorithmSpecRsaAesKeyWrapSha1,
	types.AlgorithmSpecRsaAesKeyWrapSha256,
}

// TestImportThenEncryptDecrypt walks the whole flow once per wrapping
// algorithm: create, get parameters, wrap, import, check what KMS reports,
// then use the key.
func TestImportThenEncryptDecrypt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, alg := range allWrappingAlgorithms {
		t.Run("ok "+string(alg), func(t *testing.T) {
			md := e.createKey(t, types.OriginTypeExternal)
			keyID, arn := aws.ToString(md.KeyId), aws.ToString(md.Arn)
			if md.KeyState != types.KeyStatePendingImport || md.Enabled || md.Origin != types.OriginTypeExternal || md.CurrentKeyMaterialId != nil {
				t.Fatalf("new EXTERNAL key: state %s enabled %v origin %s material %v", md.KeyState, md.Enabled, md.Origin, md.CurrentKeyMaterialId)
			}

			p := e.params(t, keyID, alg, types.WrappingKeySpecRsa2048)
			if aws.ToString(p.KeyId) != arn {
				t.Errorf("GetParametersForImport KeyId = %s, want %s", aws.ToString(p.KeyId), arn)
			}
			if want := testBase.Add(24 * time.Hour); !aws.ToTime(p.ParametersValidTo).Equal(want) {
				t.Errorf("ParametersValidTo = %v, want %v", aws.ToTime(p.ParametersValidTo), want)
			}

			material := randBytes(t, 32)
			validTo := e.now().Add(48 * time.Hour)
			out, err := e.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
				KeyId:                aws.String(keyID),
				ImportToken:          p.ImportToken,
				EncryptedKeyMaterial: wrap(t, p.PublicKey, alg, material),
				ExpirationModel:      types.ExpirationModelTypeKeyMaterialExpires,
				ValidTo:              aws.Time(validTo),
			})
			if err != nil {
				t.Fatalf("ImportKeyMaterial: %v", err)
			}
			matID := aws.ToString(out.KeyMaterialId)
			if aws.ToString(out.KeyId) != arn || !hex64.MatchString(matID) {
				t.Fatalf("ImportKeyMaterial = {%s, %s}, want {%s, 64 lowercase hex}", aws.ToString(out.KeyId), matID, arn)
			}

			md = e.describe(t, keyID)
			if md.KeyState != types.KeyStateEnabled || !md.Enabled {
				t.Errorf("after import: state %s enabled %v, want Enabled", md.KeyState, md.Enabled)
			}
			if md.ExpirationModel != types.ExpirationModelTypeKeyMaterialExpires || !aws.ToTime(md.ValidTo).Equal(validTo) {
				t.Errorf("after import: ExpirationModel %s ValidTo %v, want KEY_MATERIAL_EXPIRES %v", md.ExpirationModel, aws.ToTime(md.ValidTo), validTo)
			}
			if aws.ToString(md.CurrentKeyMaterialId) != matID {
				t.Errorf("CurrentKeyMaterialId = %s, want %s", aws.ToString(md.CurrentKeyMaterialId), matID)
			}
			if got, want := e.kcv(t, keyID).KeyCheckValue, keyCheckValue(material); got != want {
				t.Errorf("emulator holds material with KCV %s, the client wrapped %s", got, want)
			}

			plain := []byte("attack at dawn")
			ec := map[string]string{"purpose": "test", "alg": string(alg)}
			enc, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plain, EncryptionContext: ec})
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if aws.ToString(enc.KeyId) != arn || enc.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
				t.Errorf("Encrypt = {%s, %s}", aws.ToString(enc.KeyId), enc.EncryptionAlgorithm)
			}
			if bytes.Contains(enc.CiphertextBlob, plain) {
				t.Fatal("ciphertext contains the plaintext")
			}
			dec, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
			if err != nil {
				t.Fatalf("Decrypt without KeyId: %v", err)
			}
			if !bytes.Equal(dec.Plaintext, plain) || aws.ToString(dec.KeyId) != arn || aws.ToString(dec.KeyMaterialId) != matID {
				t.Errorf("Decrypt = {%q, %s, %s}, want {%q, %s, %s}", dec.Plaintext, aws.ToString(dec.KeyId), aws.ToString(dec.KeyMaterialId), plain, arn, matID)
			}
		})
	}
}

func TestGetParametersForImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	bits := map[types.WrappingKeySpec]int{types.WrappingKeySpecRsa2048: 2048, types.WrappingKeySpecRsa3072: 3072}
	for spec, n := range bits {
		t.Run("ok "+string(spec), func(t *testing.T) {
			keyID := aws.ToString(e.createKey(t, types.OriginTypeExternal).KeyId)
			p := e.params(t, keyID, types.AlgorithmSpecRsaesOaepSha256, spec)
			pub, err := x509.ParsePKIXPublicKey(p.PublicKey)
			if err != nil {
				t.Fatalf("PublicKey: %v", err)
			}
			if got := pub.(*rsa.PublicKey).N.BitLen(); got != n {
				t.Errorf("modulus = %d bits, want %d", got, n)
			}
		})
	}
	t.Run("ok every call gives a new key pair and token", func(t *testing.T) {
		keyID := aws.ToString(e.createKey(t, types.OriginTypeExternal).KeyId)
		p1 := e.params(t, keyID, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
		p2 := e.params(t, keyID, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
		if bytes.Equal(p1.PublicKey, p2.PublicKey) || bytes.Equal(p1.ImportToken, p2.ImportToken) {
			t.Error("two calls returned the same public key or import token")
		}
	})
	t.Run("ok by key ARN and on an Enabled key (for re-import)", func(t *testing.T) {
		keyID, _ := e.importedKey(t)
		arn := aws.ToString(e.describe(t, keyID).Arn)
		p := e.params(t, arn, types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa2048)
		if aws.ToString(p.KeyId) != arn {
			t.Errorf("KeyId = %s, want %s", aws.ToString(p.KeyId), arn)
		}
	})

	fails := []struct {
		name  string
		keyID func(t *testing.T) string
		alg   types.AlgorithmSpec
		spec  types.WrappingKeySpec
		code  string
		msg   string
	}{
		{"fail RSAES_PKCS1_V1_5 is refused", e.externalKey, types.AlgorithmSpecRsaesPkcs1V15, types.WrappingKeySpecRsa2048, "ValidationException", "no longer accepts"},
		{"fail SM2PKE is refused", e.externalKey, types.AlgorithmSpecSm2pke, types.WrappingKeySpecRsa2048, "ValidationException", "China"},
		{"fail unknown wrapping key spec", e.externalKey, types.AlgorithmSpecRsaesOaepSha256, "RSA_1024", "ValidationException", "wrappingKeySpec"},
		{"fail unknown wrapping algorithm", e.externalKey, "RSAES_OAEP_SHA_512", types.WrappingKeySpecRsa2048, "ValidationException", "wrappingAlgorithm"},
		{"fail AWS_KMS key", e.awsKMSKey, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048, "UnsupportedOperationException", "origin is AWS_KMS"},
		{"fail key pending deletion", e.pendingDeletionKey, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048, "KMSInvalidStateException", "pending deletion"},
		{"fail disabled key", e.disabledKey, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048, "KMSInvalidStateException", "disabled"},
		{"fail alias instead of key ID", e.aliasedKey, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048, "NotFoundException", "not an alias"},
		{"fail unknown key", unknownKey, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048, "NotFoundException", "does not exist"},
		{"fail malformed ARN", malformedARN, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048, "InvalidArnException", ""},
		{"fail ARN of another account", otherAccountARN, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048, "NotFoundException", "111122223333"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.kms.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
				KeyId: aws.String(tt.keyID(t)), WrappingAlgorithm: tt.alg, WrappingKeySpec: tt.spec,
			})
			wantErr(t, err, tt.code, tt.msg)
		})
	}
}

// Key fixtures for the failure tables: each returns a key id in the state
// its name says.

func (e *env) externalKey(t *testing.T) string {
	return aws.ToString(e.createKey(t, types.OriginTypeExternal).KeyId)
}

func (e *env) awsKMSKey(t *testing.T) string {
	return aws.ToString(e.createKey(t, types.OriginTypeAwsKms).KeyId)
}

func (e *env) pendingDeletionKey(t *testing.T) string {
	keyID := e.externalKey(t)
	if _, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatalf("ScheduleKeyDeletion: %v", err)
	}
	return keyID
}

func (e *env) disabledKey(t *testing.T) string {
	keyID, _ := e.importedKey(t)
	if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("DisableKey: %v", err)
	}
	return keyID
}

func (e *env) aliasedKey(t *testing.T) string {
	keyID := e.externalKey(t)
	name := "alias/" + strings.ReplaceAll(t.Name(), " ", "_")
	name = regexp.MustCompile(`[^a-zA-Z0-9/_-]`).ReplaceAllString(name, "-")
	if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	return name
}

func unknownKey(*testing.T) string { return "0c6c5a62-1c8e-4a55-9b1e-4ad0b4a0f001" }

func malformedARN(*testing.T) string { return "arn:aws:kms:us-east-1:111122223333:widget/123" }

func otherAccountARN(*testing.T) string {
	return "arn:aws:kms:us-east-1:444455556666:key/0c6c5a62-1c8e-4a55-9b1e-4ad0b4a0f001"
}

func TestImportKeyMaterialOK(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tests := []struct {
		name   string
		modify func(t *testing.T, keyID string, in *kms.ImportKeyMaterialInput)
		check  func(t *testing.T, md *types.KeyMetadata)
	}{
		{
			name: "ok KEY_MATERIAL_DOES_NOT_EXPIRE has no ValidTo",
			modify: func(t *testing.T, _ string, in *kms.ImportKeyMaterialInput) {
				in.ExpirationModel, in.ValidTo = types.ExpirationModelTypeKeyMaterialDoesNotExpire, nil
			},
			check: func(t *testing.T, md *types.KeyMetadata) {
				if md.ExpirationModel != types.ExpirationModelTypeKeyMaterialDoesNotExpire || md.ValidTo != nil {
					t.Errorf("ExpirationModel %s ValidTo %v", md.ExpirationModel, md.ValidTo)
				}
			},
		},
		{
			name: "ok ValidTo exactly 365 days ahead",
			modify: func(t *testing.T, _ string, in *kms.ImportKeyMaterialInput) {
				in.ValidTo = aws.Time(e.now().Add(365 * 24 * time.Hour))
			},
			check: func(t *testing.T, md *types.KeyMetadata) {
				if !aws.ToTime(md.ValidTo).Equal(e.now().Add(365 * 24 * time.Hour)) {
					t.Errorf("ValidTo = %v", aws.ToTime(md.ValidTo))
				}
			},
		},
		{
			name: "ok first import with ImportType NEW_KEY_MATERIAL, key ARN and a description",
			modify: func(t *testing.T, keyID string, in *kms.ImportKeyMaterialInput) {
				in.ImportType = types.ImportTypeNewKeyMaterial
				in.KeyId = aws.String(e.srv.keyARN(keyID))
				in.KeyMaterialDescription = aws.String("ceremony 2030-01-02 HSM slot 3: key kmsbridge/test.1")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyID := e.externalKey(t)
			in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, randBytes(t, 32))
			tt.modify(t, keyID, in)
			if _, err := e.kms.ImportKeyMaterial(ctx, in); err != nil {
				t.Fatalf("ImportKeyMaterial: %v", err)
			}
			md := e.describe(t, keyID)
			if md.KeyState != types.KeyStateEnabled {
				t.Errorf("KeyState = %s, want Enabled", md.KeyState)
			}
			if tt.check != nil {
				tt.check(t, md)
			}
		})
	}

	t.Run("ok re-import of the same material while Enabled changes ValidTo, keeps the id", func(t *testing.T) {
		keyID, material := e.importedKey(t)
		first := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId)
		in := e.importInput(t, keyID, types.AlgorithmSpecRsaAesKeyWrapSha1, material)
		in.ValidTo = aws.Time(e.now().Add(100 * 24 * time.Hour))
		in.ImportType = types.ImportTypeExistingKeyMaterial
		in.KeyMaterialId = aws.String(first)
		out, err := e.kms.ImportKeyMaterial(ctx, in)
		if err != nil {
			t.Fatalf("re-import: %v", err)
		}
		if aws.ToString(out.KeyMaterialId) != first {
			t.Errorf("KeyMaterialId = %s, want %s", aws.ToString(out.KeyMaterialId), first)
		}
		if md := e.describe(t, keyID); !aws.ToTime(md.ValidTo).Equal(e.now().Add(100 * 24 * time.Hour)) {
			t.Errorf("ValidTo = %v after re-import", aws.ToTime(md.ValidTo))
		}
	})
	t.Run("ok the same material in two keys gets two ids", func(t *testing.T) {
		material := randBytes(t, 32)
		a, b := e.externalKey(t), e.externalKey(t)
		if e.importOK(t, a, material) == e.importOK(t, b, material) {
			t.Error("KeyMaterialId is the same for two keys")
		}
	})
}

// TestImportKeyMaterialFailures checks each ImportKeyMaterial rule raises
// the exception KMS raises, and that a refused import changes nothing.
func TestImportKeyMaterialFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	oaep := types.AlgorithmSpecRsaesOaepSha256
	tests := []struct {
		name string
		// setup returns the request and the key whose state must not change.
		setup func(t *testing.T) (*kms.ImportKeyMaterialInput, string)
		code  string
		msg   string
	}{
		{"fail import token of another key", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			a, b := e.externalKey(t), e.externalKey(t)
			in := e.importInput(t, b, oaep, randBytes(t, 32))
			in.KeyId = aws.String(a)
			return in, a
		}, "InvalidImportTokenException", ""},
		{"fail unknown import token", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ImportToken = randBytes(t, 64)
			return in, k
		}, "InvalidImportTokenException", ""},
		{"fail import token older than its TTL", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			e.advance(t, 24*time.Hour+time.Second)
			in.ValidTo = aws.Time(e.now().Add(time.Hour))
			return in, k
		}, "ExpiredImportTokenException", "expired"},
		{"fail wrapped under another call's public key", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ImportToken = e.params(t, k, oaep, types.WrappingKeySpecRsa2048).ImportToken
			return in, k
		}, "InvalidCiphertextException", ""},
		{"fail OAEP SHA-1 blob with a SHA-256 token", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			p := e.params(t, k, oaep, types.WrappingKeySpecRsa2048)
			in := e.importInput(t, k, oaep, nil)
			in.ImportToken, in.EncryptedKeyMaterial = p.ImportToken, wrap(t, p.PublicKey, types.AlgorithmSpecRsaesOaepSha1, randBytes(t, 32))
			return in, k
		}, "InvalidCiphertextException", "RSAES_OAEP_SHA_256"},
		{"fail plain OAEP blob with an RSA_AES_KEY_WRAP token", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			p := e.params(t, k, types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa2048)
			in := e.importInput(t, k, oaep, nil)
			in.ImportToken, in.EncryptedKeyMaterial = p.ImportToken, wrap(t, p.PublicKey, oaep, randBytes(t, 32))
			return in, k
		}, "InvalidCiphertextException", ""},
		{"fail RSA_AES_KEY_WRAP blob with a tampered AES-wrapped part", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, types.AlgorithmSpecRsaAesKeyWrapSha256, randBytes(t, 32))
			in.EncryptedKeyMaterial[len(in.EncryptedKeyMaterial)-1] ^= 0x80
			return in, k
		}, "InvalidCiphertextException", ""},
		{"fail RSA_AES_KEY_WRAP with an AES-128 ephemeral key", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			alg := types.AlgorithmSpecRsaAesKeyWrapSha256
			in := e.importInput(t, k, alg, nil)
			p := e.params(t, k, alg, types.WrappingKeySpecRsa2048)
			aesKey := randBytes(t, 16)
			in.ImportToken = p.ImportToken
			in.EncryptedKeyMaterial = append(wrap(t, p.PublicKey, types.AlgorithmSpecRsaesOaepSha256, aesKey), kwp.Wrap(aesKey, randBytes(t, 32))...)
			return in, k
		}, "InvalidCiphertextException", ""},
		{"fail 16-byte material for SYMMETRIC_DEFAULT", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			return e.importInput(t, k, oaep, randBytes(t, 16)), k
		}, "IncorrectKeyMaterialException", "32 bytes"},
		{"fail 64-byte material through RSA_AES_KEY_WRAP", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			return e.importInput(t, k, types.AlgorithmSpecRsaAesKeyWrapSha256, randBytes(t, 64)), k
		}, "IncorrectKeyMaterialException", "got 64"},
		{"fail different material into an Enabled key", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k, _ := e.importedKey(t)
			return e.importInput(t, k, oaep, randBytes(t, 32)), k
		}, "IncorrectKeyMaterialException", "previously imported"},
		{"fail different material after DeleteImportedKeyMaterial", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k, _ := e.importedKey(t)
			if _, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
			return e.importInput(t, k, oaep, randBytes(t, 32)), k
		}, "IncorrectKeyMaterialException", "previously imported"},
		{"fail KeyMaterialId that is not this material's", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k, material := e.importedKey(t)
			in := e.importInput(t, k, oaep, material)
			in.KeyMaterialId = aws.String(strings.Repeat("ab", 32))
			return in, k
		}, "IncorrectKeyMaterialException", "KeyMaterialId"},
		{"fail KeyMaterialId with NEW_KEY_MATERIAL", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ImportType, in.KeyMaterialId = types.ImportTypeNewKeyMaterial, aws.String(strings.Repeat("ab", 32))
			return in, k
		}, "ValidationException", "NEW_KEY_MATERIAL"},
		{"fail ValidTo in the past", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ValidTo = aws.Time(e.now().Add(-time.Minute))
			return in, k
		}, "ValidationException", "must be in the future"},
		{"fail ValidTo more than 365 days ahead", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ValidTo = aws.Time(e.now().Add(365*24*time.Hour + time.Second))
			return in, k
		}, "ValidationException", "365 days"},
		{"fail KEY_MATERIAL_EXPIRES without ValidTo", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ValidTo = nil
			return in, k
		}, "ValidationException", "validTo date must be set"},
		{"fail default expiration model without ValidTo", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ExpirationModel, in.ValidTo = "", nil
			return in, k
		}, "ValidationException", "KEY_MATERIAL_EXPIRES"},
		{"fail KEY_MATERIAL_DOES_NOT_EXPIRE with ValidTo", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.ExpirationModel = types.ExpirationModelTypeKeyMaterialDoesNotExpire
			return in, k
		}, "ValidationException", "cannot be set"},
		{"fail KeyMaterialDescription with a forbidden character", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.KeyMaterialDescription = aws.String("HSM key; drop table")
			return in, k
		}, "ValidationException", "keyMaterialDescription"},
		{"fail KeyMaterialDescription of 257 characters", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.KeyMaterialDescription = aws.String(strings.Repeat("a", 257))
			return in, k
		}, "ValidationException", "256"},
		{"fail EncryptedKeyMaterial over 6144 bytes", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.EncryptedKeyMaterial = randBytes(t, 6145)
			return in, k
		}, "ValidationException", "encryptedKeyMaterial"},
		{"fail AWS_KMS key", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.awsKMSKey(t)
			in := e.importInput(t, e.externalKey(t), oaep, randBytes(t, 32))
			in.KeyId = aws.String(k)
			return in, k
		}, "UnsupportedOperationException", "origin is AWS_KMS"},
		{"fail key pending deletion", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			if _, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
			return in, k
		}, "KMSInvalidStateException", "pending deletion"},
		{"fail disabled key", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k, material := e.importedKey(t)
			in := e.importInput(t, k, oaep, material)
			if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
			return in, k
		}, "KMSInvalidStateException", "disabled"},
		{"fail alias name instead of key ID", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			name := e.aliasedKey(t)
			k := aws.ToString(e.describe(t, name).KeyId)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.KeyId = aws.String(name)
			return in, k
		}, "NotFoundException", "not an alias"},
		{"fail unknown key", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.KeyId = aws.String(unknownKey(t))
			return in, k
		}, "NotFoundException", "does not exist"},
		{"fail malformed ARN", func(t *testing.T) (*kms.ImportKeyMaterialInput, string) {
			k := e.externalKey(t)
			in := e.importInput(t, k, oaep, randBytes(t, 32))
			in.KeyId = aws.String("arn:aws:s3:::bucket")
			return in, k
		}, "InvalidArnException", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, keyID := tt.setup(t)
			before := e.describe(t, keyID)
			_, err := e.kms.ImportKeyMaterial(ctx, in)
			wantErr(t, err, tt.code, tt.msg)
			after := e.describe(t, keyID)
			if after.KeyState != before.KeyState || aws.ToString(after.CurrentKeyMaterialId) != aws.ToString(before.CurrentKeyMaterialId) ||
				!aws.ToTime(after.ValidTo).Equal(aws.ToTime(before.ValidTo)) {
				t.Errorf("refused import changed the key: %s %v %v -> %s %v %v",
					before.KeyState, aws.ToString(before.CurrentKeyMaterialId), aws.ToTime(before.ValidTo),
					after.KeyState, aws.ToString(after.CurrentKeyMaterialId), aws.ToTime(after.ValidTo))
			}
		})
	}
}

// TestMaterialExpiry moves the clock past ValidTo: the key must lose its
// material, and come back, old ciphertexts included, only with the same one.
func TestMaterialExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	keyID := e.externalKey(t)
	material := randBytes(t, 32)
	in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, material)
	in.ValidTo = aws.Time(e.now().Add(time.Hour))
	out, err := e.kms.ImportKeyMaterial(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	matID := aws.ToString(out.KeyMaterialId)
	enc, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("before expiry")})
	if err != nil {
		t.Fatal(err)
	}

	e.advance(t, time.Hour-time.Second)
	if st := e.describe(t, keyID).KeyState; st != types.KeyStateEnabled {
		t.Fatalf("one second before ValidTo: KeyState = %s, want Enabled", st)
	}

	e.advance(t, time.Second)
	md := e.describe(t, keyID)
	// CurrentKeyMaterialId stays after expiry (recorded behaviour).
	if md.KeyState != types.KeyStatePendingImport || md.Enabled || md.ValidTo != nil || aws.ToString(md.CurrentKeyMaterialId) != matID {
		t.Fatalf("at ValidTo: state %s enabled %v ValidTo %v material %v, want PendingImport, no ValidTo, CurrentKeyMaterialId kept",
			md.KeyState, md.Enabled, md.ValidTo, md.CurrentKeyMaterialId)
	}
	_, err = e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x")})
	wantErr(t, err, "KMSInvalidStateException", "pending import")
	_, err = e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantErr(t, err, "KMSInvalidStateException", "pending import")

	_, err = e.kms.ImportKeyMaterial(ctx, e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, randBytes(t, 32)))
	wantErr(t, err, "IncorrectKeyMaterialException")

	if got := e.importOK(t, keyID, material); got != matID {
		t.Errorf("re-imported KeyMaterialId = %s, want %s", got, matID)
	}
	dec, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "before expiry" {
		t.Fatalf("Decrypt of a pre-expiry ciphertext after re-import = %q, %v", dec.Plaintext, err)
	}
}

func TestDeleteImportedKeyMaterial(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	t.Run("ok delete, refuse other material, re-import the same, old ciphertext decrypts", func(t *testing.T) {
		keyID, material := e.importedKey(t)
		matID := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId)
		enc, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("old"), EncryptionContext: map[string]string{"a": "b"}})
		if err != nil {
			t.Fatal(err)
		}

		del, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(keyID)})
		if err != nil {
			t.Fatalf("DeleteImportedKeyMaterial: %v", err)
		}
		if aws.ToString(del.KeyId) != e.srv.keyARN(keyID) || aws.ToString(del.KeyMaterialId) != matID {
			t.Errorf("DeleteImportedKeyMaterial = {%s, %s}", aws.ToString(del.KeyId), aws.ToString(del.KeyMaterialId))
		}
		md := e.describe(t, keyID)
		if md.KeyState != types.KeyStatePendingImport || md.Enabled || md.ExpirationModel != "" {
			t.Fatalf("after delete: state %s enabled %v model %q", md.KeyState, md.Enabled, md.ExpirationModel)
		}
		_, err = e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "b"}})
		wantErr(t, err, "KMSInvalidStateException")
		_, err = e.kms.ImportKeyMaterial(ctx, e.importInput(t, keyID, types.AlgorithmSpecRsaAesKeyWrapSha256, randBytes(t, 32)))
		wantErr(t, err, "IncorrectKeyMaterialException")

		out, err := e.kms.ImportKeyMaterial(ctx, e.importInput(t, keyID, types.AlgorithmSpecRsaAesKeyWrapSha256, material))
		if err != nil {
			t.Fatalf("re-import of the same material: %v", err)
		}
		if aws.ToString(out.KeyMaterialId) != matID {
			t.Errorf("KeyMaterialId = %s after re-import, want %s", aws.ToString(out.KeyMaterialId), matID)
		}
		dec, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "b"}})
		if err != nil || string(dec.Plaintext) != "old" {
			t.Fatalf("Decrypt of an old ciphertext after re-import = %q, %v", dec.Plaintext, err)
		}
	})

	t.Run("ok key without material: nothing to delete, nothing changes (recorded behaviour)", func(t *testing.T) {
		k := e.externalKey(t)
		out, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(k)})
		if err != nil {
			t.Fatalf("DeleteImportedKeyMaterial on a PendingImport key: %v", err)
		}
		if out.KeyMaterialId != nil {
			t.Errorf("KeyMaterialId = %s for a key that never had material", aws.ToString(out.KeyMaterialId))
		}
		if st := e.describe(t, k).KeyState; st != types.KeyStatePendingImport {
			t.Errorf("KeyState = %s", st)
		}
	})
	t.Run("ok key pending deletion: material deleted, still PendingDeletion (crypto-shredding, recorded behaviour)", func(t *testing.T) {
		k, material := e.importedKey(t)
		if _, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(k)}); err != nil {
			t.Fatalf("DeleteImportedKeyMaterial on a PendingDeletion key: %v", err)
		}
		if st := e.describe(t, k).KeyState; st != types.KeyStatePendingDeletion {
			t.Errorf("KeyState = %s, want PendingDeletion", st)
		}
		if _, err := e.kms.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
		if st := e.describe(t, k).KeyState; st != types.KeyStatePendingImport {
			t.Errorf("after CancelKeyDeletion: KeyState = %s, want PendingImport: the material is gone", st)
		}
		e.importOK(t, k, material)
	})

	fails := []struct {
		name  string
		keyID func(t *testing.T) string
		matID *string
		code  string
	}{
		{"fail AWS_KMS key", e.awsKMSKey, nil, "UnsupportedOperationException"},
		{"fail alias name", e.aliasedKey, nil, "NotFoundException"},
		{"fail KeyMaterialId of other material", func(t *testing.T) string { k, _ := e.importedKey(t); return k }, aws.String(strings.Repeat("0", 64)), "NotFoundException"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(tt.keyID(t)), KeyMaterialId: tt.matID})
			wantErr(t, err, tt.code)
		})
	}
}
