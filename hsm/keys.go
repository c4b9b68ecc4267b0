package hsm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// KeyIDBytes is the length of the random CKA_ID given to generated keys.
const KeyIDBytes = 16

// Key is a key object in the token, described by its public attributes only.
// It never holds key material.
type Key struct {
	Handle   pkcs11.ObjectHandle
	Label    string
	ID       []byte
	Class    uint
	KeyType  uint
	ValueLen uint
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

// LabelInUse reports whether any object in the token, of any class, has label.
func (t *Token) LabelInUse(label string) (bool, error) {
	hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	return len(hs) > 0, err
}

// FindSecretKey returns the one secret key sel names. It fails with
// ErrKeyNotFound or ErrKeyAmbiguous otherwise.
func (t *Token) FindSecretKey(sel KeySelector) (*Key, error) {
	tmpl := append(sel.template(), pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY))
	hs, err := t.findObjects(tmpl)
	if err != nil {
		return nil, err
	}
	switch len(hs) {
	case 0:
		return nil, fmt.Errorf("%w: no secret key with %s in token %q: check the label or CKA_ID, or create it with --generate", ErrKeyNotFound, sel, t.id.Label)
	case 1:
		return t.describe(hs[0])
	default:
		return nil, fmt.Errorf("%w: %d secret keys have %s in token %q: select the key by --hsm-key-id HEX instead", ErrKeyAmbiguous, len(hs), sel, t.id.Label)
	}
}

// describe reads the public attributes of a key. It never asks for CKA_VALUE.
func (t *Token) describe(h pkcs11.ObjectHandle) (*Key, error) {
	attrs, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, nil),
	})
	if err != nil {
		return nil, newError("C_GetAttributeValue", err)
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
		case pkcs11.CKA_SENSITIVE:
			k.Sensitive = boolean(a.Value)
		case pkcs11.CKA_EXTRACTABLE:
			k.Extractable = boolean(a.Value)
		case pkcs11.CKA_WRAP_WITH_TRUSTED:
			k.WrapWithTrusted = boolean(a.Value)
		}
	}
	// CKA_CHECK_VALUE is optional (PKCS#11 2.40): asked for separately so a
	// token without it does not fail the whole read.
	cv, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CHECK_VALUE, nil)})
	if err == nil && len(cv) == 1 {
		k.CheckValue = bytes.Clone(cv[0].Value)
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

// CheckAES256ForImport returns an error naming the problem unless k can be
// imported as KMS SYMMETRIC_DEFAULT material: an AES key of 32 bytes that
// the token will wrap.
func CheckAES256ForImport(k *Key) error {
	switch {
	case k.KeyType != pkcs11.CKK_AES:
		return fmt.Errorf("%w: key %q is not an AES key (CKA_KEY_TYPE %#x): a SYMMETRIC_DEFAULT KMS key needs AES-256 material", ErrUnsuitableKey, k.Label, k.KeyType)
	case k.ValueLen != AESKeyBytes:
		return fmt.Errorf("%w: key %q is AES-%d: KMS SYMMETRIC_DEFAULT needs AES-256 (32 bytes)", ErrUnsuitableKey, k.Label, k.ValueLen*8)
	case !k.Extractable:
		return fmt.Errorf("%w: key %q has CKA_EXTRACTABLE=false, so the token will never wrap it and it cannot reach KMS: generate a new key with --generate", ErrUnsuitableKey, k.Label)
	}
	return nil
}

// GenerateAES256 generates the AES-256 master copy as a persistent,
// sensitive, extractable token object with a random CKA_ID, after making
// sure no object already has label. It returns the key as the token
// describes it.
func (t *Token) GenerateAES256(label string, wrapWithTrusted bool) (*Key, error) {
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
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
	h, err := t.p.GenerateKey(t.session, mech, AES256KeyTemplate(label, id, wrapWithTrusted))
	if err != nil {
		return nil, newError("C_GenerateKey", err)
	}
	return t.describe(h)
}
