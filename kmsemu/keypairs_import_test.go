package kmsemu

import (
	"bytes"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const (
	oaep256 = types.AlgorithmSpecRsaesOaepSha256
	kwp256  = types.AlgorithmSpecRsaAesKeyWrapSha256
	kwp1    = types.AlgorithmSpecRsaAesKeyWrapSha1
	signUse = types.KeyUsageTypeSignVerify
)

// TestImportKeyPairMaterialStrict checks that RSA and EC material must be
// exactly one PKCS#8 of the spec's key type, curve and size, and HMAC
// material exactly the spec's length; each refusal must leave the key as it
// was.
func TestImportKeyPairMaterialStrict(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	p256, p384 := newECKey(t, elliptic.P256()), newECKey(t, elliptic.P384())
	k1 := newK1Key(t)
	r2048, r3072 := rsaTestKey(t, "2048-a"), rsaTestKey(t, "3072")
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A secp256k1 PKCS#8 that carries another key's public key.
	other := newK1Key(t)
	mismatched := k1PKCS8(t, &k1Key{d: k1.d, pub: other.pub}, true, nil)
	// The scalar n itself is out of range.
	overflow := k1PKCS8(t, k1, false, k1N.FillBytes(make([]byte, 32)))
	p256DER := pkcs8(t, p256)

	tests := []struct {
		name     string
		spec     types.KeySpec
		usage    types.KeyUsageType
		wrap     types.AlgorithmSpec
		material []byte
		msgs     []string
	}{
		{"fail RSA_2048 PKCS#8 followed by a non-zero byte", types.KeySpecRsa2048, signUse, kwp256, appendBytes(pkcs8(t, r2048), []byte{1}), []string{"1 byte after its", "exactly one DER"}},
		{"fail RSA_2048 PKCS#8 followed by 3 zero bytes (SoftHSM2 padding, strict by default)", types.KeySpecRsa2048, signUse, kwp256, appendBytes(pkcs8(t, r2048), zeros(3)), []string{"3 bytes after", "--lenient-pkcs8-padding"}},
		{"fail ECC_NIST_P256 PKCS#8 followed by 1 zero byte", types.KeySpecEccNistP256, signUse, oaep256, appendBytes(p256DER, zeros(1)), []string{"1 byte after"}},
		{"fail ECC_SECG_P256K1 PKCS#8 followed by 8 zero bytes", types.KeySpecEccSecgP256k1, signUse, kwp1, appendBytes(k1PKCS8(t, k1, false, nil), zeros(8)), []string{"8 bytes after"}},
		{"fail RSA-3072 key into RSA_2048", types.KeySpecRsa2048, signUse, kwp256, pkcs8(t, r3072), []string{"RSA 3072-bit", "RSA_2048", "2048-bit"}},
		{"fail RSA-2048 key into RSA_3072", types.KeySpecRsa3072, types.KeyUsageTypeEncryptDecrypt, kwp1, pkcs8(t, r2048), []string{"RSA 2048-bit", "3072-bit"}},
		{"fail EC key into RSA_2048", types.KeySpecRsa2048, signUse, kwp256, p256DER, []string{"EC P-256", "RSA private key"}},
		{"fail RSA key into ECC_NIST_P256", types.KeySpecEccNistP256, signUse, kwp256, pkcs8(t, r2048), []string{"RSA private key", "P-256"}},
		{"fail P-384 key into ECC_NIST_P256", types.KeySpecEccNistP256, signUse, oaep256, pkcs8(t, p384), []string{"P-384", "ECC_NIST_P256", "P-256"}},
		{"fail P-256 key into ECC_NIST_P384", types.KeySpecEccNistP384, signUse, oaep256, p256DER, []string{"EC P-256", "P-384"}},
		{"fail secp256k1 key into ECC_NIST_P256", types.KeySpecEccNistP256, signUse, oaep256, k1PKCS8(t, k1, true, nil), []string{"EC secp256k1", "P-256"}},
		{"fail P-256 key into ECC_SECG_P256K1", types.KeySpecEccSecgP256k1, signUse, oaep256, p256DER, []string{"EC P-256", "secp256k1"}},
		{"fail Ed25519 key into ECC_NIST_P256", types.KeySpecEccNistP256, signUse, oaep256, pkcs8(t, ed), []string{"Ed25519"}},
		{"fail raw scalar instead of PKCS#8", types.KeySpecEccNistP256, signUse, oaep256, randBytes(t, 32), []string{"PKCS#8"}},
		{"fail secp256k1 PKCS#8 carrying another key's public key", types.KeySpecEccSecgP256k1, signUse, oaep256, mismatched, []string{"public key"}},
		{"fail secp256k1 scalar equal to the group order", types.KeySpecEccSecgP256k1, signUse, oaep256, overflow, []string{"[1, n-1]"}},
		{"fail HMAC_256 material of 31 bytes", types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac, oaep256, randBytes(t, 31), []string{"32 bytes, got 31"}},
		{"fail HMAC_224 material of 32 bytes", types.KeySpecHmac224, types.KeyUsageTypeGenerateVerifyMac, kwp1, randBytes(t, 32), []string{"28 bytes, got 32"}},
		{"fail HMAC_512 material of 65 bytes", types.KeySpecHmac512, types.KeyUsageTypeGenerateVerifyMac, kwp256, randBytes(t, 65), []string{"64 bytes, got 65"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyID := e.createSpecKey(t, types.OriginTypeExternal, tt.spec, tt.usage)
			_, err := e.importSpec(t, keyID, tt.wrap, tt.material)
			wantErr(t, err, "IncorrectKeyMaterialException", tt.msgs...)
			if md := e.describe(t, keyID); md.KeyState != types.KeyStatePendingImport || md.CurrentKeyMaterialId != nil {
				t.Errorf("refused import left the key %s with material %v", md.KeyState, md.CurrentKeyMaterialId)
			}
		})
	}

	t.Run("fail GetParametersForImport with RSAES_OAEP for an RSA key (RSA_AES_KEY_WRAP only)", func(t *testing.T) {
		for _, alg := range []types.AlgorithmSpec{types.AlgorithmSpecRsaesOaepSha1, oaep256} {
			keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecRsa4096, signUse)
			_, err := e.kms.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(keyID), WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpecRsa4096})
			wantErr(t, err, "ValidationException", "RSA_AES_KEY_WRAP")
		}
	})
	t.Run("fail P-521 PKCS#8 is too large for RSAES_OAEP under RSA_2048: the blob cannot decrypt", func(t *testing.T) {
		keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecEccNistP521, signUse)
		p := e.params(t, keyID, oaep256, types.WrappingKeySpecRsa2048)
		pubAny, _ := x509.ParsePKIXPublicKey(p.PublicKey)
		if _, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pubAny.(*rsa.PublicKey), pkcs8(t, newECKey(t, elliptic.P521())), nil); !errors.Is(err, rsa.ErrMessageTooLong) {
			t.Fatalf("OAEP of a P-521 PKCS#8 under RSA-2048 = %v, want ErrMessageTooLong", err)
		}
		_, err := e.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: p.ImportToken, EncryptedKeyMaterial: randBytes(t, 256),
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		})
		wantErr(t, err, "InvalidCiphertextException")
	})
	t.Run("ok P-521 through RSAES_OAEP_SHA_256 under RSA_3072", func(t *testing.T) {
		keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecEccNistP521, signUse)
		in := e.importSpecInput(t, keyID, oaep256, types.WrappingKeySpecRsa3072, pkcs8(t, newECKey(t, elliptic.P521())))
		if _, err := e.kms.ImportKeyMaterial(ctx, in); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail NEW_KEY_MATERIAL on an HMAC key that has material: ImportType is for symmetric keys only", func(t *testing.T) {
		keyID := e.externalSpecKey(t, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac, oaep256, randBytes(t, 32))
		in := e.importSpecInput(t, keyID, oaep256, types.WrappingKeySpecRsa2048, randBytes(t, 32))
		in.ImportType = types.ImportTypeNewKeyMaterial
		_, err := e.kms.ImportKeyMaterial(ctx, in)
		wantErr(t, err, "ValidationException", "only to symmetric encryption keys")
	})
}

