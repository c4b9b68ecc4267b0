package kmsemu

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"hash"
	"regexp"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
)

const (
	maxCiphertext      = 6144 // EncryptedKeyMaterial and ImportToken
	maxValidToAhead    = 365 * 24 * time.Hour
	importTypeNew      = "NEW_KEY_MATERIAL"
	importTypeExisting = "EXISTING_KEY_MATERIAL"
	importTokenBytes   = 64
	aesWrapKeyBytes    = 32 // the ephemeral key of RSA_AES_KEY_WRAP_*: AES-256
)

// importParams is what one GetParametersForImport call handed out: its
// import token maps to this.
type importParams struct {
	keyID     string
	algorithm string
	spec      string
	priv      *rsa.PrivateKey
	validTo   time.Time
}

type getParametersForImportInput struct {
	KeyId             *string
	WrappingAlgorithm *string
	WrappingKeySpec   *string
}

type getParametersForImportOutput struct {
	KeyId             string
	ImportToken       []byte
	PublicKey         []byte
	ParametersValidTo epochTime
}

// importableState checks what GetParametersForImport and ImportKeyMaterial
// require of a key: EXTERNAL origin, and PendingImport or Enabled.
func importableState(k *key, op string) *apiError {
	if k.origin != originExternal {
		return errorf("UnsupportedOperationException", "%s origin is %s which is not valid for this operation.", k.arn, k.origin)
	}
	if st := k.state(); st != statePendingImport && st != stateEnabled {
		return invalidState(k, op)
	}
	return nil
}

func (s *Server) getParametersForImport(c *call, body []byte) (any, *apiError) {
	var in getParametersForImportInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.required("keyId", in.KeyId != nil)
	v.required("wrappingAlgorithm", in.WrappingAlgorithm != nil)
	v.required("wrappingKeySpec", in.WrappingKeySpec != nil)
	v.enum("wrappingAlgorithm", in.WrappingAlgorithm, enumValues(types.AlgorithmSpec("").Values()))
	v.enum("wrappingKeySpec", in.WrappingKeySpec, enumValues(types.WrappingKeySpec("").Values()))
	if err := v.err(); err != nil {
		return nil, err
	}
	alg, spec := *in.WrappingAlgorithm, *in.WrappingKeySpec
	switch {
	case alg == string(types.AlgorithmSpecRsaesPkcs1V15):
		return nil, errorf("ValidationException", "KMS no longer accepts the RSAES_PKCS1_V1_5 wrapping algorithm (refused since October 10, 2023); use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256")
	case alg == string(types.AlgorithmSpecSm2pke) || spec == string(types.WrappingKeySpecSm2):
		return nil, errorf("ValidationException", "SM2 wrapping (SM2PKE, SM2) is available only in AWS China Regions, not in %s", c.reg.name)
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := importableState(k, c.op); aerr != nil {
		return nil, aerr
	}
	if k.ks().kind == kindRSA && !isKeyWrap(alg) {
		return nil, errorf("ValidationException", "%s is an %s key: RSA private key material is too large for %s, so it must be wrapped with RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256", k.arn, k.spec, alg)
	}

	// Drawing a key pair can mean generating an RSA-4096 key: do it without
	// holding up every other request, then check the key again.
	s.mu.Unlock()
	priv, err := s.pool.get(spec)
	s.mu.Lock()
	if err != nil {
		return nil, errorf("KMSInternalException", "cannot generate the %s wrapping key: %v", spec, err)
	}
	c.reg.pairs = append(c.reg.pairs, priv)
	s.applyClock()
	if c.reg.keys[k.id] != k {
		return nil, errorf("NotFoundException", "Key '%s' does not exist", k.arn)
	}
	if aerr := importableState(k, c.op); aerr != nil {
		return nil, aerr
	}

	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, errorf("KMSInternalException", "cannot encode the wrapping public key: %v", err)
	}
	token := make([]byte, importTokenBytes)
	if _, err := rand.Read(token); err != nil {
		return nil, errorf("KMSInternalException", "crypto/rand failed: %v", err)
	}
	p := &importParams{keyID: k.id, algorithm: alg, spec: spec, priv: priv, validTo: s.now().Add(s.ttl)}
	c.reg.tokens[string(token)] = p
	return getParametersForImportOutput{
		KeyId:             k.arn,
		ImportToken:       token,
		PublicKey:         pub,
		ParametersValidTo: epochTime{p.validTo},
	}, nil
}

