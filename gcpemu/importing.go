package gcpemu

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"regexp"
	"strconv"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
)

var (
	labelRE      = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	labelValueRE = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
)

// ImportCryptoKeyVersion takes wrapped material into a new version, or
// into a DESTROYED or IMPORT_FAILED imported version (re-import), per
// [proto]. What is wrong with the request itself is refused at once; what
// is wrong with the unwrapped material ends the version IMPORT_FAILED with
// import_failure_reason (whether real Cloud KMS fails such imports at
// once or later is not recorded; docs/gcp-import.md).
func (s *Server) ImportCryptoKeyVersion(_ context.Context, req *kmspb.ImportCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetParent())
	if err != nil {
		return nil, err
	}
	info, ok := algs[req.GetAlgorithm()]
	if !ok {
		return nil, invalidArg("Algorithm %s cannot be imported.", req.GetAlgorithm())
	}
	if info.purpose != k.pb.Purpose {
		return nil, invalidArg("Algorithm %s is not compatible with purpose %s of CryptoKey %s.", req.GetAlgorithm(), k.pb.Purpose, k.pb.Name)
	}
	if req.GetImportJob() == "" {
		return nil, invalidArg("ImportCryptoKeyVersionRequest.import_job is required.")
	}
	j, err := s.job(req.GetImportJob())
	if err != nil {
		return nil, err
	}
	if j.pb.State != kmspb.ImportJob_ACTIVE {
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. ImportJob %s is not active, current state is: %s.", j.pb.Name, j.pb.State)
	}
	if j.pb.ProtectionLevel != k.pb.VersionTemplate.GetProtectionLevel() {
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. ImportJob %s has protection level %s, but CryptoKey %s has protection level %s.", j.pb.Name, j.pb.ProtectionLevel, k.pb.Name, k.pb.VersionTemplate.GetProtectionLevel())
	}
	wrapped := req.GetWrappedKey()
	if legacy := req.GetRsaAesWrappedKey(); len(legacy) > 0 {
		if len(wrapped) > 0 {
			return nil, invalidArg("Only one of wrapped_key and rsa_aes_wrapped_key may be set.")
		}
		if !isRSAAES(j.pb.ImportMethod) {
			return nil, invalidArg("rsa_aes_wrapped_key requires an RSA_OAEP_*_AES_256 import method.")
		}
		wrapped = legacy
	}
	if len(wrapped) == 0 {
		return nil, invalidArg("ImportCryptoKeyVersionRequest.wrapped_key is required.")
	}
	if len(wrapped) > 64<<10 {
		return nil, invalidArg("ImportCryptoKeyVersionRequest.wrapped_key is too large.")
	}
	if isRSAAES(j.pb.ImportMethod) && len(wrapped) <= j.key.Size() {
		return nil, invalidArg("The wrapped key is %d bytes; with %s it must be longer than %d bytes.", len(wrapped), j.pb.ImportMethod, j.key.Size())
	}
	// The material: unwrapped and checked; a failure marks the version.
	v := &version{imported: true}
	reason := s.unwrapInto(v, j, info, wrapped)
	if req.GetCryptoKeyVersion() != "" {
		return s.reimport(k, req, v, reason)
	}
	id := len(k.versions) + 1
	v.pb = &kmspb.CryptoKeyVersion{Name: k.pb.Name + "/cryptoKeyVersions/" + strconv.Itoa(id), Algorithm: req.GetAlgorithm(),
		ProtectionLevel: k.pb.VersionTemplate.GetProtectionLevel(), CreateTime: timestamppb.New(s.now()), ImportJob: j.pb.Name}
	s.pend(v, reason)
	k.versions = append(k.versions, v)
	return s.versionPB(v), nil
}

func (s *Server) pend(v *version, reason string) {
	v.pb.State = kmspb.CryptoKeyVersion_PENDING_IMPORT
	v.pendingTil = s.now().Add(s.opts.ImportDelay)
	v.failReason = reason
	if reason != "" {
		v.secret, v.signer = nil, nil
	}
}

