package kmsemu

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// testSigningHash is the hash of each signing algorithm, written out here
// rather than taken from the emulator.
var testSigningHash = map[types.SigningAlgorithmSpec]crypto.Hash{
	types.SigningAlgorithmSpecRsassaPssSha256:      crypto.SHA256,
	types.SigningAlgorithmSpecRsassaPssSha384:      crypto.SHA384,
	types.SigningAlgorithmSpecRsassaPssSha512:      crypto.SHA512,
	types.SigningAlgorithmSpecRsassaPkcs1V15Sha256: crypto.SHA256,
	types.SigningAlgorithmSpecRsassaPkcs1V15Sha384: crypto.SHA384,
	types.SigningAlgorithmSpecRsassaPkcs1V15Sha512: crypto.SHA512,
	types.SigningAlgorithmSpecEcdsaSha256:          crypto.SHA256,
	types.SigningAlgorithmSpecEcdsaSha384:          crypto.SHA384,
	types.SigningAlgorithmSpecEcdsaSha512:          crypto.SHA512,
}

func isPSS(alg types.SigningAlgorithmSpec) bool {
	return alg == types.SigningAlgorithmSpecRsassaPssSha256 || alg == types.SigningAlgorithmSpecRsassaPssSha384 || alg == types.SigningAlgorithmSpecRsassaPssSha512
}

func digestOf(alg types.SigningAlgorithmSpec, msg []byte) []byte {
	h := testSigningHash[alg].New()
	h.Write(msg)
	return h.Sum(nil)
}