// TestSameMaterialRuleEverySpec deletes (or lets expire) the material of
// keys of each kind: only the same key may come back, compared as a key, so
// another PKCS#8 encoding of it is the same material with the same
// KeyMaterialId.
func TestSameMaterialRuleEverySpec(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	k1a, k1b := newK1Key(t), newK1Key(t)
	p256a, p256b := newECKey(t, elliptic.P256()), newECKey(t, elliptic.P256())
	tests := []struct {
		name         string
		spec         types.KeySpec
		usage        types.KeyUsageType
		wrap         types.AlgorithmSpec
		first, again []byte // again: the same key, maybe encoded otherwise
		other        []byte
	}{
		{"HMAC_384", types.KeySpecHmac384, types.KeyUsageTypeGenerateVerifyMac, oaep256, nil, nil, nil},
		{"RSA_2048", types.KeySpecRsa2048, signUse, kwp256, pkcs8(t, rsaTestKey(t, "2048-a")), pkcs8(t, rsaTestKey(t, "2048-a")), pkcs8(t, rsaTestKey(t, "2048-b"))},
		{"ECC_NIST_P256 with and without the public key inside", types.KeySpecEccNistP256, signUse, oaep256, pkcs8(t, p256a), p256NoPublic(t, p256a), pkcs8(t, p256b)},
		{"ECC_SECG_P256K1 with and without the public key inside", types.KeySpecEccSecgP256k1, signUse, kwp1, k1PKCS8(t, k1a, true, nil), k1PKCS8(t, k1a, false, nil), k1PKCS8(t, k1b, true, nil)},
	}
	for _, tt := range tests {
		if tt.first == nil {
			tt.first = randBytes(t, 48)
			tt.again, tt.other = tt.first, randBytes(t, 48)
		}
		t.Run("ok "+tt.name+": only the same key comes back after DeleteImportedKeyMaterial", func(t *testing.T) {
			keyID := e.createSpecKey(t, types.OriginTypeExternal, tt.spec, tt.usage)
			id := e.importSpecOK(t, keyID, tt.wrap, tt.first)
			_, err := e.importSpec(t, keyID, tt.wrap, tt.other)
			wantErr(t, err, "IncorrectKeyMaterialException", "previously imported")
			e.deleteMaterial(t, keyID)
			_, err = e.importSpec(t, keyID, tt.wrap, tt.other)
			wantErr(t, err, "IncorrectKeyMaterialException", "previously imported")
			if got := e.importSpecOK(t, keyID, tt.wrap, tt.again); got != id {
				t.Errorf("KeyMaterialId after re-import = %s, want %s", got, id)
			}
		})
	}
	t.Run("ok ECC_NIST_P256 after expiry: other material refused, the same accepted and usable", func(t *testing.T) {
		keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecEccNistP256, signUse)
		in := e.importSpecInput(t, keyID, oaep256, types.WrappingKeySpecRsa2048, pkcs8(t, p256a))
		in.ExpirationModel, in.ValidTo = types.ExpirationModelTypeKeyMaterialExpires, aws.Time(e.now().Add(time.Hour))
		if _, err := e.kms.ImportKeyMaterial(ctx, in); err != nil {
			t.Fatal(err)
		}
		e.advance(t, time.Hour)
		_, err := e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: []byte("x"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
		wantErr(t, err, "KMSInvalidStateException", "pending import")
		_, err = e.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
		wantErr(t, err, "KMSInvalidStateException", "pending import")
		_, err = e.importSpec(t, keyID, oaep256, pkcs8(t, p256b))
		wantErr(t, err, "IncorrectKeyMaterialException", "previously imported")
		e.importSpecOK(t, keyID, oaep256, p256NoPublic(t, p256a))
		if _, err := e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: []byte("x"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256}); err != nil {
			t.Errorf("Sign after re-import: %v", err)
		}
	})
}