func (s *Server) reimport(k *cryptoKey, req *kmspb.ImportCryptoKeyVersionRequest, fresh *version, reason string) (*kmspb.CryptoKeyVersion, error) {
	m := versionRE.FindStringSubmatch(req.GetCryptoKeyVersion())
	if m == nil || m[1] != k.pb.Name {
		return nil, invalidArg("CryptoKeyVersion %s is not a child of %s.", req.GetCryptoKeyVersion(), k.pb.Name)
	}
	_, v, err := s.ver(req.GetCryptoKeyVersion())
	if err != nil {
		return nil, err
	}
	if !v.imported {
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. CryptoKeyVersion %s was not created by ImportCryptoKeyVersion.", v.pb.Name)
	}
	if v.pb.State != kmspb.CryptoKeyVersion_DESTROYED && v.pb.State != kmspb.CryptoKeyVersion_IMPORT_FAILED {
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. CryptoKeyVersion %s is in state %s; only DESTROYED or IMPORT_FAILED versions can be re-imported.", v.pb.Name, v.pb.State)
	}
	if v.pb.Algorithm != req.GetAlgorithm() {
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. The algorithm %s does not match %s of CryptoKeyVersion %s.", req.GetAlgorithm(), v.pb.Algorithm, v.pb.Name)
	}
	if reason == "" && v.digest != "" && fresh.digest != v.digest {
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. The key material does not match the previous key material of CryptoKeyVersion %s.", v.pb.Name)
	}
	if fresh.digest != "" && v.digest == "" {
		v.digest = fresh.digest
	}
	v.secret, v.signer = fresh.secret, fresh.signer
	v.pb.ImportJob = req.GetImportJob()
	v.pb.ImportFailureReason, v.pb.DestroyTime, v.pb.DestroyEventTime = "", nil, nil
	v.pb.ReimportEligible = false
	s.pend(v, reason)
	return s.versionPB(v), nil
}

func isRSAAES(m kmspb.ImportJob_ImportMethod) bool {
	return m != kmspb.ImportJob_RSA_OAEP_3072_SHA256 && m != kmspb.ImportJob_RSA_OAEP_4096_SHA256
}

func methodHash(m kmspb.ImportJob_ImportMethod) hash.Hash {
	switch m {
	case kmspb.ImportJob_RSA_OAEP_3072_SHA1_AES_256, kmspb.ImportJob_RSA_OAEP_4096_SHA1_AES_256:
		return sha1.New()
	}
	return sha256.New()
}

// unwrapInto unwraps and checks the material ([proto] wrapped_key;
// [formatting]), filling v; it returns why the import fails, or "".
func (s *Server) unwrapInto(v *version, j *importJob, info algInfo, wrapped []byte) string {
	var material []byte
	if isRSAAES(j.pb.ImportMethod) {
		n := j.key.Size()
		aesKey, err := rsa.DecryptOAEP(methodHash(j.pb.ImportMethod), nil, j.key, wrapped[:n], nil)
		if err != nil {
			return "The wrapped key could not be unwrapped with the ImportJob's key: RSA-OAEP decryption of the ephemeral AES key failed."
		}
		if len(aesKey) != 32 {
			return fmt.Sprintf("The ephemeral key is %d bytes; it must be a 32-byte AES-256 key.", len(aesKey))
		}
		if material, err = kwp.Unwrap(aesKey, wrapped[n:]); err != nil {
			return "The wrapped key could not be unwrapped: AES key wrap with padding (RFC 5649) failed."
		}
	} else {
		var err error
		if material, err = rsa.DecryptOAEP(sha256.New(), nil, j.key, wrapped, nil); err != nil {
			return "The wrapped key could not be unwrapped with the ImportJob's key: RSA-OAEP decryption failed."
		}
	}
	switch {
	case info.secret > 0:
		if len(material) != info.secret {
			return fmt.Sprintf("The key material is %d bytes; this algorithm needs exactly %d bytes of raw key.", len(material), info.secret)
		}
		v.secret = material
		v.digest = materialDigest(material)
	default:
		var outer asn1.RawValue
		rest, err := asn1.Unmarshal(material, &outer)
		if err == nil && len(rest) > 0 && !(s.opts.LenientPKCS8 && allZero(rest)) {
			return fmt.Sprintf("The key material has %d bytes after its PKCS#8 structure; it must be exactly one DER PrivateKeyInfo.", len(rest))
		}
		key, err := x509.ParsePKCS8PrivateKey(material[:len(material)-len(rest)])
		if err != nil {
			return "The key material is not a PKCS#8 DER PrivateKeyInfo: " + err.Error()
		}
		signer, ok := key.(crypto.Signer)
		if !ok || !matches(signer, info) {
			return fmt.Sprintf("The key material is a %T, which does not match the algorithm.", key)
		}
		v.signer = signer
		v.digest = signerDigest(signer)
	}
	return ""
}

