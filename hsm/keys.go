package hsm

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// KeyIDBytes is the length of the random CKA_ID given to generated keys.
const KeyIDBytes = 16

// Key is a key object in the token, described by its public attributes only.
// It never holds key material.
type Key struct {
	Handle  pkcs11.ObjectHandle
	Label   string
	ID      []byte
	Class   uint
	KeyType uint
	// ValueLen is the length of a secret key in bytes.
	ValueLen uint
	// ModulusBits is the size of an RSA key.
	ModulusBits int
	// Curve is the curve of an EC key, or nil when unknown.
	Curve *Curve
	// Policy attributes, as the token reports them.
	Sensitive       bool
	Extractable     bool
	WrapWithTrusted bool
	// CheckValue is CKA_CHECK_VALUE (AES: the first 3 bytes of
	// AES-ECB(key, 0^16)), or nil when the token does not provide one.
	CheckValue []byte
}

// IDHex is the CKA_ID in lowercase hex.
func (k *Key) IDHex() string { return hex.EncodeToString(k.ID) }

// CheckValueHex is the key check value in uppercase hex, or "" when the
// token provides none.
func (k *Key) CheckValueHex() string {
	if len(k.CheckValue) == 0 {
		return ""
	}
	return fmt.Sprintf("%X", k.CheckValue)
}

// KeySelector finds a key by label or by CKA_ID. Exactly one is set.
type KeySelector struct {
	Label string
	ID    []byte
}

func (s KeySelector) String() string {
	if len(s.ID) > 0 {
		return fmt.Sprintf("CKA_ID %x", s.ID)
	}
	return fmt.Sprintf("label %q", s.Label)
}

func (s KeySelector) template() []*pkcs11.Attribute {
	if len(s.ID) > 0 {
		return []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, s.ID)}
	}
	return []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, s.Label)}
}

// findObjects returns every object matching tmpl.
func (t *Token) findObjects(tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if err := t.p.FindObjectsInit(t.session, tmpl); err != nil {
		return nil, newError("C_FindObjectsInit", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := t.p.FindObjects(t.session, 64)
		if err != nil {
			_ = t.p.FindObjectsFinal(t.session)
			return nil, newError("C_FindObjects", err)
		}
		all = append(all, hs...)
		if len(hs) == 0 {
			break
		}
	}
	return all, newError("C_FindObjectsFinal", t.p.FindObjectsFinal(t.session))
}

// LabelInUse reports whether any object in the token, of any class, has
// label. It costs one C_FindObjectsInit, one C_FindObjects for at most one
// object and one C_FindObjectsFinal, however many objects the token holds.
func (t *Token) LabelInUse(label string) (bool, error) {
	t, done, err := t.bound()
	if err != nil {
		return false, err
	}
	defer done()
	if err := t.p.FindObjectsInit(t.session, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)}); err != nil {
		return false, newError("C_FindObjectsInit", err)
	}
	hs, _, err := t.p.FindObjects(t.session, 1)
	if err != nil {
		_ = t.p.FindObjectsFinal(t.session)
		return false, newError("C_FindObjects", err)
	}
	return len(hs) > 0, newError("C_FindObjectsFinal", t.p.FindObjectsFinal(t.session))
}

// FindSecretKey returns the one secret key sel names. It fails with
// ErrKeyNotFound or ErrKeyAmbiguous otherwise.
func (t *Token) FindSecretKey(sel KeySelector) (*Key, error) {
	return t.findKey(sel, pkcs11.CKO_SECRET_KEY)
}

// FindKey returns the one key of the kind p describes that sel names: a
// secret key for AES and HMAC, the private key of a pair for RSA and EC.
func (t *Token) FindKey(sel KeySelector, p KeyParams) (*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if p.Secret() {
		return t.findKey(sel, pkcs11.CKO_SECRET_KEY)
	}
	return t.findKey(sel, pkcs11.CKO_PRIVATE_KEY)
}

func className(class uint) string {
	switch class {
	case pkcs11.CKO_SECRET_KEY:
		return "secret key"
	case pkcs11.CKO_PRIVATE_KEY:
		return "private key"
	case pkcs11.CKO_PUBLIC_KEY:
		return "public key"
	}
	return fmt.Sprintf("object of class %#x", class)
}

func (t *Token) findKey(sel KeySelector, class uint) (*Key, error) {
	tmpl := append(sel.template(), pkcs11.NewAttribute(pkcs11.CKA_CLASS, class))
	hs, err := t.findObjects(tmpl)
	if err != nil {
		return nil, err
	}
	switch len(hs) {
	case 0:
		return nil, fmt.Errorf("%w: no %s with %s in token %q: check the label or CKA_ID, or create it with --generate", ErrKeyNotFound, className(class), sel, t.id.Label)
	case 1:
		return t.describe(hs[0])
	default:
		return nil, fmt.Errorf("%w: %d %ss have %s in token %q: select the key by --hsm-key-id HEX instead", ErrKeyAmbiguous, len(hs), className(class), sel, t.id.Label)
	}
}