func isKeyWrap(alg string) bool {
	return alg == string(types.AlgorithmSpecRsaAesKeyWrapSha1) || alg == string(types.AlgorithmSpecRsaAesKeyWrapSha256)
}

type importKeyMaterialInput struct {
	KeyId                  *string
	ImportToken            []byte
	EncryptedKeyMaterial   []byte
	ValidTo                *epochTime
	ExpirationModel        *string
	ImportType             *string
	KeyMaterialDescription *string
	KeyMaterialId          *string
}

type importKeyMaterialOutput struct {
	KeyId         string
	KeyMaterialId string
}

var (
	materialDescriptionRE = regexp.MustCompile(`^[a-zA-Z0-9:/_\s.-]+$`)
	materialIDRE          = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// importKeyMaterial runs one ImportKeyMaterial call: it works out the outcome
// without changing anything, records the artifact if asked to, and only then
// applies a successful import.
func (s *Server) importKeyMaterial(c *call, body []byte) (any, *apiError) {
	var art importArtifact
	out, commit, aerr := s.prepareImport(c, body, &art)
	if s.artifacts != "" {
		art.Outcome = "ok"
		if aerr != nil {
			art.Outcome = aerr.code
		}
		if err := s.writeArtifact(&art); err != nil {
			return nil, errorf("KMSInternalException", "kms-emulator could not record the import artifact: %v", err)
		}
	}
	if aerr != nil {
		return nil, aerr
	}
	commit()
	return out, nil
}

func (s *Server) prepareImport(c *call, body []byte, art *importArtifact) (any, func(), *apiError) {
	var in importKeyMaterialInput
	if err := decode(body, &in); err != nil {
		return nil, nil, err
	}
	if in.KeyId != nil {
		art.KeyId = *in.KeyId
	}
	art.EncryptedKeyMaterial = in.EncryptedKeyMaterial
	params := c.reg.tokens[string(in.ImportToken)]
	if params != nil {
		art.WrappingAlgorithm = params.algorithm
		art.WrappingKeySpec = params.spec
		art.priv = params.priv
	}

	// The request on its own.
	now := s.now()
	var v validator
	v.required("keyId", in.KeyId != nil)
	if v.required("importToken", in.ImportToken != nil) {
		v.blobLen("importToken", in.ImportToken, 1, maxCiphertext)
	}
	if v.required("encryptedKeyMaterial", in.EncryptedKeyMaterial != nil) {
		v.blobLen("encryptedKeyMaterial", in.EncryptedKeyMaterial, 1, maxCiphertext)
	}
	v.enum("expirationModel", in.ExpirationModel, enumValues(types.ExpirationModelType("").Values()))
	v.enum("importType", in.ImportType, enumValues(types.ImportType("").Values()))
	v.strLen("keyMaterialDescription", in.KeyMaterialDescription, 1, 256)
	v.pattern("keyMaterialDescription", in.KeyMaterialDescription, materialDescriptionRE)
	v.pattern("keyMaterialId", in.KeyMaterialId, materialIDRE)
	if err := v.err(); err != nil {
		return nil, nil, err
	}
	model := expirationExpires
	if in.ExpirationModel != nil {
		model = *in.ExpirationModel
	}
	switch {
	case model == expirationExpires && in.ValidTo == nil:
		return nil, nil, errorf("ValidationException", "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES")
	case model == expirationNeverExpires && in.ValidTo != nil:
		return nil, nil, errorf("ValidationException", "A validTo date cannot be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE")
	case model == expirationExpires && !in.ValidTo.After(now):
		return nil, nil, errorf("ValidationException", "ValidTo (%s) must be in the future (now is %s)", in.ValidTo.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case model == expirationExpires && in.ValidTo.Sub(now) > maxValidToAhead:
		return nil, nil, errorf("ValidationException", "ValidTo (%s) cannot be more than 365 days in the future", in.ValidTo.UTC().Format(time.RFC3339))
	}
	if in.ImportType != nil && *in.ImportType == importTypeNew && in.KeyMaterialId != nil {
		return nil, nil, errorf("ValidationException", "KeyMaterialId cannot be specified when ImportType is NEW_KEY_MATERIAL")
	}

	// The key.
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
	if aerr != nil {
		return nil, nil, aerr
	}
	art.KeyId = k.arn
	if aerr := importableState(k, c.op); aerr != nil {
		return nil, nil, aerr
	}
	if k.spec != specSymmetric && (in.ImportType != nil || in.KeyMaterialId != nil || in.KeyMaterialDescription != nil) {
		return nil, nil, errorf("ValidationException", "ImportType, KeyMaterialId and KeyMaterialDescription apply only to symmetric encryption keys; %s is %s %s key, whose material can never change", k.arn, article(k.spec), k.spec)
	}
	importType := importTypeExisting
	if in.ImportType != nil {
		importType = *in.ImportType
	} else if len(k.mats) == 0 {
		importType = importTypeNew
	}
	if aerr := s.importAllowed(k, importType); aerr != nil {
		return nil, nil, aerr
	}

	// The import token.
	if params == nil || params.keyID != k.id {
		return nil, nil, errorf("InvalidImportTokenException", "The import token is invalid for %s: use the ImportToken returned by GetParametersForImport for this key", k.arn)
	}
	if now.After(params.validTo) {
		return nil, nil, errorf("ExpiredImportTokenException", "Parameters for key material import have expired (ParametersValidTo %s). Key '%s'", params.validTo.UTC().Format(time.RFC3339), k.arn)
	}

	// The material.
	raw, err := unwrapMaterial(params, in.EncryptedKeyMaterial)
	if err != nil {
		return nil, nil, errorf("InvalidCiphertextException", "The EncryptedKeyMaterial cannot be decrypted with the %s wrapping key of this import token using %s", params.spec, params.algorithm)
	}
	m, aerr := parseMaterial(k.ks(), raw, s.lenient)
	if aerr != nil {
		return nil, nil, aerr
	}
	if m.padding > 0 {
		s.log.Warn("lenient PKCS#8 padding: ignored zero bytes after the PKCS#8 DER, as SoftHSM2 2.6.1 adds them; real KMS may refuse this material",
			"op", c.op, "key", k.id, "keySpec", k.spec, "zeroBytes", m.padding)
	}
	material := m.canonical
	materialID := s.materialIDFor(k.id, material)
	if in.KeyMaterialId != nil && *in.KeyMaterialId != materialID {
		return nil, nil, errorf("IncorrectKeyMaterialException", "KeyMaterialId %s does not identify this key material of %s", *in.KeyMaterialId, k.arn)
	}
	target, aerr := s.importTarget(k, importType, in.KeyMaterialId != nil, material, materialID)
	if aerr != nil {
		return nil, nil, aerr
	}

	commit := func() {
		if target == nil {
			target = &keyMat{id: materialID, secret: material, priv: m.priv, state: matCurrent}
			if len(k.mats) > 0 {
				// New material for an on-demand rotation; one that was
				// pending and deleted makes way for it.
				k.mats = slices.DeleteFunc(k.mats, func(o *keyMat) bool { return o.pending() })
				target.state = s.pendingStateFor(k, materialID)
			}
			k.mats = append(k.mats, target)
		}
		target.imported = true
		target.expirationModel = model
		target.validTo = time.Time{}
		if in.ValidTo != nil {
			target.validTo = in.ValidTo.Time
		}
		if in.KeyMaterialDescription != nil {
			target.description = *in.KeyMaterialDescription
		}
		if target.associated() {
			k.enabled = true
		}
		s.onImported(k, target)
	}
	return importKeyMaterialOutput{KeyId: k.arn, KeyMaterialId: materialID}, commit, nil
}

// importTarget finds the material an import re-imports (nil for material
// new to the key), or refuses the import:
//   - the first import of a key takes any ImportType;
//   - NEW_KEY_MATERIAL on a key with material (symmetric keys only) is new
//     material pending rotation: refused while other material pending
//     rotation is imported, and for material the key already has;
//   - EXISTING_KEY_MATERIAL re-imports the material KeyMaterialId names, or
//     without it the current material: other material is
//     IncorrectKeyMaterialException (the same-material rule).
func (s *Server) importTarget(k *key, importType string, named bool, material []byte, materialID string) (*keyMat, *apiError) {
	if k.isReplica() {
		return s.replicaImportTarget(k, material)
	}
	if len(k.mats) == 0 {
		return nil, nil
	}
	if importType == importTypeNew {
		if p := k.pendingMat(); p != nil && p.imported {
			return nil, errorf("KMSInvalidStateException", "New key material (id: %s) cannot be imported into KMS key %s, because another key material (id: %s) is pending rotation.", materialID, k.id, p.id)
		}
		if o := k.matBySecret(material); o != nil && !o.pending() {
			return nil, errorf("IncorrectKeyMaterialException", "This key material is already associated with %s as KeyMaterialId %s (%s): import it with ImportType EXISTING_KEY_MATERIAL", k.arn, o.id, o.state)
		}
		return nil, nil
	}
	target := k.current()
	if named {
		target = k.matByID(materialID)
	}
	if target == nil || !hmac.Equal(target.secret, material) {
		which := "the current key material"
		if named {
			which = "key material " + materialID
		}
		return nil, errorf("IncorrectKeyMaterialException", "The key material does not match %s of %s; only key material previously imported into this key can be imported again (EXISTING_KEY_MATERIAL)", which, k.arn)
	}
	return target, nil
}

var errWrapped = errors.New("cannot unwrap")

// unwrapMaterial decrypts EncryptedKeyMaterial with the wrapping private key
// of one GetParametersForImport call, in the algorithm that call named:
// RSAES_OAEP_SHA_* is OAEP with that hash for both digest and MGF1 and an
// empty label; RSA_AES_KEY_WRAP_SHA_* is such an OAEP block holding an
// AES-256 key, followed by the material under RFC 5649 with that key.
func unwrapMaterial(p *importParams, blob []byte) ([]byte, error) {
	var h hash.Hash
	aesWrap := false
	switch types.AlgorithmSpec(p.algorithm) {
	case types.AlgorithmSpecRsaesOaepSha1:
		h = sha1.New()
	case types.AlgorithmSpecRsaesOaepSha256:
		h = sha256.New()
	case types.AlgorithmSpecRsaAesKeyWrapSha1:
		h, aesWrap = sha1.New(), true
	case types.AlgorithmSpecRsaAesKeyWrapSha256:
		h, aesWrap = sha256.New(), true
	default:
		return nil, errWrapped
	}
	k := p.priv.Size()
	if !aesWrap {
		if len(blob) != k {
			return nil, errWrapped
		}
		return rsa.DecryptOAEP(h, nil, p.priv, blob, nil)
	}
	if len(blob) <= k {
		return nil, errWrapped
	}
	aesKey, err := rsa.DecryptOAEP(h, nil, p.priv, blob[:k], nil)
	if err != nil {
		return nil, err
	}
	if len(aesKey) != aesWrapKeyBytes {
		return nil, errWrapped
	}
	return kwp.Unwrap(aesKey, blob[k:])
}

type deleteImportedKeyMaterialInput struct {
	KeyId         *string
	KeyMaterialId *string
}

type deleteImportedKeyMaterialOutput struct {
	KeyId         string
	KeyMaterialId string `json:",omitempty"`
}

// deleteImportedKeyMaterial deletes the current material, or the one
// KeyMaterialId names. Deleting associated material makes the key
// PendingImport (it stays PendingDeletion if it is); deleting material
// pending rotation leaves the key as it is. The material stays remembered
// so only the same material can be imported again, as in KMS. Allowed on a
// key pending deletion, and on a PendingImport key: a no-op for material
// that is not imported (recorded behaviour), a deletion for material that
// still is (a rotated key is PendingImport as soon as any one of its
// materials is deleted; the others can still be deleted one by one, [API]
// DeleteImportedKeyMaterial, [Guide] key states; docs/kms-emulator.md).
func (s *Server) deleteImportedKeyMaterial(c *call, body []byte) (any, *apiError) {
	var in deleteImportedKeyMaterialInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.pattern("keyMaterialId", in.KeyMaterialId, materialIDRE)
	if err := v.err(); err != nil {
		return nil, err
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if k.origin != originExternal {
		return nil, errorf("UnsupportedOperationException", "%s origin is %s which is not valid for this operation.", k.arn, k.origin)
	}
	target := k.current()
	if in.KeyMaterialId != nil {
		if target = k.matByID(*in.KeyMaterialId); target == nil {
			return nil, errorf("NotFoundException", "KeyMaterialId %s is not key material of %s", *in.KeyMaterialId, k.arn)
		}
	}
	out := deleteImportedKeyMaterialOutput{KeyId: k.arn}
	if target != nil {
		out.KeyMaterialId = target.id
	}
	if target == nil || !target.imported {
		return out, nil
	}
	target.unimport()
	if target.pending() && !k.rotateAt.IsZero() {
		// The rotation under way has nothing left to rotate to.
		k.rotateAt, k.rotateStarted = time.Time{}, time.Time{}
	}
	s.onMaterialDeleted(k, target)
	return out, nil
}