// goVerify checks a KMS signature outside KMS: with crypto/rsa and
// crypto/ecdsa for the public key GetPublicKey returned, or by hand for
// secp256k1. PSS signatures must have a salt as long as the digest.
func goVerify(pub any, alg types.SigningAlgorithmSpec, digest, sig []byte) error {
	h := testSigningHash[alg]
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if isPSS(alg) {
			return rsa.VerifyPSS(p, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.VerifyPKCS1v15(p, h, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case k1Point:
		if !k1Verify(p, digest, sig) {
			return errors.New("secp256k1 ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("no verifier for %T", pub)
}

// goSign signs outside KMS with the test's own private key.
func goSign(t *testing.T, priv any, alg types.SigningAlgorithmSpec, digest []byte) []byte {
	t.Helper()
	var sig []byte
	var err error
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		if isPSS(alg) {
			sig, err = rsa.SignPSS(rand.Reader, p, testSigningHash[alg], digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(nil, p, testSigningHash[alg], digest)
		}
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, p, digest)
	case *k1Key:
		sig = k1Sign(t, p, digest)
	default:
		t.Fatalf("no signer for %T", priv)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// parseK1SPKI reads a secp256k1 SubjectPublicKeyInfo by hand.
func parseK1SPKI(t *testing.T, der []byte) k1Point {
	t.Helper()
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &spki); err != nil || len(rest) > 0 {
		t.Fatalf("PublicKey is not one DER SubjectPublicKeyInfo: %v (%d bytes after)", err, len(rest))
	}
	var curve asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(spki.Algorithm.Parameters.FullBytes, &curve); err != nil {
		t.Fatalf("SubjectPublicKeyInfo parameters: %v", err)
	}
	b := spki.PublicKey.Bytes
	if !spki.Algorithm.Algorithm.Equal(testOIDECPublicKey) || !curve.Equal(testOIDSecp256k1) || len(b) != 65 || b[0] != 4 {
		t.Fatalf("SubjectPublicKeyInfo = %v %v %x, want id-ecPublicKey secp256k1 and an uncompressed point", spki.Algorithm.Algorithm, curve, b)
	}
	return k1Point{new(big.Int).SetBytes(b[1:33]), new(big.Int).SetBytes(b[33:])}
}

type signingCase struct {
	name     string
	spec     types.KeySpec
	wrapping types.AlgorithmSpec
	priv     any // *rsa.PrivateKey, *ecdsa.PrivateKey or *k1Key
	material []byte
	algs     []types.SigningAlgorithmSpec
}

func signingCases(t *testing.T) []signingCase {
	p256, p384, p521 := newECKey(t, elliptic.P256()), newECKey(t, elliptic.P384()), newECKey(t, elliptic.P521())
	k1a, k1b := newK1Key(t), newK1Key(t)
	r2048, r3072, r4096 := rsaTestKey(t, "2048-a"), rsaTestKey(t, "3072"), rsaTestKey(t, "4096")
	ecdsa256 := []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}
	return []signingCase{
		{"RSA_2048 through RSA_AES_KEY_WRAP_SHA_256", types.KeySpecRsa2048, types.AlgorithmSpecRsaAesKeyWrapSha256, r2048, pkcs8(t, r2048), wantRSASigning},
		{"RSA_3072 through RSA_AES_KEY_WRAP_SHA_1", types.KeySpecRsa3072, types.AlgorithmSpecRsaAesKeyWrapSha1, r3072, pkcs8(t, r3072), wantRSASigning},
		{"RSA_4096 through RSA_AES_KEY_WRAP_SHA_256", types.KeySpecRsa4096, types.AlgorithmSpecRsaAesKeyWrapSha256, r4096, pkcs8(t, r4096), wantRSASigning},
		{"ECC_NIST_P256 through RSAES_OAEP_SHA_256", types.KeySpecEccNistP256, types.AlgorithmSpecRsaesOaepSha256, p256, pkcs8(t, p256), ecdsa256},
		{"ECC_NIST_P384 through RSAES_OAEP_SHA_1", types.KeySpecEccNistP384, types.AlgorithmSpecRsaesOaepSha1, p384, pkcs8(t, p384), []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384}},
		{"ECC_NIST_P521 through RSA_AES_KEY_WRAP_SHA_256", types.KeySpecEccNistP521, types.AlgorithmSpecRsaAesKeyWrapSha256, p521, pkcs8(t, p521), []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha512}},
		{"ECC_SECG_P256K1 without the public key (as SoftHSM2 exports) through RSAES_OAEP_SHA_256", types.KeySpecEccSecgP256k1, types.AlgorithmSpecRsaesOaepSha256, k1a, k1PKCS8(t, k1a, false, nil), ecdsa256},
		{"ECC_SECG_P256K1 with the public key (as NSS exports) through RSA_AES_KEY_WRAP_SHA_1", types.KeySpecEccSecgP256k1, types.AlgorithmSpecRsaAesKeyWrapSha1, k1b, k1PKCS8(t, k1b, true, nil), ecdsa256},
	}
}

// TestSigningKeys imports real key material of every signing spec, made
// and wrapped in Go, then checks that KMS holds exactly that key:
// GetPublicKey is its public half, every signing algorithm's Sign (RAW and
// DIGEST) verifies in Go, and Verify accepts good signatures (KMS's and
// Go's) and refuses bad ones.
func TestSigningKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	msg := []byte("ceremony 2030-01-02: prove that KMS holds the HSM's key")
	for _, tc := range signingCases(t) {
		t.Run("ok "+tc.name, func(t *testing.T) {
			keyID := e.externalSpecKey(t, tc.spec, types.KeyUsageTypeSignVerify, tc.wrapping, tc.material)
			arn := e.srv.keyARN(keyID)
			md := e.describe(t, keyID)
			if md.KeyState != types.KeyStateEnabled || !slices.Equal(md.SigningAlgorithms, tc.algs) || md.EncryptionAlgorithms != nil {
				t.Errorf("after import: state %s SigningAlgorithms %v EncryptionAlgorithms %v", md.KeyState, md.SigningAlgorithms, md.EncryptionAlgorithms)
			}

			pk, err := e.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
			if err != nil {
				t.Fatalf("GetPublicKey: %v", err)
			}
			if aws.ToString(pk.KeyId) != arn || pk.KeySpec != tc.spec || string(pk.CustomerMasterKeySpec) != string(tc.spec) ||
				pk.KeyUsage != types.KeyUsageTypeSignVerify || !slices.Equal(pk.SigningAlgorithms, tc.algs) || pk.EncryptionAlgorithms != nil {
				t.Errorf("GetPublicKey = {%s %s %s %s %v %v}", aws.ToString(pk.KeyId), pk.KeySpec, pk.CustomerMasterKeySpec, pk.KeyUsage, pk.SigningAlgorithms, pk.EncryptionAlgorithms)
			}
			var pub any
			switch p := tc.priv.(type) {
			case *k1Key:
				pub = parseK1SPKI(t, pk.PublicKey)
				if got := pub.(k1Point); got.x.Cmp(p.pub.x) != 0 || got.y.Cmp(p.pub.y) != 0 {
					t.Fatal("GetPublicKey is not the imported key's public half")
				}
			case crypto.Signer:
				want, err := x509.MarshalPKIXPublicKey(p.Public())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(pk.PublicKey, want) {
					t.Fatal("GetPublicKey is not the imported key's public half")
				}
				if pub, err = x509.ParsePKIXPublicKey(pk.PublicKey); err != nil {
					t.Fatal(err)
				}
			}

			for _, alg := range tc.algs {
				digest := digestOf(alg, msg)
				for _, mt := range []types.MessageType{types.MessageTypeRaw, types.MessageTypeDigest} {
					in := msg
					if mt == types.MessageTypeDigest {
						in = digest
					}
					out, err := e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: in, MessageType: mt, SigningAlgorithm: alg})
					if err != nil {
						t.Fatalf("Sign %s %s: %v", alg, mt, err)
					}
					if aws.ToString(out.KeyId) != arn || out.SigningAlgorithm != alg {
						t.Errorf("Sign = {%s %s}", aws.ToString(out.KeyId), out.SigningAlgorithm)
					}
					if err := goVerify(pub, alg, digest, out.Signature); err != nil {
						t.Errorf("Sign %s %s: the signature does not verify in Go: %v", alg, mt, err)
					}
					// The other message type names the same message.
					other := types.MessageTypeDigest
					if mt == types.MessageTypeDigest {
						in, other = msg, types.MessageTypeRaw
					} else {
						in = digest
					}
					v, err := e.kms.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(keyID), Message: in, MessageType: other, Signature: out.Signature, SigningAlgorithm: alg})
					if err != nil || !v.SignatureValid || v.SigningAlgorithm != alg || aws.ToString(v.KeyId) != arn {
						t.Errorf("Verify %s %s of KMS's own signature = %+v, %v", alg, other, v, err)
					}
				}

				goSig := goSign(t, tc.priv, alg, digest)
				if v, err := e.kms.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(keyID), Message: msg, Signature: goSig, SigningAlgorithm: alg}); err != nil || !v.SignatureValid {
					t.Errorf("Verify %s of a signature made in Go = %v", alg, err)
				}
				tampered := append([]byte(nil), goSig...)
				tampered[len(tampered)-1] ^= 1
				_, err := e.kms.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(keyID), Message: msg, Signature: tampered, SigningAlgorithm: alg})
				wantErr(t, err, "KMSInvalidSignatureException")
				_, err = e.kms.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(keyID), Message: []byte("another message"), Signature: goSig, SigningAlgorithm: alg})
				wantErr(t, err, "KMSInvalidSignatureException")
			}
		})
	}
}