// p256NoPublic is a P-256 PKCS#8 without the public key in its
// ECPrivateKey, as SoftHSM2 exports EC keys.
func p256NoPublic(t *testing.T, k interface{ Bytes() ([]byte, error) }) []byte {
	t.Helper()
	scalar, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	inner, err := asn1.Marshal(testECPrivateKey{Version: 1, PrivateKey: scalar})
	if err != nil {
		t.Fatal(err)
	}
	curve, _ := asn1.Marshal(oidP256)
	der, err := asn1.Marshal(testPKCS8{Algo: pkix.AlgorithmIdentifier{Algorithm: testOIDECPublicKey, Parameters: asn1.RawValue{FullBytes: curve}}, PrivateKey: inner})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// logCapture keeps the server's log lines for a test to read.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), s)
}

// TestLenientPKCS8Padding turns Options.LenientPKCS8Padding on: exactly 1
// to 7 zero bytes after the DER pass, each time with a warning in the log,
// and nothing else does.
func TestLenientPKCS8Padding(t *testing.T) {
	t.Parallel()
	logs := &logCapture{}
	e := newEnv(t, Options{LenientPKCS8Padding: true, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	const warning = `msg="lenient PKCS#8 padding: ignored`
	p256 := newECKey(t, elliptic.P256())
	der := pkcs8(t, p256)

	for n := 1; n <= maxLenientPadding; n++ {
		t.Run(fmt.Sprintf("ok ECC_NIST_P256 PKCS#8 followed by %d zero bytes, logged", n), func(t *testing.T) {
			before := logs.count(warning)
			keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecEccNistP256, signUse)
			e.importSpecOK(t, keyID, kwp1, appendBytes(der, zeros(n)))
			if got := logs.count(warning) - before; got != 1 {
				t.Errorf("%d warnings logged, want 1", got)
			}
			pk, err := e.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey); !bytes.Equal(pk.PublicKey, want) {
				t.Error("the padded import holds another key")
			}
		})
	}
	t.Run("ok RSA_2048 padded the way SoftHSM2 2.6.1 pads (to a multiple of 8), then the exact DER is the same material", func(t *testing.T) {
		rder := pkcs8(t, rsaTestKey(t, "2048-b"))
		pad := (8 - len(rder)%8) % 8
		if pad == 0 {
			pad = 8 - 1 // still exercise the path with a key whose DER is 8-aligned
		}
		keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecRsa2048, signUse)
		id := e.importSpecOK(t, keyID, kwp256, appendBytes(rder, zeros(pad)))
		out, err := e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
		if err != nil {
			t.Fatal(err)
		}
		if err := goVerify(&rsaTestKey(t, "2048-b").PublicKey, types.SigningAlgorithmSpecRsassaPssSha256, digestOf(types.SigningAlgorithmSpecRsassaPssSha256, []byte("m")), out.Signature); err != nil {
			t.Error(err)
		}
		e.deleteMaterial(t, keyID)
		if got := e.importSpecOK(t, keyID, kwp256, rder); got != id {
			t.Errorf("KeyMaterialId of the unpadded re-import = %s, want %s", got, id)
		}
	})
	for _, tt := range []struct {
		name string
		tail []byte
		msg  string
	}{
		{"fail 8 zero bytes", zeros(8), "at most 7 zero bytes"},
		{"fail 1 non-zero byte", []byte{1}, "at most 7 zero bytes"},
		{"fail zero bytes then a non-zero byte", []byte{0, 0, 0x80}, "3 bytes after"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := logs.count(warning)
			keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecEccNistP256, signUse)
			_, err := e.importSpec(t, keyID, kwp256, appendBytes(der, tt.tail))
			wantErr(t, err, "IncorrectKeyMaterialException", tt.msg)
			if got := logs.count(warning) - before; got != 0 {
				t.Errorf("a refused import logged %d lenient-padding warnings", got)
			}
		})
	}
	t.Run("ok HMAC material is raw: the switch does not let a longer key through", func(t *testing.T) {
		keyID := e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac)
		_, err := e.importSpec(t, keyID, kwp256, appendBytes(randBytes(t, 32), zeros(1)))
		wantErr(t, err, "IncorrectKeyMaterialException", "32 bytes, got 33")
	})
}

