package gcpemu

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strconv"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type alg = kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm

// algInfo is what the emulator knows of an algorithm: its purpose and the
// material it takes ([proto] enum comments; [formatting] for lengths).
type algInfo struct {
	purpose kmspb.CryptoKey_CryptoKeyPurpose
	secret  int // bytes of raw material for symmetric and HMAC keys
	rsaBits int
	curve   elliptic.Curve
	hash    crypto.Hash
}

var algs = map[alg]algInfo{
	kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION:  {purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, secret: 32},
	kmspb.CryptoKeyVersion_AES_256_GCM:                  {purpose: kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT, secret: 32},
	kmspb.CryptoKeyVersion_AES_256_CBC:                  {purpose: kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT, secret: 32},
	kmspb.CryptoKeyVersion_AES_256_CTR:                  {purpose: kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT, secret: 32},
	kmspb.CryptoKeyVersion_AES_128_GCM:                  {purpose: kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT, secret: 16},
	kmspb.CryptoKeyVersion_AES_128_CBC:                  {purpose: kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT, secret: 16},
	kmspb.CryptoKeyVersion_AES_128_CTR:                  {purpose: kmspb.CryptoKey_RAW_ENCRYPT_DECRYPT, secret: 16},
	kmspb.CryptoKeyVersion_HMAC_SHA1:                    {purpose: kmspb.CryptoKey_MAC, secret: 20, hash: crypto.SHA1},
	kmspb.CryptoKeyVersion_HMAC_SHA224:                  {purpose: kmspb.CryptoKey_MAC, secret: 28, hash: crypto.SHA224},
	kmspb.CryptoKeyVersion_HMAC_SHA256:                  {purpose: kmspb.CryptoKey_MAC, secret: 32, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_HMAC_SHA384:                  {purpose: kmspb.CryptoKey_MAC, secret: 48, hash: crypto.SHA384},
	kmspb.CryptoKeyVersion_HMAC_SHA512:                  {purpose: kmspb.CryptoKey_MAC, secret: 64, hash: crypto.SHA512},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256:     {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, rsaBits: 2048, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_3072_SHA256:     {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, rsaBits: 3072, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PSS_4096_SHA256:     {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, rsaBits: 4096, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_2048_SHA256:   {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, rsaBits: 2048, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_3072_SHA256:   {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, rsaBits: 3072, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_SIGN_PKCS1_4096_SHA256:   {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, rsaBits: 4096, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA256: {purpose: kmspb.CryptoKey_ASYMMETRIC_DECRYPT, rsaBits: 2048, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_3072_SHA256: {purpose: kmspb.CryptoKey_ASYMMETRIC_DECRYPT, rsaBits: 3072, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_4096_SHA256: {purpose: kmspb.CryptoKey_ASYMMETRIC_DECRYPT, rsaBits: 4096, hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:          {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, curve: elliptic.P256(), hash: crypto.SHA256},
	kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384:          {purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, curve: elliptic.P384(), hash: crypto.SHA384},
}

// cryptoKey is a CryptoKey and its versions (index = version id - 1).
type cryptoKey struct {
	pb       *kmspb.CryptoKey
	versions []*version
}

// version is a CryptoKeyVersion with its material.
type version struct {
	pb         *kmspb.CryptoKeyVersion
	imported   bool
	secret     []byte
	signer     crypto.Signer
	digest     string    // SHA-256 of the material's canonical form, for re-import
	pendingTil time.Time // PENDING_IMPORT until then
	failReason string    // set: the pending import ends IMPORT_FAILED
}

// CreateCryptoKey makes a CryptoKey. An import-only key must skip its
// initial version ([proto] import_only and skip_initial_version_creation);
// the emulator creates no generated versions at all.
func (s *Server) CreateCryptoKey(_ context.Context, req *kmspb.CreateCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	ck := req.GetCryptoKey()
	if !idOnlyRE.MatchString(req.GetCryptoKeyId()) {
		return nil, invalidArg("Invalid crypto key ID %q: it must match [a-zA-Z0-9_-]{1,63}.", req.GetCryptoKeyId())
	}
	if ck.GetPurpose() == kmspb.CryptoKey_CRYPTO_KEY_PURPOSE_UNSPECIFIED {
		return nil, invalidArg("CryptoKey.purpose is required.")
	}
	if !req.GetSkipInitialVersionCreation() {
		return nil, invalidArg("This emulator creates no key material: set skip_initial_version_creation and import versions.")
	}
	tmpl := ck.GetVersionTemplate()
	if tmpl == nil || tmpl.GetAlgorithm() == kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED {
		return nil, invalidArg("CryptoKey.version_template.algorithm is required for purpose %s.", ck.GetPurpose())
	}
	if info, ok := algs[tmpl.GetAlgorithm()]; !ok || info.purpose != ck.GetPurpose() {
		return nil, invalidArg("Algorithm %s is not compatible with purpose %s.", tmpl.GetAlgorithm(), ck.GetPurpose())
	}
	pl := tmpl.GetProtectionLevel()
	if pl == kmspb.ProtectionLevel_PROTECTION_LEVEL_UNSPECIFIED {
		pl = kmspb.ProtectionLevel_SOFTWARE
	}
	for k, v := range ck.GetLabels() {
		if !labelRE.MatchString(k) || !labelValueRE.MatchString(v) {
			return nil, invalidArg("Invalid label %q=%q: keys and values are lowercase letters, digits, '_' and '-', at most 63 characters.", k, v)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.ring(req.GetParent()); err != nil {
		return nil, err
	}
	name := req.GetParent() + "/cryptoKeys/" + req.GetCryptoKeyId()
	if _, ok := s.keys[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "CryptoKey %s already exists.", name)
	}
	dsd := ck.GetDestroyScheduledDuration()
	if dsd == nil {
		dsd = durationpb.New(30 * 24 * time.Hour) // [proto] default 30 days
	}
	pb := &kmspb.CryptoKey{Name: name, Purpose: ck.GetPurpose(), CreateTime: timestamppb.New(s.now()),
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: tmpl.GetAlgorithm(), ProtectionLevel: pl},
		Labels:          ck.GetLabels(), ImportOnly: ck.GetImportOnly(), DestroyScheduledDuration: dsd}
	s.keys[name] = &cryptoKey{pb: pb}
	s.ordering = append(s.ordering, name)
	return proto.Clone(pb).(*kmspb.CryptoKey), nil
}

// GetCryptoKey returns a key with its primary version.
func (s *Server) GetCryptoKey(_ context.Context, req *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetName())
	if err != nil {
		return nil, err
	}
	return s.keyPB(k), nil
}

func (s *Server) keyPB(k *cryptoKey) *kmspb.CryptoKey {
	out := proto.Clone(k.pb).(*kmspb.CryptoKey)
	if k.pb.Primary != nil {
		id := versionID(k.pb.Primary.GetName())
		out.Primary = s.versionPB(k.versions[id-1])
	}
	return out
}

func (s *Server) key(name string) (*cryptoKey, error) {
	m := keyRE.FindStringSubmatch(name)
	if m == nil {
		return nil, invalidArg("Resource name [%s] does not match any known type.", name)
	}
	if _, err := s.ring(m[1]); err != nil {
		return nil, err
	}
	k, ok := s.keys[name]
	if !ok {
		return nil, notFound("CryptoKey", name)
	}
	return k, nil
}

func versionID(name string) int {
	m := versionRE.FindStringSubmatch(name)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[2])
	return n
}

// ver finds a version by name.
func (s *Server) ver(name string) (*cryptoKey, *version, error) {
	m := versionRE.FindStringSubmatch(name)
	if m == nil {
		return nil, nil, invalidArg("Resource name [%s] does not match any known type.", name)
	}
	k, err := s.key(m[1])
	if err != nil {
		return nil, nil, err
	}
	id := versionID(name)
	if id < 1 || id > len(k.versions) {
		return nil, nil, notFound("CryptoKeyVersion", name)
	}
	v := k.versions[id-1]
	s.advance(k, v)
	return k, v, nil
}

// advance applies the transitions time makes: PENDING_IMPORT ends ENABLED
// or IMPORT_FAILED; DESTROY_SCHEDULED ends DESTROYED, material discarded.
func (s *Server) advance(k *cryptoKey, v *version) {
	now := s.now()
	switch v.pb.State {
	case kmspb.CryptoKeyVersion_PENDING_IMPORT:
		if now.Before(v.pendingTil) {
			return
		}
		if v.failReason != "" {
			v.pb.State = kmspb.CryptoKeyVersion_IMPORT_FAILED
			v.pb.ImportFailureReason = v.failReason
			v.pb.ReimportEligible = true
			return
		}
		v.pb.State = kmspb.CryptoKeyVersion_ENABLED
		v.pb.ImportTime = timestamppb.New(v.pendingTil)
		v.pb.ReimportEligible = false
		// The first enabled version of an ENCRYPT_DECRYPT key becomes its
		// primary (emulator's choice; kmsbridge names versions explicitly).
		if k.pb.Purpose == kmspb.CryptoKey_ENCRYPT_DECRYPT && k.pb.Primary == nil {
			k.pb.Primary = &kmspb.CryptoKeyVersion{Name: v.pb.Name}
		}
	case kmspb.CryptoKeyVersion_DESTROY_SCHEDULED:
		if now.Before(v.pb.GetDestroyTime().AsTime()) {
			return
		}
		v.pb.State = kmspb.CryptoKeyVersion_DESTROYED
		v.pb.DestroyEventTime = timestamppb.New(v.pb.GetDestroyTime().AsTime())
		v.secret, v.signer = nil, nil
		v.pb.ReimportEligible = v.imported
	}
}

func (s *Server) versionPB(v *version) *kmspb.CryptoKeyVersion {
	return proto.Clone(v.pb).(*kmspb.CryptoKeyVersion)
}

// GetCryptoKeyVersion returns a version as it now is.
func (s *Server) GetCryptoKeyVersion(_ context.Context, req *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, err := s.ver(req.GetName())
	if err != nil {
		return nil, err
	}
	return s.versionPB(v), nil
}

// ListCryptoKeyVersions lists a key's versions in id order.
func (s *Server) ListCryptoKeyVersions(_ context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetParent())
	if err != nil {
		return nil, err
	}
	out := &kmspb.ListCryptoKeyVersionsResponse{}
	for _, v := range k.versions {
		s.advance(k, v)
		out.CryptoKeyVersions = append(out.CryptoKeyVersions, s.versionPB(v))
	}
	out.TotalSize = int32(len(out.CryptoKeyVersions))
	return out, nil
}

// DestroyCryptoKeyVersion schedules destruction after the key's
// destroy_scheduled_duration ([proto]).
func (s *Server) DestroyCryptoKeyVersion(_ context.Context, req *kmspb.DestroyCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, v, err := s.ver(req.GetName())
	if err != nil {
		return nil, err
	}
	switch v.pb.State {
	case kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKeyVersion_DISABLED:
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. CryptoKeyVersion %s is in state %s.", v.pb.Name, v.pb.State)
	}
	d := k.pb.GetDestroyScheduledDuration().AsDuration()
	if s.opts.DestroyDelay > 0 {
		d = s.opts.DestroyDelay
	}
	v.pb.State = kmspb.CryptoKeyVersion_DESTROY_SCHEDULED
	v.pb.DestroyTime = timestamppb.New(s.now().Add(d))
	if k.pb.Primary != nil && k.pb.Primary.GetName() == v.pb.Name {
		k.pb.Primary = nil
	}
	return s.versionPB(v), nil
}

// GetPublicKey returns an asymmetric version's public key as PEM, with
// its CRC32C.
func (s *Server) GetPublicKey(_ context.Context, req *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, v, err := s.ver(req.GetName())
	if err != nil {
		return nil, err
	}
	if err := enabled(v); err != nil {
		return nil, err
	}
	if v.signer == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. CryptoKeyVersion %s is not asymmetric.", v.pb.Name)
	}
	der, err := x509.MarshalPKIXPublicKey(v.signer.Public())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return &kmspb.PublicKey{Pem: p, Algorithm: v.pb.Algorithm, PemCrc32C: crc(p), Name: v.pb.Name, ProtectionLevel: v.pb.ProtectionLevel}, nil
}

func enabled(v *version) error {
	if v.pb.State != kmspb.CryptoKeyVersion_ENABLED {
		return status.Errorf(codes.FailedPrecondition, "The request cannot be fulfilled. CryptoKeyVersion %s is not enabled, current state is: %s.", v.pb.Name, v.pb.State)
	}
	return nil
}

func materialDigest(b []byte) string {
	s := sha256.Sum256(b)
	return fmt.Sprintf("%x", s)
}

// signerDigest identifies an asymmetric key by its public key.
func signerDigest(k crypto.Signer) string {
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return materialDigest(der)
}