func hmacOf(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// TestHMACKeys imports HMAC material of every size through every wrapping
// algorithm: GenerateMac must equal Go's HMAC with that material.
func TestHMACKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tests := []struct {
		spec types.KeySpec
		n    int
		alg  types.MacAlgorithmSpec
		h    func() hash.Hash
		wrap types.AlgorithmSpec
	}{
		{types.KeySpecHmac224, 28, types.MacAlgorithmSpecHmacSha224, sha256.New224, types.AlgorithmSpecRsaesOaepSha1},
		{types.KeySpecHmac256, 32, types.MacAlgorithmSpecHmacSha256, sha256.New, types.AlgorithmSpecRsaesOaepSha256},
		{types.KeySpecHmac384, 48, types.MacAlgorithmSpecHmacSha384, sha512.New384, types.AlgorithmSpecRsaAesKeyWrapSha1},
		{types.KeySpecHmac512, 64, types.MacAlgorithmSpecHmacSha512, sha512.New, types.AlgorithmSpecRsaAesKeyWrapSha256},
	}
	msg := []byte("message the HSM MACed too")
	for _, tt := range tests {
		t.Run("ok "+string(tt.spec)+" through "+string(tt.wrap), func(t *testing.T) {
			material := randBytes(t, tt.n)
			keyID := e.externalSpecKey(t, tt.spec, types.KeyUsageTypeGenerateVerifyMac, tt.wrap, material)
			arn := e.srv.keyARN(keyID)
			want := hmacOf(tt.h, material, msg)
			out, err := e.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(keyID), MacAlgorithm: tt.alg, Message: msg})
			if err != nil {
				t.Fatalf("GenerateMac: %v", err)
			}
			if !bytes.Equal(out.Mac, want) || out.MacAlgorithm != tt.alg || aws.ToString(out.KeyId) != arn {
				t.Errorf("GenerateMac = {%x %s %s}, want Go's HMAC %x", out.Mac, out.MacAlgorithm, aws.ToString(out.KeyId), want)
			}
			v, err := e.kms.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(keyID), MacAlgorithm: tt.alg, Message: msg, Mac: want})
			if err != nil || !v.MacValid || v.MacAlgorithm != tt.alg || aws.ToString(v.KeyId) != arn {
				t.Errorf("VerifyMac of Go's HMAC = %+v, %v", v, err)
			}
		})
		t.Run("fail "+string(tt.spec)+" VerifyMac of a wrong MAC, another message, another algorithm", func(t *testing.T) {
			material := randBytes(t, tt.n)
			keyID := e.externalSpecKey(t, tt.spec, types.KeyUsageTypeGenerateVerifyMac, tt.wrap, material)
			good := hmacOf(tt.h, material, msg)
			bad := append([]byte(nil), good...)
			bad[0] ^= 1
			_, err := e.kms.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(keyID), MacAlgorithm: tt.alg, Message: msg, Mac: bad})
			wantErr(t, err, "KMSInvalidMacException")
			_, err = e.kms.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(keyID), MacAlgorithm: tt.alg, Message: []byte("other"), Mac: good})
			wantErr(t, err, "KMSInvalidMacException")
			_, err = e.kms.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(keyID), MacAlgorithm: tt.alg, Message: msg, Mac: good[:len(good)-1]})
			wantErr(t, err, "KMSInvalidMacException")
			wrong := types.MacAlgorithmSpecHmacSha256
			if tt.alg == wrong {
				wrong = types.MacAlgorithmSpecHmacSha512
			}
			_, err = e.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(keyID), MacAlgorithm: wrong, Message: msg})
			wantErr(t, err, "InvalidKeyUsageException", string(tt.alg))
		})
	}
}

