package gcp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"hash/crc32"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// verify proves the version holds the HSM's material where Cloud KMS can
// show it: GetPublicKey equals the HSM's public key (asymmetric), MacSign
// equals the HSM's own HMAC (MAC); for symmetric keys Cloud KMS can only
// round-trip Encrypt/Decrypt. Every answer's CRC32C is checked.
func (r *run) verify(ctx context.Context) (string, error) {
	api, v := r.im.KMS, r.version
	msg := make([]byte, 32)
	if _, err := rand.Read(msg); err != nil {
		return "", err
	}
	p := &r.res.Proof
	switch r.alg.Purpose {
	case kmspb.CryptoKey_ENCRYPT_DECRYPT:
		enc, err := api.Encrypt(ctx, &kmspb.EncryptRequest{Name: v.Name, Plaintext: msg, PlaintextCrc32C: crc(msg)})
		if err != nil {
			return "", explain("Encrypt", err)
		}
		if !enc.VerifiedPlaintextCrc32C || enc.GetCiphertextCrc32C().GetValue() != crc(enc.Ciphertext).GetValue() {
			return "", fmt.Errorf("%w: Cloud KMS Encrypt's integrity checksums do not hold", kmsimport.ErrVerification)
		}
		dec, err := api.Decrypt(ctx, &kmspb.DecryptRequest{Name: r.req.key(), Ciphertext: enc.Ciphertext, CiphertextCrc32C: crc(enc.Ciphertext)})
		if err != nil {
			return "", explain("Decrypt", err)
		}
		if !bytes.Equal(dec.Plaintext, msg) {
			return "", fmt.Errorf("%w: version %s decrypted its own ciphertext to different bytes", kmsimport.ErrVerification, v.Name)
		}
		p.EncryptDecrypt = true
		p.Summary = fmt.Sprintf("version %s round-trips Encrypt/Decrypt; Cloud KMS cannot confirm symmetric material (HSM key check value %s)", v.Name, orNone(r.res.HSM.KeyCheckValue))
	case kmspb.CryptoKey_MAC:
		want, err := r.im.Token.HMAC(r.key, r.alg.MacHash, msg)
		if err != nil {
			return "", err
		}
		out, err := api.MacSign(ctx, &kmspb.MacSignRequest{Name: v.Name, Data: msg, DataCrc32C: crc(msg)})
		if err != nil {
			return "", explain("MacSign", err)
		}
		if !hmac.Equal(out.Mac, want) {
			return "", fmt.Errorf("%w: Cloud KMS MacSign of a random message is %x, the HSM's HMAC is %x: the version does not hold the HSM key's material", kmsimport.ErrVerification, out.Mac, want)
		}
		p.MaterialConfirmed, p.Mac = true, hex.EncodeToString(out.Mac)
		p.Summary = fmt.Sprintf("Cloud KMS MacSign equals the HSM's own %s of a random message", r.alg.Name)
	default:
		want, err := r.im.Token.PublicKeyDER(r.key)
		if err != nil {
			return "", err
		}
		pk, err := api.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v.Name})
		if err != nil {
			return "", explain("GetPublicKey", err)
		}
		if pk.GetPemCrc32C() != nil && pk.GetPemCrc32C().GetValue() != crc([]byte(pk.Pem)).GetValue() {
			return "", fmt.Errorf("%w: Cloud KMS GetPublicKey's checksum does not match its PEM", kmsimport.ErrVerification)
		}
		blk, _ := pem.Decode([]byte(pk.Pem))
		if blk == nil {
			return "", fmt.Errorf("%w: Cloud KMS GetPublicKey returned no PEM", kmsimport.ErrVerification)
		}
		if !sameSPKI(blk.Bytes, want) {
			return "", fmt.Errorf("%w: Cloud KMS's public key of %s is not the HSM key's: the version does not hold the HSM's material", kmsimport.ErrVerification, v.Name)
		}
		sum := sha256.Sum256(want)
		p.MaterialConfirmed, p.PublicKeySHA256 = true, hex.EncodeToString(sum[:])
		p.Summary = fmt.Sprintf("Cloud KMS GetPublicKey equals the HSM's public key, SHA-256 %s", p.PublicKeySHA256)
	}
	return p.Summary, nil
}

// sameSPKI compares two SubjectPublicKeyInfo encodings by their keys, so
// an equivalent encoding of the same key matches.
func sameSPKI(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ka, errA := x509.ParsePKIXPublicKey(a)
	kb, errB := x509.ParsePKIXPublicKey(b)
	if errA != nil || errB != nil {
		return false
	}
	type equaler interface{ Equal(any) bool }
	e, ok := ka.(equaler)
	return ok && e.Equal(kb)
}

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

func orNone(s string) string {
	if s == "" {
		return "not available"
	}
	return s
}