func matches(k crypto.Signer, info algInfo) bool {
	switch key := k.(type) {
	case *rsa.PrivateKey:
		return info.rsaBits > 0 && key.N.BitLen() == info.rsaBits
	case *ecdsa.PrivateKey:
		return info.curve != nil && key.Curve == info.curve
	}
	return false
}

// crc is a CRC32C as Cloud KMS's integrity fields carry it.
func crc(b any) *wrapperspb.Int64Value {
	t := crc32.MakeTable(crc32.Castagnoli)
	switch v := b.(type) {
	case string:
		return wrapperspb.Int64(int64(crc32.Checksum([]byte(v), t)))
	case []byte:
		return wrapperspb.Int64(int64(crc32.Checksum(v, t)))
	}
	return nil
}

func checkCRC(field string, data []byte, c *wrapperspb.Int64Value) error {
	if c != nil && crc(data).GetValue() != c.GetValue() {
		return invalidArg("The checksum in field %s did not match the data in field %s.", field+"_crc32c", field)
	}
	return nil
}

// symmetricVersion resolves name (a CryptoKey: its primary; or a version)
// to an enabled ENCRYPT_DECRYPT version.
func (s *Server) symmetricVersion(name string) (*cryptoKey, *version, error) {
	if versionRE.MatchString(name) {
		k, v, err := s.ver(name)
		if err != nil {
			return nil, nil, err
		}
		return k, v, enabled(v)
	}
	k, err := s.key(name)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range k.versions {
		s.advance(k, v)
	}
	if k.pb.Primary == nil {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. CryptoKey %s has no primary version.", name)
	}
	v := k.versions[versionID(k.pb.Primary.GetName())-1]
	return k, v, enabled(v)
}

// Encrypt seals with AES-256-GCM under the version's material; the
// ciphertext names its version (an emulator format, opaque to clients).
func (s *Server) Encrypt(_ context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, v, err := s.symmetricVersion(req.GetName())
	if err != nil {
		return nil, err
	}
	if k.pb.Purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return nil, invalidArg("CryptoKey %s has purpose %s, not ENCRYPT_DECRYPT.", k.pb.Name, k.pb.Purpose)
	}
	if err := checkCRC("plaintext", req.GetPlaintext(), req.GetPlaintextCrc32C()); err != nil {
		return nil, err
	}
	if err := checkCRC("additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	gcm := newGCM(v.secret)
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	head := binary.BigEndian.AppendUint32([]byte("GEMU"), uint32(versionID(v.pb.Name)))
	ct := gcm.Seal(append(append([]byte{}, head...), nonce...), nonce, req.GetPlaintext(), req.GetAdditionalAuthenticatedData())
	return &kmspb.EncryptResponse{Name: v.pb.Name, Ciphertext: ct, CiphertextCrc32C: crc(ct),
		VerifiedPlaintextCrc32C: req.GetPlaintextCrc32C() != nil, VerifiedAdditionalAuthenticatedDataCrc32C: req.GetAdditionalAuthenticatedDataCrc32C() != nil,
		ProtectionLevel: v.pb.ProtectionLevel}, nil
}