// TestRSAEncryptionKeys imports an RSA key as ENCRYPT_DECRYPT: Encrypt must
// be RSAES-OAEP that decrypts in Go, and Decrypt must open Go's ciphertexts.
func TestRSAEncryptionKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	priv := rsaTestKey(t, "2048-a")
	keyID := e.externalSpecKey(t, types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt, types.AlgorithmSpecRsaAesKeyWrapSha256, pkcs8(t, priv))
	arn := e.srv.keyARN(keyID)
	hashes := map[types.EncryptionAlgorithmSpec]func() hash.Hash{
		types.EncryptionAlgorithmSpecRsaesOaepSha1:   sha1.New,
		types.EncryptionAlgorithmSpecRsaesOaepSha256: sha256.New,
	}

	t.Run("ok DescribeKey and GetPublicKey list the OAEP algorithms", func(t *testing.T) {
		md := e.describe(t, keyID)
		if !slices.Equal(md.EncryptionAlgorithms, wantRSAEncryption) || md.SigningAlgorithms != nil {
			t.Errorf("DescribeKey EncryptionAlgorithms %v SigningAlgorithms %v", md.EncryptionAlgorithms, md.SigningAlgorithms)
		}
		pk, err := e.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if !bytes.Equal(pk.PublicKey, want) || pk.KeyUsage != types.KeyUsageTypeEncryptDecrypt ||
			!slices.Equal(pk.EncryptionAlgorithms, wantRSAEncryption) || pk.SigningAlgorithms != nil {
			t.Errorf("GetPublicKey = {%s %v %v}, public key equal: %v", pk.KeyUsage, pk.EncryptionAlgorithms, pk.SigningAlgorithms, bytes.Equal(pk.PublicKey, want))
		}
	})
	for alg, h := range hashes {
		t.Run("ok "+string(alg)+" both ways", func(t *testing.T) {
			plain := []byte("data key for the ceremony")
			enc, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plain, EncryptionAlgorithm: alg})
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if aws.ToString(enc.KeyId) != arn || enc.EncryptionAlgorithm != alg || len(enc.CiphertextBlob) != 256 {
				t.Errorf("Encrypt = {%s %s %d bytes}", aws.ToString(enc.KeyId), enc.EncryptionAlgorithm, len(enc.CiphertextBlob))
			}
			got, err := rsa.DecryptOAEP(h(), nil, priv, enc.CiphertextBlob, nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Errorf("Go cannot decrypt KMS's ciphertext: %q, %v", got, err)
			}

			ct, err := rsa.EncryptOAEP(h(), rand.Reader, &priv.PublicKey, plain, nil)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := e.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyID), CiphertextBlob: ct, EncryptionAlgorithm: alg})
			if err != nil {
				t.Fatalf("Decrypt of Go's ciphertext: %v", err)
			}
			if !bytes.Equal(dec.Plaintext, plain) || aws.ToString(dec.KeyId) != arn || dec.EncryptionAlgorithm != alg || dec.KeyMaterialId != nil {
				t.Errorf("Decrypt = {%q %s %s %v}", dec.Plaintext, aws.ToString(dec.KeyId), dec.EncryptionAlgorithm, dec.KeyMaterialId)
			}
		})
	}
	t.Run("ok the longest plaintext RSAES_OAEP_SHA_256 takes under RSA_2048 (190 bytes)", func(t *testing.T) {
		if _, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: make([]byte, 190), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256}); err != nil {
			t.Fatal(err)
		}
	})

	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fails := []struct {
		name string
		run  func() error
		code string
		msg  string
	}{
		{"fail Encrypt without an EncryptionAlgorithm (SYMMETRIC_DEFAULT)", func() error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x")})
			return err
		}, "InvalidKeyUsageException", "RSAES_OAEP_SHA_256"},
		{"fail Encrypt with an EncryptionContext", func() error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha1, EncryptionContext: map[string]string{"a": "b"}})
			return err
		}, "ValidationException", "EncryptionContext"},
		{"fail Encrypt of 191 bytes with RSAES_OAEP_SHA_256", func() error {
			_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: make([]byte, 191), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}, "ValidationException", "190"},
		{"fail Decrypt with the other OAEP hash", func() error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyID), CiphertextBlob: ct, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha1})
			return err
		}, "InvalidCiphertextException", ""},
		{"fail Decrypt of a tampered ciphertext", func() error {
			bad := append([]byte(nil), ct...)
			bad[10] ^= 1
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyID), CiphertextBlob: bad, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}, "InvalidCiphertextException", ""},
		{"fail Decrypt without KeyId (an RSA ciphertext does not name its key)", func() error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}, "InvalidCiphertextException", ""},
		{"fail Decrypt without an EncryptionAlgorithm", func() error {
			_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyID), CiphertextBlob: ct})
			return err
		}, "InvalidKeyUsageException", ""},
		{"fail Sign with an ENCRYPT_DECRYPT key", func() error {
			_, err := e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: []byte("x"), SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
			return err
		}, "InvalidKeyUsageException", "ENCRYPT_DECRYPT"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.run(), tt.code, tt.msg)
		})
	}
}

