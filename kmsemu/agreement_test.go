package kmsemu

import (
	"bytes"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/x509"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestKeyAgreementKeyImportsAndDerives: an EXTERNAL KEY_AGREEMENT key on
// each NIST curve takes imported material, lists ECDH, and DeriveSharedSecret
// gives the ECDH secret the peer computes with the imported key's public key.
func TestKeyAgreementKeyImportsAndDerives(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, tt := range []struct {
		spec  types.KeySpec
		curve elliptic.Curve
		ecdh  ecdh.Curve
	}{
		{types.KeySpecEccNistP256, elliptic.P256(), ecdh.P256()},
		{types.KeySpecEccNistP384, elliptic.P384(), ecdh.P384()},
		{types.KeySpecEccNistP521, elliptic.P521(), ecdh.P521()},
	} {
		t.Run(string(tt.spec), func(t *testing.T) {
			priv := newECKey(t, tt.curve)
			id := e.externalSpecKey(t, tt.spec, types.KeyUsageTypeKeyAgreement, types.AlgorithmSpecRsaAesKeyWrapSha256, pkcs8(t, priv))
			md := describeWith(t, e.kms, id)
			if md.KeyState != types.KeyStateEnabled || len(md.KeyAgreementAlgorithms) != 1 || md.KeyAgreementAlgorithms[0] != types.KeyAgreementAlgorithmSpecEcdh {
				t.Fatalf("imported KEY_AGREEMENT key: %s %v", md.KeyState, md.KeyAgreementAlgorithms)
			}
			peer, err := tt.ecdh.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			peerDER, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
			out, err := e.kms.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{KeyId: aws.String(id), KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: peerDER})
			if err != nil {
				t.Fatal(err)
			}
			mine, _ := priv.PublicKey.ECDH()
			want, _ := peer.ECDH(mine)
			if !bytes.Equal(out.SharedSecret, want) || out.KeyOrigin != types.OriginTypeExternal {
				t.Errorf("DeriveSharedSecret: secret differs from the peer's ECDH, origin %s", out.KeyOrigin)
			}
			_, err = e.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
			wantErr(t, err, "InvalidKeyUsageException", "key usage is KEY_AGREEMENT which is not valid for Sign.")
			_, err = e.kms.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{KeyId: aws.String(id), KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: []byte("not a key")})
			wantErr(t, err, "ValidationException")
		})
	}
	sign := e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecEccNistP256, types.KeyUsageTypeSignVerify)
	_, err := e.kms.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{KeyId: aws.String(sign), KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: []byte{1}})
	wantErr(t, err, "InvalidKeyUsageException", "key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.")
}