// describe reads the public attributes of a key. It never asks for CKA_VALUE.
func (t *Token) describe(h pkcs11.ObjectHandle) (*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	attrs, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
	})
	if err != nil {
		return nil, newError("C_GetAttributeValue", err)
	}
	// Policy, size and check-value attributes exist only for some classes
	// and key types (and CKA_CHECK_VALUE only on some tokens): each is asked
	// for on its own so one the object lacks does not fail the rest.
	for _, typ := range []uint{
		pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_WRAP_WITH_TRUSTED,
		pkcs11.CKA_VALUE_LEN, pkcs11.CKA_MODULUS, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_CHECK_VALUE,
	} {
		if got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)}); err == nil && len(got) == 1 {
			attrs = append(attrs, got[0])
		}
	}
	k := &Key{Handle: h}
	for _, a := range attrs {
		switch a.Type {
		case pkcs11.CKA_LABEL:
			k.Label = string(a.Value)
		case pkcs11.CKA_ID:
			k.ID = bytes.Clone(a.Value)
		case pkcs11.CKA_CLASS:
			k.Class = ulong(a.Value)
		case pkcs11.CKA_KEY_TYPE:
			k.KeyType = ulong(a.Value)
		case pkcs11.CKA_VALUE_LEN:
			k.ValueLen = ulong(a.Value)
		case pkcs11.CKA_MODULUS:
			// The public modulus: its length is the key size.
			k.ModulusBits = new(big.Int).SetBytes(a.Value).BitLen()
		case pkcs11.CKA_EC_PARAMS:
			k.Curve = curveOf(a.Value)
		case pkcs11.CKA_CHECK_VALUE:
			k.CheckValue = bytes.Clone(a.Value)
		case pkcs11.CKA_SENSITIVE:
			k.Sensitive = boolean(a.Value)
		case pkcs11.CKA_EXTRACTABLE:
			k.Extractable = boolean(a.Value)
		case pkcs11.CKA_WRAP_WITH_TRUSTED:
			k.WrapWithTrusted = boolean(a.Value)
		}
	}
	return k, nil
}

// ulong decodes a CK_ULONG attribute value in the host's byte order.
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return 0
}

func boolean(b []byte) bool { return len(b) == 1 && b[0] != 0 }

// CheckForImport returns an error naming the problem unless k is a key of
// the kind p describes that the token will wrap.
func CheckForImport(k *Key, p KeyParams) error {
	wrong := func(got string) error {
		return fmt.Errorf("%w: HSM key %q is %s, but the KMS key spec needs %s: choose the HSM key that matches --key-spec", ErrUnsuitableKey, k.Label, got, p)
	}
	if k.KeyType != p.KeyType {
		return wrong(fmt.Sprintf("of CKA_KEY_TYPE %#x", k.KeyType))
	}
	switch p.KeyType {
	case pkcs11.CKK_AES, pkcs11.CKK_GENERIC_SECRET:
		if int(k.ValueLen) != p.Bytes {
			return wrong(fmt.Sprintf("%d bytes long", k.ValueLen))
		}
	case pkcs11.CKK_RSA:
		if k.ModulusBits != p.Bits {
			return wrong(fmt.Sprintf("RSA-%d", k.ModulusBits))
		}
	case pkcs11.CKK_EC:
		if k.Curve == nil || !k.Curve.OID.Equal(p.Curve.OID) {
			name := "on an unknown curve"
			if k.Curve != nil {
				name = "EC " + k.Curve.Name
			}
			return wrong(name)
		}
	}
	if !k.Extractable {
		return fmt.Errorf("%w: HSM key %q has CKA_EXTRACTABLE=false, so the token will never wrap it and it cannot reach KMS: generate a new key with --generate", ErrUnsuitableKey, k.Label)
	}
	return nil
}

// CheckAES256ForImport is CheckForImport for AES-256.
func CheckAES256ForImport(k *Key) error { return CheckForImport(k, AES256()) }

// curveOf finds the curve whose OID is the DER in params.
func curveOf(params []byte) *Curve {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) > 0 {
		return nil
	}
	for _, c := range Curves {
		if c.OID.Equal(oid) {
			return &c
		}
	}
	return nil
}

// GenerateAES256 generates an AES-256 master copy; see Generate.
func (t *Token) GenerateAES256(label string, wrapWithTrusted bool) (*Key, error) {
	return t.Generate(label, AES256(), wrapWithTrusted)
}

// Generate generates the master copy of KMS key material as persistent,
// sensitive token objects extractable only by wrapping, with a random
// CKA_ID, after making sure no object already has label: a secret key for
// AES and HMAC, a key pair (both halves labelled label, with the same
// CKA_ID) for RSA and EC. It returns the secret or private key as the token
// describes it.
func (t *Token) Generate(label string, p KeyParams, wrapWithTrusted bool) (*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if label == "" {
		return nil, errors.New("a generated key needs a label: give --key-label")
	}
	inUse, err := t.LabelInUse(label)
	if err != nil {
		return nil, err
	}
	if inUse {
		return nil, fmt.Errorf("%w: token %q already has an object labelled %q: choose a new --key-label, or drop --generate to use the existing key", ErrLabelExists, t.id.Label, label)
	}
	id := make([]byte, KeyIDBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("random CKA_ID: %w", err)
	}
	var h pkcs11.ObjectHandle
	switch p.KeyType {
	case pkcs11.CKK_AES:
		h, err = t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, SecretKeyTemplate(p, label, id, wrapWithTrusted))
	case pkcs11.CKK_GENERIC_SECRET:
		h, err = t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}, SecretKeyTemplate(p, label, id, wrapWithTrusted))
	case pkcs11.CKK_RSA, pkcs11.CKK_EC:
		mech := uint(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN)
		if p.KeyType == pkcs11.CKK_EC {
			mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		}
		pub, priv := KeyPairTemplates(p, label, id, wrapWithTrusted)
		_, h, err = t.p.GenerateKeyPair(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pub, priv)
		if err != nil {
			return nil, newError("C_GenerateKeyPair", err)
		}
		return t.describe(h)
	default:
		return nil, fmt.Errorf("cannot generate %s", p)
	}
	if err != nil {
		return nil, newError("C_GenerateKey", err)
	}
	return t.describe(h)
}