// TestGeneratedKeyPairsAndHMAC uses AWS_KMS keys of the new specs, whose
// material the emulator generates: what they sign must verify under their
// GetPublicKey, and their MACs must verify.
func TestGeneratedKeyPairsAndHMAC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	msg := []byte("generated in the emulator")
	for _, tt := range []struct {
		spec types.KeySpec
		alg  types.SigningAlgorithmSpec
	}{
		{types.KeySpecRsa2048, types.SigningAlgorithmSpecRsassaPssSha384},
		{types.KeySpecEccNistP256, types.SigningAlgorithmSpecEcdsaSha256},
		{types.KeySpecEccNistP384, types.SigningAlgorithmSpecEcdsaSha384},
		{types.KeySpecEccNistP521, types.SigningAlgorithmSpecEcdsaSha512},
		{types.KeySpecEccSecgP256k1, types.SigningAlgorithmSpecEcdsaSha256},
	} {
		t.Run("ok AWS_KMS "+string(tt.spec), func(t *testing.T) {
			keyID := e.createSpecKey(t, types.OriginTypeAwsKms, tt.spec, types.KeyUsageTypeSignVerify)
			// CurrentKeyMaterialId: symmetric encryption keys only (recorded behaviour).
			if md := e.describe(t, keyID); md.KeyState != types.KeyStateEnabled || md.CurrentKeyMaterialId != nil {
				t.Errorf("KeyState %s CurrentKeyMaterialId %v", md.KeyState, aws.ToString(md.CurrentKeyMaterialId))
			}
			pk, err := e.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
			if err != nil {
				t.Fatal(err)
			}
			var pub any
			if tt.spec == types.KeySpecEccSecgP256k1 {
				pub = parseK1SPKI(t, pk.PublicKey)
			} else if pub, err = x509.ParsePKIXPublicKey(pk.PublicKey); err != nil {
				t.Fatal(err)
			}
			out, err := e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: msg, SigningAlgorithm: tt.alg})
			if err != nil {
				t.Fatal(err)
			}
			if err := goVerify(pub, tt.alg, digestOf(tt.alg, msg), out.Signature); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("ok AWS_KMS RSA_2048 ENCRYPT_DECRYPT", func(t *testing.T) {
		keyID := e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt)
		pk, err := e.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(pk.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := e.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyID), CiphertextBlob: ct, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		if err != nil || !bytes.Equal(dec.Plaintext, msg) {
			t.Errorf("Decrypt = %q, %v", dec.Plaintext, err)
		}
	})
	t.Run("ok AWS_KMS HMAC_384", func(t *testing.T) {
		keyID := e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecHmac384, types.KeyUsageTypeGenerateVerifyMac)
		out, err := e.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(keyID), MacAlgorithm: types.MacAlgorithmSpecHmacSha384, Message: msg})
		if err != nil || len(out.Mac) != 48 {
			t.Fatalf("GenerateMac = %x, %v", out.Mac, err)
		}
		if _, err := e.kms.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(keyID), MacAlgorithm: types.MacAlgorithmSpecHmacSha384, Message: msg, Mac: out.Mac}); err != nil {
			t.Errorf("VerifyMac: %v", err)
		}
	})
}
