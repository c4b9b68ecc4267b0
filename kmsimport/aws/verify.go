package aws

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Verification says what was proven about a KMS key and its HSM master
// copy. MaterialConfirmed is true only when a KMS operation showed KMS
// holds exactly the HSM's material (HMAC and asymmetric keys); KMS offers
// no such check for symmetric keys.
type Verification struct {
	KeyState          string `json:"KeyState"`
	KeyEnabled        bool   `json:"KeyEnabled"`
	MaterialConfirmed bool   `json:"MaterialConfirmed"`
	// SYMMETRIC_DEFAULT (and RSA ENCRYPT_DECRYPT): KMS round-trips data.
	EncryptDecrypt bool `json:"EncryptDecrypt,omitempty"`
	// KeyCheckValue is the HSM's, for symmetric keys, when the token has one.
	KeyCheckValue string `json:"KeyCheckValue,omitempty"`
	// HMAC keys: KMS GenerateMac and the HSM's HMAC of the same message.
	MacAlgorithm string `json:"MacAlgorithm,omitempty"`
	KmsMac       string `json:"KmsMac,omitempty"`
	HsmMac       string `json:"HsmMac,omitempty"`
	// Asymmetric keys: GetPublicKey equals the HSM's public key, and KMS's
	// signatures verify under the HSM's public key.
	PublicKeySHA256   string   `json:"PublicKeySha256,omitempty"`
	PublicKeyMatches  bool     `json:"PublicKeyMatches,omitempty"`
	SignaturesChecked []string `json:"SignaturesVerified,omitempty"`
	// KEY_AGREEMENT keys: KMS DeriveSharedSecret with a fresh peer key
	// equals the peer's own ECDH with the HSM's public key.
	SharedSecretMatches bool `json:"SharedSecretMatches,omitempty"`
	// HSMAgreementMatches: KMS DeriveSharedSecret equals the HSM's own
	// ECDH (CKM_ECDH1_DERIVE) with the same peer key, compared by HMAC.
	HSMAgreementMatches bool   `json:"HsmEcdhMatches,omitempty"`
	Note                string `json:"Note,omitempty"`
	// Summary is one line saying what was shown.
	Summary string `json:"Summary,omitempty"`
}

func (v Verification) write(w io.Writer, row func(k, v string)) {
	fmt.Fprintln(w, "Verification")
	row("KMS key state", v.KeyState)
	row("material confirmed by KMS", yesNo(v.MaterialConfirmed))
	if v.EncryptDecrypt {
		row("Encrypt/Decrypt round trip", "yes")
	}
	if v.MacAlgorithm != "" {
		row(v.MacAlgorithm, "KMS GenerateMac equals the HSM's HMAC")
	}
	if v.PublicKeyMatches {
		row("public key", "KMS GetPublicKey equals the HSM's, SHA-256 "+v.PublicKeySHA256)
	}
	if len(v.SignaturesChecked) > 0 {
		row("KMS signatures verified", strings.Join(v.SignaturesChecked, ", "))
	}
	if v.SharedSecretMatches {
		row("ECDH", "KMS DeriveSharedSecret equals the peer's ECDH with the HSM's public key")
	}
	if v.HSMAgreementMatches {
		row("HSM ECDH", "KMS DeriveSharedSecret equals the HSM's own CKM_ECDH1_DERIVE (by HMAC)")
	}
	row("note", v.Note)
}

// GatherEvidence asks the token for the evidence of k, a key of spec.
func GatherEvidence(tok kmsimport.Token, k *hsm.Key, spec KeySpec) (kmsimport.Evidence, error) {
	ev := kmsimport.Evidence{KeyCheckValue: k.CheckValueHex()}
	switch {
	case spec.Mac != "":
		ev.MacMessage = make([]byte, 32)
		if _, err := rand.Read(ev.MacMessage); err != nil {
			return ev, err
		}
		mac, err := tok.HMAC(k, spec.MacHash, ev.MacMessage)
		if err != nil {
			return ev, err
		}
		ev.Mac = mac
	case !spec.Secret():
		pub, err := tok.PublicKeyDER(k)
		if err != nil {
			return ev, err
		}
		ev.PublicKey = pub
		if spec.HSM.Derive {
			if ev.Agreement, err = gatherAgreement(tok, k, pub); err != nil {
				return ev, err
			}
		}
	}
	return ev, nil
}