// Decrypt opens a ciphertext of Encrypt; name is the CryptoKey.
func (s *Server) Decrypt(_ context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := checkCRC("ciphertext", req.GetCiphertext(), req.GetCiphertextCrc32C()); err != nil {
		return nil, err
	}
	ct := req.GetCiphertext()
	bad := invalidArg("Decryption failed: the ciphertext is invalid.")
	if len(ct) < 8 || !bytes.Equal(ct[:4], []byte("GEMU")) {
		return nil, bad
	}
	id := int(binary.BigEndian.Uint32(ct[4:8]))
	if id < 1 || id > len(k.versions) {
		return nil, bad
	}
	v := k.versions[id-1]
	s.advance(k, v)
	if err := enabled(v); err != nil {
		return nil, err
	}
	gcm := newGCM(v.secret)
	if len(ct) < 8+gcm.NonceSize() {
		return nil, bad
	}
	pt, err := gcm.Open(nil, ct[8:8+gcm.NonceSize()], ct[8+gcm.NonceSize():], req.GetAdditionalAuthenticatedData())
	if err != nil {
		return nil, bad
	}
	return &kmspb.DecryptResponse{Plaintext: pt, PlaintextCrc32C: crc(pt), UsedPrimary: k.pb.Primary != nil && k.pb.Primary.GetName() == v.pb.Name, ProtectionLevel: v.pb.ProtectionLevel}, nil
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

// MacSign computes the HMAC of data under a MAC version.
func (s *Server) MacSign(_ context.Context, req *kmspb.MacSignRequest) (*kmspb.MacSignResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, err := s.ver(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := enabled(v); err != nil {
		return nil, err
	}
	info := algs[v.pb.Algorithm]
	if info.purpose != kmspb.CryptoKey_MAC {
		return nil, invalidArg("CryptoKeyVersion %s is not a MAC key.", v.pb.Name)
	}
	if err := checkCRC("data", req.GetData(), req.GetDataCrc32C()); err != nil {
		return nil, err
	}
	m := hmac.New(info.hash.New, v.secret)
	m.Write(req.GetData())
	mac := m.Sum(nil)
	return &kmspb.MacSignResponse{Name: v.pb.Name, Mac: mac, MacCrc32C: crc(mac), VerifiedDataCrc32C: req.GetDataCrc32C() != nil, ProtectionLevel: v.pb.ProtectionLevel}, nil
}

// AsymmetricSign signs a digest with an ASYMMETRIC_SIGN version.
func (s *Server) AsymmetricSign(_ context.Context, req *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, err := s.ver(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := enabled(v); err != nil {
		return nil, err
	}
	info := algs[v.pb.Algorithm]
	if info.purpose != kmspb.CryptoKey_ASYMMETRIC_SIGN || v.signer == nil {
		return nil, invalidArg("CryptoKeyVersion %s is not an ASYMMETRIC_SIGN key.", v.pb.Name)
	}
	var digest []byte
	switch d := req.GetDigest(); {
	case d.GetSha256() != nil && info.hash == crypto.SHA256:
		digest = d.GetSha256()
	case d.GetSha384() != nil && info.hash == crypto.SHA384:
		digest = d.GetSha384()
	default:
		return nil, invalidArg("The digest does not match algorithm %s.", v.pb.Algorithm)
	}
	var opts crypto.SignerOpts = info.hash
	if name := v.pb.Algorithm.String(); len(name) > 12 && name[:12] == "RSA_SIGN_PSS" {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: info.hash}
	}
	sig, err := v.signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &kmspb.AsymmetricSignResponse{Name: v.pb.Name, Signature: sig, SignatureCrc32C: crc(sig), ProtectionLevel: v.pb.ProtectionLevel}, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