// TestKeyPairAndHMACStates checks the key-state and key-usage rules of the
// new operations.
func TestKeyPairAndHMACStates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	p256 := newECKey(t, elliptic.P256())
	signer := func(t *testing.T) string {
		return e.externalSpecKey(t, types.KeySpecEccNistP256, signUse, oaep256, pkcs8(t, p256))
	}
	hmacKey := func(t *testing.T) string {
		return e.externalSpecKey(t, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac, oaep256, randBytes(t, 32))
	}
	sign := func(keyID string, alg types.SigningAlgorithmSpec, mt types.MessageType, msg []byte) error {
		_, err := e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: msg, MessageType: mt, SigningAlgorithm: alg})
		return err
	}
	mac := func(keyID string) error {
		_, err := e.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(keyID), MacAlgorithm: types.MacAlgorithmSpecHmacSha256, Message: []byte("x")})
		return err
	}
	pub := func(keyID string) error {
		_, err := e.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
		return err
	}
	disable := func(t *testing.T, keyID string) string {
		if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		return keyID
	}
	schedule := func(t *testing.T, keyID string) string {
		if _, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		return keyID
	}
	es256 := types.SigningAlgorithmSpecEcdsaSha256
	tests := []struct {
		name string
		run  func(t *testing.T) error
		code string
		msg  string
	}{
		{"ok Sign by alias", func(t *testing.T) error {
			k := signer(t)
			name := "alias/signer-" + strings.ToLower(k[:8])
			if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(k)}); err != nil {
				t.Fatal(err)
			}
			return sign(name, es256, "", []byte("x"))
		}, "", ""},
		{"fail Sign with a key pending import", func(t *testing.T) error {
			return sign(e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecEccNistP256, signUse), es256, "", []byte("x"))
		}, "KMSInvalidStateException", "pending import"},
		{"fail Sign with a disabled key", func(t *testing.T) error { return sign(disable(t, signer(t)), es256, "", []byte("x")) }, "DisabledException", ""},
		{"fail Sign with a key pending deletion", func(t *testing.T) error { return sign(schedule(t, signer(t)), es256, "", []byte("x")) }, "KMSInvalidStateException", "pending deletion"},
		{"fail Sign after DeleteImportedKeyMaterial", func(t *testing.T) error {
			k := signer(t)
			e.deleteMaterial(t, k)
			return sign(k, es256, "", []byte("x"))
		}, "KMSInvalidStateException", "pending import"},
		{"fail Sign with ECDSA_SHA_384 on a P-256 key", func(t *testing.T) error {
			return sign(signer(t), types.SigningAlgorithmSpecEcdsaSha384, "", []byte("x"))
		}, "InvalidKeyUsageException", "ECDSA_SHA_256"},
		{"fail Sign with RSASSA_PSS on an EC key", func(t *testing.T) error {
			return sign(signer(t), types.SigningAlgorithmSpecRsassaPssSha256, "", []byte("x"))
		}, "InvalidKeyUsageException", ""},
		{"fail Sign with ECDSA on an RSA key", func(t *testing.T) error {
			return sign(e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecRsa2048, signUse), es256, "", []byte("x"))
		}, "InvalidKeyUsageException", ""},
		{"fail Sign with an HMAC key", func(t *testing.T) error { return sign(hmacKey(t), es256, "", []byte("x")) }, "InvalidKeyUsageException", "GENERATE_VERIFY_MAC"},
		{"fail Sign with a symmetric key", func(t *testing.T) error { return sign(e.awsKMSKey(t), es256, "", []byte("x")) }, "InvalidKeyUsageException", ""},
		{"fail Sign a DIGEST of the wrong length", func(t *testing.T) error {
			return sign(signer(t), es256, types.MessageTypeDigest, make([]byte, 31))
		}, "ValidationException", "Digest is invalid length"},
		{"fail Sign with MessageType EXTERNAL_MU", func(t *testing.T) error {
			return sign(signer(t), es256, types.MessageTypeExternalMu, make([]byte, 64))
		}, "ValidationException", "ML_DSA"},
		{"fail Sign a message of 4097 bytes", func(t *testing.T) error { return sign(signer(t), es256, "", make([]byte, 4097)) }, "ValidationException", "message"},
		{"fail Sign without SigningAlgorithm (sent without the SDK, which checks it)", func(t *testing.T) error {
			status, code, body := e.raw(t, "TrentService.Sign", mustJSON(t, map[string]any{"KeyId": signer(t), "Message": []byte("x")}))
			if status != 400 || code != "ValidationException" || !strings.Contains(string(body), "signingAlgorithm") {
				return fmt.Errorf("HTTP %d %s %s", status, code, body)
			}
			return nil
		}, "", ""},
		{"fail Verify with a disabled key", func(t *testing.T) error {
			_, err := e.kms.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(disable(t, signer(t))), Message: []byte("x"), Signature: []byte{1}, SigningAlgorithm: es256})
			return err
		}, "DisabledException", ""},
		{"fail Verify of bytes that are no DER signature", func(t *testing.T) error {
			_, err := e.kms.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(signer(t)), Message: []byte("x"), Signature: []byte("not a signature"), SigningAlgorithm: es256})
			return err
		}, "KMSInvalidSignatureException", ""},
		{"fail GetPublicKey of a key pending import", func(t *testing.T) error {
			return pub(e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecRsa3072, signUse))
		}, "KMSInvalidStateException", "pending import"},
		{"fail GetPublicKey of a disabled key", func(t *testing.T) error { return pub(disable(t, signer(t))) }, "DisabledException", ""},
		{"fail GetPublicKey of a symmetric key", func(t *testing.T) error { return pub(e.awsKMSKey(t)) }, "UnsupportedOperationException", "no public key"},
		{"fail GetPublicKey of an HMAC key", func(t *testing.T) error { return pub(hmacKey(t)) }, "UnsupportedOperationException", "HMAC_256"},
		{"fail GetPublicKey of an unknown key", func(t *testing.T) error { return pub(unknownKey(t)) }, "NotFoundException", ""},
		{"fail GenerateMac with a key pending import", func(t *testing.T) error {
			return mac(e.createSpecKey(t, types.OriginTypeExternal, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac))
		}, "KMSInvalidStateException", "pending import"},
		{"fail GenerateMac with a disabled key", func(t *testing.T) error { return mac(disable(t, hmacKey(t))) }, "DisabledException", ""},
		{"fail GenerateMac with a key pending deletion", func(t *testing.T) error { return mac(schedule(t, hmacKey(t))) }, "KMSInvalidStateException", "pending deletion"},
		{"fail GenerateMac with a symmetric key", func(t *testing.T) error { return mac(e.awsKMSKey(t)) }, "InvalidKeyUsageException", "ENCRYPT_DECRYPT"},
		{"fail GenerateMac with a signing key", func(t *testing.T) error { return mac(signer(t)) }, "InvalidKeyUsageException", "SIGN_VERIFY"},
		{"fail GenerateMac of an empty message", func(t *testing.T) error {
			_, err := e.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(hmacKey(t)), MacAlgorithm: types.MacAlgorithmSpecHmacSha256, Message: []byte{}})
			return err
		}, "ValidationException", "message"},
		{"fail Encrypt with an HMAC key", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(hmacKey(t)), Plaintext: []byte("x")})
			return err
		}, "InvalidKeyUsageException", "GENERATE_VERIFY_MAC"},
		{"fail Encrypt with a signing key", func(t *testing.T) error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(signer(t)), Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}, "InvalidKeyUsageException", "SIGN_VERIFY"},
		{"fail Decrypt naming an HMAC key", func(t *testing.T) error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(hmacKey(t)), CiphertextBlob: []byte("x")})
			return err
		}, "InvalidKeyUsageException", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(t)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.code, tt.msg)
		})
	}
}