// Verify proves what can be proven that KMS key keyID holds the material
// of the HSM key k, of key spec spec: it gathers the HSM's evidence and
// checks KMS against it (CheckEvidence).
func Verify(ctx context.Context, api API, tok kmsimport.Token, keyID string, k *hsm.Key, spec KeySpec) (Verification, error) {
	ev, err := GatherEvidence(tok, k, spec)
	if err != nil {
		return Verification{}, err
	}
	return CheckEvidence(ctx, api, keyID, spec, ev, k.Label)
}

// CheckEvidence checks KMS key keyID against the HSM's evidence:
//   - HMAC: KMS GenerateMac over the evidence's message equals the HSM's HMAC;
//   - RSA and EC: KMS GetPublicKey equals the HSM's public key, and a KMS
//     Sign over a random message verifies under the HSM's public key, for
//     every signing algorithm KMS offers for the spec;
//   - AES: KMS cannot confirm the material; the key must be Enabled and
//     round-trip Encrypt/Decrypt, and the HSM's key check value is reported.
//
// A disagreement is ErrVerification, with both values in the message.
// label names the HSM key in messages.
func CheckEvidence(ctx context.Context, api API, keyID string, spec KeySpec, ev kmsimport.Evidence, label string) (Verification, error) {
	var v Verification
	d, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return v, explain("DescribeKey", err)
	}
	md := d.KeyMetadata
	v.KeyState = string(md.KeyState)
	if md.KeyState != types.KeyStateEnabled {
		return v, fmt.Errorf("%w: KMS key %s is %s, not Enabled: it holds no usable material (import it with kmsbridge import --kms-key-id %s)", kmsimport.ErrVerification, keyID, md.KeyState, keyID)
	}
	v.KeyEnabled = true
	if md.KeySpec != spec.Name {
		return v, fmt.Errorf("%w: KMS key %s has key spec %s, but the HSM key is %s material", kmsimport.ErrVerification, keyID, md.KeySpec, spec.Name)
	}
	msg := make([]byte, 32)
	if _, err := rand.Read(msg); err != nil {
		return v, err
	}
	switch {
	case spec.Mac != "":
		err = verifyMac(ctx, api, keyID, spec, ev, label, &v)
	case spec.Secret():
		err = verifyEncryptDecrypt(ctx, api, keyID, msg, &v)
		v.KeyCheckValue = ev.KeyCheckValue
		v.Note = "KMS offers no key check value for symmetric keys, so it cannot confirm the material equals the HSM key; the HSM key check value is recorded for comparison"
		if v.KeyCheckValue == "" {
			v.Note = "KMS offers no key check value for symmetric keys, and this token does not provide CKA_CHECK_VALUE, so the material cannot be compared"
		}
		v.Summary = fmt.Sprintf("KMS key %s is Enabled and round-trips Encrypt/Decrypt; KMS cannot confirm symmetric material (HSM key check value %s)", keyID, orNone(v.KeyCheckValue))
	default:
		err = verifyPublic(ctx, api, keyID, spec, md.KeyUsage, ev, label, msg, &v)
	}
	return v, err
}

func orNone(s string) string {
	if s == "" {
		return "not available"
	}
	return s
}

func verifyEncryptDecrypt(ctx context.Context, api API, keyID string, msg []byte, v *Verification) error {
	ec := map[string]string{"kmsbridge": "verify"}
	enc, err := api.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: msg, EncryptionContext: ec})
	if err != nil {
		return explain("Encrypt", err)
	}
	dec, err := api.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(keyID), CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec})
	if err != nil {
		return explain("Decrypt", err)
	}
	if !bytes.Equal(dec.Plaintext, msg) {
		return fmt.Errorf("%w: KMS key %s decrypted its own ciphertext to different bytes", kmsimport.ErrVerification, keyID)
	}
	v.EncryptDecrypt = true
	return nil
}

func verifyMac(ctx context.Context, api API, keyID string, spec KeySpec, ev kmsimport.Evidence, label string, v *Verification) error {
	out, err := api.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(keyID), MacAlgorithm: spec.Mac, Message: ev.MacMessage})
	if err != nil {
		return explain("GenerateMac", err)
	}
	mine := ev.Mac
	v.MacAlgorithm, v.KmsMac, v.HsmMac = string(spec.Mac), hex.EncodeToString(out.Mac), hex.EncodeToString(mine)
	if !hmac.Equal(out.Mac, mine) {
		return fmt.Errorf("%w: over the same random message KMS GenerateMac (%s) gives %s but the HSM key %q gives %s: KMS does not hold this HSM key's material", kmsimport.ErrVerification, spec.Mac, v.KmsMac, label, v.HsmMac)
	}
	v.MaterialConfirmed = true
	v.Summary = fmt.Sprintf("KMS GenerateMac (%s) equals the HSM's HMAC over a fresh random message: KMS holds the HSM key's material", spec.Mac)
	return nil
}

func verifyPublic(ctx context.Context, api API, keyID string, spec KeySpec, usage types.KeyUsageType, ev kmsimport.Evidence, label string, msg []byte, v *Verification) error {
	out, err := api.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return explain("GetPublicKey", err)
	}
	mine := ev.PublicKey
	v.PublicKeySHA256 = kmsimport.Fingerprint(mine)
	if !bytes.Equal(out.PublicKey, mine) {
		return fmt.Errorf("%w: KMS GetPublicKey gives a public key with SHA-256 %s but the HSM key %q has %s: KMS does not hold this HSM key's material", kmsimport.ErrVerification, kmsimport.Fingerprint(out.PublicKey), label, v.PublicKeySHA256)
	}
	v.PublicKeyMatches = true
	if usage == types.KeyUsageTypeKeyAgreement {
		return verifyAgreement(ctx, api, keyID, mine, ev.Agreement, label, v)
	}
	if usage == types.KeyUsageTypeEncryptDecrypt {
		v.MaterialConfirmed = true
		v.Note = "an ENCRYPT_DECRYPT key cannot sign; the public keys match, and the HSM private key has no decrypt use to compare with"
		v.Summary = "KMS GetPublicKey equals the HSM's public key"
		return nil
	}
	for _, alg := range spec.Signing {
		sig, err := api.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyID), Message: msg, MessageType: types.MessageTypeRaw, SigningAlgorithm: alg})
		if err != nil {
			return explain("Sign", err)
		}
		if err := VerifySignature(mine, alg, msg, sig.Signature); err != nil {
			return fmt.Errorf("%w: a KMS %s signature over a random message does not verify under the HSM key %q: %v", kmsimport.ErrVerification, alg, label, err)
		}
		v.SignaturesChecked = append(v.SignaturesChecked, string(alg))
	}
	v.MaterialConfirmed = true
	v.Summary = fmt.Sprintf("KMS GetPublicKey equals the HSM's public key, and KMS signatures (%s) verify under it: KMS holds the HSM key pair", strings.Join(v.SignaturesChecked, ", "))
	return nil
}

// signingHash is the hash a KMS signing algorithm applies to a RAW message.
func signingHash(alg types.SigningAlgorithmSpec) crypto.Hash {
	switch {
	case strings.HasSuffix(string(alg), "SHA_256"):
		return crypto.SHA256
	case strings.HasSuffix(string(alg), "SHA_384"):
		return crypto.SHA384
	case strings.HasSuffix(string(alg), "SHA_512"):
		return crypto.SHA512
	}
	return 0
}

// VerifySignature checks a KMS signature over msg (MessageType RAW) under
// the public key spki, as KMS defines each algorithm: RSA-PSS with the salt
// as long as the digest, PKCS#1 v1.5, and DER-encoded ECDSA (secp256k1
// included).
func VerifySignature(spki []byte, alg types.SigningAlgorithmSpec, msg, sig []byte) error {
	h := signingHash(alg)
	if h == 0 {
		return fmt.Errorf("unknown signing algorithm %s", alg)
	}
	d := h.New()
	d.Write(msg)
	digest := d.Sum(nil)
	if point, ok := secp256k1Point(spki); ok {
		pub, err := secp256k1.ParsePubKey(point)
		if err != nil {
			return err
		}
		s, err := secpecdsa.ParseDERSignature(sig)
		if err != nil {
			return err
		}
		if !s.Verify(digest, pub) {
			return errors.New("secp256k1 ECDSA signature does not verify")
		}
		return nil
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return err
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if strings.HasPrefix(string(alg), "RSASSA_PSS") {
			return rsa.VerifyPSS(p, h, digest, sig, &rsa.PSSOptions{SaltLength: h.Size(), Hash: h})
		}
		return rsa.VerifyPKCS1v15(p, h, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

// secp256k1Point returns the point of a secp256k1 SubjectPublicKeyInfo,
// which Go's x509 does not parse.
func secp256k1Point(spki []byte) ([]byte, bool) {
	var info struct {
		Algorithm struct {
			Algorithm  asn1.ObjectIdentifier
			Parameters asn1.ObjectIdentifier
		}
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(spki, &info); err != nil || len(rest) > 0 {
		return nil, false
	}
	if !info.Algorithm.Parameters.Equal(hsm.Secp256k1.OID) {
		return nil, false
	}
	return info.PublicKey.Bytes, true
}

// VerifyResult is what `kmsbridge verify` reports.
type VerifyResult struct {
	KeyId   string `json:"KeyId"`
	KeySpec string `json:"KeySpec"`
	// KeyMaterialId is the material of the KMS key that the HSM key backs
	// (by the key's kmsbridge tags); empty for keys whose one material
	// has no id.
	KeyMaterialId string           `json:"KeyMaterialId,omitempty"`
	HSM           kmsimport.HSMKey `json:"Hsm"`
	Verification  Verification     `json:"Verification"`
	Warnings      []string         `json:"Warnings,omitempty"`
	// KMSEndpoint is where the KMS requests went, with the TLS peer.
	KMSEndpoint *kmsimport.Endpoint `json:"KmsEndpoint,omitempty"`
}

// VerifyKey finds the HSM key of KMS key keyID (by sel, or by the key's
// kmsbridge:hsm-key-id tag when sel is empty) and runs Verify.
func VerifyKey(ctx context.Context, api API, tok kmsimport.Token, keyID string, sel hsm.KeySelector) (*VerifyResult, error) {
	d, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		return nil, explain("DescribeKey", err)
	}
	md := d.KeyMetadata
	res := &VerifyResult{KeyId: aws.ToString(md.KeyId), KeySpec: string(md.KeySpec)}
	if l, ok := api.(Located); ok {
		// Taken when VerifyKey returns: the TLS peer of every call so far.
		defer func() { ep := l.Endpoint(); res.KMSEndpoint = &ep }()
	}
	spec, err := ParseKeySpec(string(md.KeySpec))
	if err != nil {
		return res, err
	}
	spec = forUsage(spec, md.KeyUsage)
	r := &run{im: &Importer{KMS: api}}
	tags, err := r.listTags(ctx, res.KeyId)
	if err != nil {
		return res, err
	}
	id := tok.Identity()
	var ms []Material
	if tags[TagHSMKeyID] != "" {
		if ms, _, err = ListMaterials(ctx, api, md, tags); err != nil {
			return res, err
		}
	}
	if sel.Label == "" && len(sel.ID) == 0 {
		// The HSM key of the current material: the one KMS encrypts with.
		linked := tags[TagHSMKeyID]
		for _, m := range ms {
			if m.State == string(types.KeyMaterialStateCurrent) && m.HSMKeyID != "" {
				linked = m.HSMKeyID
			}
		}
		if linked == "" {
			return res, invalid("KMS key %s has no %s tag naming its HSM key: give --key-label or --hsm-key-id", res.KeyId, TagHSMKeyID)
		}
		if sel.ID, err = hex.DecodeString(linked); err != nil {
			return res, invalid("KMS key %s has a malformed tag naming its HSM key %q: give --hsm-key-id", res.KeyId, linked)
		}
	}
	if md.Origin != types.OriginTypeExternal {
		return res, fmt.Errorf("%w: KMS key %s has origin %s, not EXTERNAL: KMS made its material itself, so it cannot hold an HSM key's; check --kms-key-id", kmsimport.ErrVerification, res.KeyId, md.Origin)
	}
	if serial := tags[TagTokenSerial]; serial != "" && serial != id.Serial {
		return res, fmt.Errorf("%w: KMS key %s is linked (tag %s) to token serial %s, not to this token (serial %s): verify on the token it was imported from", kmsimport.ErrVerification, res.KeyId, TagTokenSerial, kmsimport.Excerpt(serial), id.Serial)
	}
	k, err := tok.FindKey(sel, spec.HSM)
	if err != nil {
		return res, err
	}
	if linked := tags[TagHSMKeyID]; linked != "" {
		m := MaterialOf(ms, k.IDHex())
		if m == nil {
			return res, fmt.Errorf("%w: no material of KMS key %s is backed by HSM key %q (CKA_ID %s): its tags link it to HSM key CKA_ID %s and the keys of its later generations, so this is not a key its material came from; drop --key-label and --hsm-key-id to verify against the key of the current material", kmsimport.ErrVerification, res.KeyId, k.Label, k.IDHex(), kmsimport.Excerpt(linked))
		}
		res.KeyMaterialId = m.KeyMaterialId
		if m.ImportState != "" && m.ImportState != string(types.ImportStateImported) {
			return res, fmt.Errorf("%w: material %s of KMS key %s, backed by HSM key %q, is %s (deleted or expired): import it again with kmsbridge import --kms-key-id %s --hsm-key-id %s", kmsimport.ErrVerification, shortID(m.KeyMaterialId), res.KeyId, k.Label, m.ImportState, res.KeyId, k.IDHex())
		}
	}
	if tags[TagHSMKeyID] == "" {
		res.Warnings = append(res.Warnings, fmt.Sprintf("KMS key %s carries no %s tag: nothing links it to an HSM key, so only what KMS can show is checked", res.KeyId, TagHSMKeyID))
	}
	res.HSM = kmsimport.HSMKey{Token: id, KeyLabel: k.Label, KeyID: k.IDHex(), KeyCheckValue: k.CheckValueHex()}
	if err := hsm.CheckForImport(k, spec.HSM); err != nil {
		return res, fmt.Errorf("%w: %v", kmsimport.ErrVerification, err)
	}
	res.Verification, err = Verify(ctx, api, tok, res.KeyId, k, spec)
	return res, err
}

// WriteSummary writes the verification for a person.
func (r *VerifyResult) WriteSummary(w io.Writer) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %-28s %s\n", k, v)
		}
	}
	fmt.Fprintf(w, "KMS key %s (%s) against HSM key %q (CKA_ID %s) in token %q serial %s\n", r.KeyId, r.KeySpec, r.HSM.KeyLabel, r.HSM.KeyID, r.HSM.Token.Label, r.HSM.Token.Serial)
	row("KeyMaterialId", r.KeyMaterialId)
	if r.KMSEndpoint != nil {
		row("endpoint", r.KMSEndpoint.String())
	}
	r.Verification.write(w, row)
	row("result", r.Verification.Summary)
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "Warning: "+warn)
	}
}
