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
	"strings"

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
	// Provenance attributes, as the token reports them; each *Known is
	// false when the token did not report that attribute.
	Local, AlwaysSensitive, NeverExtractable                bool
	LocalKnown, AlwaysSensitiveKnown, NeverExtractableKnown bool
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

// KeySelector chooses one key. Every field given must match: the label
// (CKA_LABEL), the CKA_ID and the type; a selection that matches more than
// one secret or private key is refused as ambiguous, never settled by a
// guess (see findKey).
type KeySelector struct {
	Label string
	ID    []byte
	// Type is RFC 7512's type: "secret-key" or "private"; "" when the
	// selection does not say.
	Type string
}

func (s KeySelector) String() string {
	var parts []string
	if s.Label != "" {
		parts = append(parts, fmt.Sprintf("label %q", s.Label))
	}
	if len(s.ID) > 0 {
		parts = append(parts, fmt.Sprintf("CKA_ID %x", s.ID))
	}
	if s.Type != "" {
		parts = append(parts, "type "+s.Type)
	}
	if len(parts) == 0 {
		return "(no key chosen)"
	}
	return strings.Join(parts, ", ")
}

// typeClass is the object class of an RFC 7512 type, and whether it is one
// kmsbridge knows.
func typeClass(typ string) (uint, bool) {
	switch typ {
	case "secret-key":
		return pkcs11.CKO_SECRET_KEY, true
	case "private":
		return pkcs11.CKO_PRIVATE_KEY, true
	case "public":
		return pkcs11.CKO_PUBLIC_KEY, true
	}
	return 0, false
}

// uriType is the RFC 7512 type of an object class.
func uriType(class uint) string {
	switch class {
	case pkcs11.CKO_SECRET_KEY:
		return "secret-key"
	case pkcs11.CKO_PRIVATE_KEY:
		return "private"
	case pkcs11.CKO_PUBLIC_KEY:
		return "public"
	}
	return fmt.Sprintf("class %#x", class)
}

// template is the search template of every attribute the selection gives.
func (s KeySelector) template() []*pkcs11.Attribute {
	var tmpl []*pkcs11.Attribute
	if s.Label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, s.Label))
	}
	if len(s.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, s.ID))
	}
	if c, ok := typeClass(s.Type); ok {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_CLASS, c))
	}
	return tmpl
}

// findBatch is how many handles one C_FindObjects asks for: a search of a
// token of 10,000 objects takes 11 calls rather than 157 at 64, and each
// call is a round trip to a network HSM. The handles are 8 bytes each.
const findBatch = 1024

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
		hs, _, err := t.p.FindObjects(t.session, findBatch)
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

// FindByLabel does, with one search, what FindKey and LabelInUse would do
// with two: it returns the one key of the kind p describes labelled label
// (nil when there is none, which is no error) and whether any object of
// any class has that label. On a token that searches by reading every
// object (SoftHSM2's file store, docs/tokens.md), the search is what an
// import costs more as the token fills, so callers make as few as they can.
func (t *Token) FindByLabel(label string, p KeyParams) (k *Key, inUse bool, err error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, false, err
	}
	defer done()
	hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil || len(hs) == 0 {
		return nil, false, err
	}
	class := uint(pkcs11.CKO_PRIVATE_KEY)
	if p.Secret() {
		class = pkcs11.CKO_SECRET_KEY
	}
	cands, err := t.candidates(hs)
	if err != nil {
		return nil, true, err
	}
	switch {
	case len(cands) > 1:
		return nil, true, t.ambiguous(cands, KeySelector{Label: label})
	case len(cands) == 1 && cands[0].class == class:
		k, err := t.describe(cands[0].h)
		return k, true, err
	}
	return nil, true, nil
}

// candidate is a secret or private key a search found.
type candidate struct {
	h       pkcs11.ObjectHandle
	class   uint
	keyType uint
	id      []byte
}

// candidates reads the class, key type and CKA_ID of each object of hs
// and keeps the secret and private keys: the keys kmsbridge imports, any
// two of which under one selection make it ambiguous. (The public key of
// a pair shares its private key's label and CKA_ID, and is no rival.) An
// object destroyed between being found and being read is left out.
func (t *Token) candidates(hs []pkcs11.ObjectHandle) ([]candidate, error) {
	var out []candidate
	for _, h := range hs {
		attrs, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		})
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)) {
			continue
		}
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)) {
			// Not a key (no CKA_KEY_TYPE): read its class alone.
			attrs, err = t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil)})
		}
		if err != nil {
			return nil, newError("C_GetAttributeValue", err)
		}
		c := candidate{h: h}
		for _, a := range attrs {
			switch a.Type {
			case pkcs11.CKA_CLASS:
				c.class = ulong(a.Value)
			case pkcs11.CKA_KEY_TYPE:
				c.keyType = ulong(a.Value)
			case pkcs11.CKA_ID:
				c.id = bytes.Clone(a.Value)
			}
		}
		if c.class == pkcs11.CKO_SECRET_KEY || c.class == pkcs11.CKO_PRIVATE_KEY {
			out = append(out, c)
		}
	}
	return out, nil
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

// findKey is the one key finder: every selection of a key kmsbridge acts
// on comes through it. Every attribute sel gives must match (the search
// template holds them all), and the one key it names must be of class. A
// secret or private key is chosen only when it is the only secret or
// private key the selection names: a label shared by a secret key and a
// private key, or by two keys of one class, is refused as ambiguous,
// listing each candidate's type and CKA_ID, unless sel's CKA_ID or type
// narrows it to one. A key of another class than the one needed is not
// found, and the error says what the selection does name.
func (t *Token) findKey(sel KeySelector, class uint) (*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if sel.Label == "" && len(sel.ID) == 0 {
		return nil, fmt.Errorf("%w: no key chosen: give a label or CKA_ID", ErrKeyNotFound)
	}
	if want, ok := typeClass(sel.Type); sel.Type != "" && (!ok || want != class) {
		return nil, fmt.Errorf("%w: the selection says type=%s, and a %s is needed here (type=%s): fix the URI's type, or choose the key spec that matches it", ErrKeyNotFound, sel.Type, className(class), uriType(class))
	}
	if class != pkcs11.CKO_SECRET_KEY && class != pkcs11.CKO_PRIVATE_KEY {
		hs, err := t.findObjects(append(sel.template(), pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)))
		if err != nil {
			return nil, err
		}
		switch len(hs) {
		case 0:
			return nil, fmt.Errorf("%w: no %s with %s in token %q", ErrKeyNotFound, className(class), sel, t.id.Label)
		case 1:
			return t.describe(hs[0])
		}
		return nil, fmt.Errorf("%w: %d %ss have %s in token %q", ErrKeyAmbiguous, len(hs), className(class), sel, t.id.Label)
	}
	hs, err := t.findObjects(sel.template())
	if err != nil {
		return nil, err
	}
	cands, err := t.candidates(hs)
	if err != nil {
		return nil, err
	}
	switch {
	case len(cands) == 0:
		return nil, fmt.Errorf("%w: no %s with %s in token %q: check the label or CKA_ID, or create it with --generate", ErrKeyNotFound, className(class), sel, t.id.Label)
	case len(cands) > 1:
		return nil, t.ambiguous(cands, sel)
	case cands[0].class != class:
		return nil, fmt.Errorf("%w: no %s with %s in token %q: the one key it names is a %s (%s): choose the key spec that matches it, or another key", ErrKeyNotFound, className(class), sel, t.id.Label, className(cands[0].class), describeCandidate(cands[0]))
	}
	return t.describe(cands[0].h)
}

// ambiguous is the error of a selection naming several keys, listing each.
func (t *Token) ambiguous(cands []candidate, sel KeySelector) error {
	var list []string
	for _, c := range cands {
		list = append(list, className(c.class)+" ("+describeCandidate(c)+")")
	}
	return fmt.Errorf("%w: %s names %d keys in token %q: %s: name one by its CKA_ID (--hsm-key-id HEX, or a --key URI with id=%%..), or by a --key URI whose type= (secret-key or private) leaves one", ErrKeyAmbiguous, sel, len(cands), t.id.Label, strings.Join(list, "; "))
}

// describeCandidate names a candidate's type and CKA_ID.
func describeCandidate(c candidate) string {
	id := hex.EncodeToString(c.id)
	if id == "" {
		id = "none"
	}
	return fmt.Sprintf("type=%s, %s, CKA_ID %s", uriType(c.class), keyTypeName(c.keyType), id)
}

// keyTypeName names a CKK_ key type.
func keyTypeName(kt uint) string {
	switch kt {
	case pkcs11.CKK_AES:
		return "AES"
	case pkcs11.CKK_GENERIC_SECRET:
		return "generic secret"
	case pkcs11.CKK_RSA:
		return "RSA"
	case pkcs11.CKK_EC:
		return "EC"
	}
	return fmt.Sprintf("key type %#x", kt)
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
	// and key types (and CKA_CHECK_VALUE only on some tokens): those of the
	// object's kind are asked for together, and each on its own when the
	// token refuses that, so one the object lacks does not fail the rest.
	var class, keyType uint
	for _, a := range attrs {
		switch a.Type {
		case pkcs11.CKA_CLASS:
			class = ulong(a.Value)
		case pkcs11.CKA_KEY_TYPE:
			keyType = ulong(a.Value)
		}
	}
	for typ, v := range t.readAttributes(h, describedAttributes(class, keyType)) {
		attrs = append(attrs, pkcs11.NewAttribute(typ, v))
	}
	k := &Key{Handle: h}
	for _, a := range attrs {
		switch a.Type {
		case pkcs11.CKA_LABEL:
			k.Label = objectText(a.Value)
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
		case pkcs11.CKA_LOCAL:
			k.Local, k.LocalKnown = boolean(a.Value), len(a.Value) == 1
		case pkcs11.CKA_ALWAYS_SENSITIVE:
			k.AlwaysSensitive, k.AlwaysSensitiveKnown = boolean(a.Value), len(a.Value) == 1
		case pkcs11.CKA_NEVER_EXTRACTABLE:
			k.NeverExtractable, k.NeverExtractableKnown = boolean(a.Value), len(a.Value) == 1
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
	return t.GenerateAfterSearch(label, p, wrapWithTrusted)
}

// GenerateAfterSearch is Generate without its search for label, for a
// caller that has just searched the token itself (LabelInUse, FindByLabel)
// and found the label free, while holding what keeps other kmsbridge
// processes off the token (the journal's lock). PKCS#11 has no "create if
// the label is free", so a second search would only narrow, never close,
// the gap to another program; on a token that searches by reading every
// object it would double what an import costs more as the token fills.
func (t *Token) GenerateAfterSearch(label string, p KeyParams, wrapWithTrusted bool) (*Key, error) {
	id, err := NewKeyID()
	if err != nil {
		return nil, err
	}
	return t.GenerateWithID(label, id, p, wrapWithTrusted)
}

// NewKeyID is a random CKA_ID of KeyIDBytes for a key to generate.
func NewKeyID() ([]byte, error) {
	id := make([]byte, KeyIDBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("random CKA_ID: %w", err)
	}
	return id, nil
}

// GenerateWithID is GenerateAfterSearch with the CKA_ID chosen by the
// caller (NewKeyID), who can so journal it before the call: the key the
// token then holds under label is provably the one this call made when
// its CKA_ID, read back, is that one (ownership).
func (t *Token) GenerateWithID(label string, id []byte, p KeyParams, wrapWithTrusted bool) (*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if label == "" {
		return nil, errors.New("a generated key needs a label: give --key-label")
	}
	caps, err := t.Capabilities()
	if err != nil {
		return nil, err
	}
	// The probes run on this operation's session.
	if err := caps.checkOmissions(t); err != nil {
		return nil, err
	}
	if wrapWithTrusted {
		if err := caps.dualControl(t); err != nil {
			return nil, err
		}
	}
	if len(id) != KeyIDBytes {
		return nil, fmt.Errorf("a generated key's CKA_ID is %d random bytes, not %d: use hsm.NewKeyID", KeyIDBytes, len(id))
	}
	mech, mechName := genMechanism(p)
	m := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
	switch p.KeyType {
	case pkcs11.CKK_AES, pkcs11.CKK_GENERIC_SECRET:
		tmpl := caps.adapt(SecretKeyTemplate(p, label, id, wrapWithTrusted))
		h, err := t.p.GenerateKey(t.session, m, tmpl)
		if err != nil {
			return nil, t.generateError("C_GenerateKey", mechName, mech, tmpl, err)
		}
		if err := t.checkReadBack(h, tmpl, label, id); err != nil {
			return nil, err
		}
		return t.describe(h)
	case pkcs11.CKK_RSA, pkcs11.CKK_EC:
		pub, priv := KeyPairTemplates(p, label, id, wrapWithTrusted)
		pub, priv = caps.adapt(pub), caps.adapt(priv)
		pubH, h, err := t.p.GenerateKeyPair(t.session, m, pub, priv)
		if err != nil {
			return nil, t.generateError("C_GenerateKeyPair", mechName, mech, nil, err)
		}
		if err := t.checkReadBack(pubH, pub, label, id); err != nil {
			return nil, err
		}
		if err := t.checkReadBack(h, priv, label, id); err != nil {
			return nil, err
		}
		return t.describe(h)
	}
	return nil, fmt.Errorf("cannot generate %s", p)
}

// generateError describes a failed key generation, naming the mechanism
// and, for a rejected attribute of a secret key template, which one (found
// on throwaway session keys).
func (t *Token) generateError(call, mechName string, mech uint, tmpl []*pkcs11.Attribute, err error) error {
	e := newError(call, err)
	var perr *Error
	if !errors.As(e, &perr) {
		return e
	}
	perr.Mechanism = mechName
	if tmpl != nil && (perr.Code == pkcs11.CKR_ATTRIBUTE_TYPE_INVALID || perr.Code == pkcs11.CKR_ATTRIBUTE_VALUE_INVALID || perr.Code == pkcs11.CKR_TEMPLATE_INCONSISTENT) {
		if caps, cerr := t.Capabilities(); cerr == nil {
			if bad := t.rejectedAttribute(mech, caps.sessionCopy(tmpl)); bad != 0 {
				perr.Attribute = AttributeName(bad)
			}
		}
	}
	return perr
}

// TemplateMismatchError is a generated key whose attributes, read back,
// differ from what its template asked for. The key exists in the token.
type TemplateMismatchError struct {
	Token, Label string
	ID           []byte
	// Differences name each attribute, what was asked and what was read.
	Differences []string
}

func (e *TemplateMismatchError) Error() string {
	return fmt.Sprintf("token %q generated key %q (CKA_ID %x) but it does not have the attributes asked for: %s; kmsbridge will not use it. The key stays in the token: inspect it and delete it with the vendor's tool (e.g. pkcs11-tool --delete-object --id %x)", e.Token, e.Label, e.ID, strings.Join(e.Differences, "; "), e.ID)
}

// Is makes errors.Is(err, ErrUnsuitableKey) true.
func (e *TemplateMismatchError) Is(target error) bool { return target == ErrUnsuitableKey }

// checkReadBack reads every attribute of tmpl back from the object h and
// compares it with what was asked: the token's word, not the template,
// decides. CKA_VALUE is never in a key template and never read.
func (t *Token) checkReadBack(h pkcs11.ObjectHandle, tmpl []*pkcs11.Attribute, label string, id []byte) error {
	// Some tokens (NSS) keep no CKA_MODULUS_BITS after generation; the
	// modulus itself says the size.
	var types []uint
	for _, a := range tmpl {
		switch a.Type {
		case pkcs11.CKA_VALUE:
		case pkcs11.CKA_MODULUS_BITS:
			types = append(types, pkcs11.CKA_MODULUS)
		default:
			types = append(types, a.Type)
		}
	}
	read := t.readAttributes(h, types)
	var diffs []string
	for _, a := range tmpl {
		if a.Type == pkcs11.CKA_VALUE {
			continue
		}
		if a.Type == pkcs11.CKA_MODULUS_BITS {
			mod, ok := read[pkcs11.CKA_MODULUS]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("CKA_MODULUS cannot be read back (%v)", t.readError(h, pkcs11.CKA_MODULUS)))
			} else if bits := new(big.Int).SetBytes(mod).BitLen(); uint(bits) != ulong(a.Value) {
				diffs = append(diffs, fmt.Sprintf("the modulus is %d bits, asked %d", bits, ulong(a.Value)))
			}
			continue
		}
		got, ok := read[a.Type]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s cannot be read back (%v)", AttributeName(a.Type), t.readError(h, a.Type)))
			continue
		}
		if !bytes.Equal(got, a.Value) {
			diffs = append(diffs, fmt.Sprintf("%s is %s, asked %s", AttributeName(a.Type), attrString(got), attrString(a.Value)))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return &TemplateMismatchError{Token: t.id.Label, Label: label, ID: id, Differences: diffs}
}

// attrString shows an attribute value: a CK_BBOOL as true/false, else hex.
func attrString(v []byte) string {
	if len(v) == 1 && v[0] <= 1 {
		return fmt.Sprint(v[0] == 1)
	}
	return fmt.Sprintf("%x", v)
}

// ObjectSummary is an object's public attributes: what Inventory reads to
// show that an operation changed nothing. It never holds key material.
type ObjectSummary struct {
	Handle     pkcs11.ObjectHandle
	Attributes map[string]string
}

// inventoryAttributes are the attributes Inventory reads, each on its own
// so one an object lacks does not hide the rest. CKA_VALUE is not among them.
var inventoryAttributes = []uint{
	pkcs11.CKA_CLASS, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_LABEL, pkcs11.CKA_ID, pkcs11.CKA_TOKEN,
	pkcs11.CKA_PRIVATE, pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_WRAP_WITH_TRUSTED,
	pkcs11.CKA_TRUSTED, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_MODULUS, pkcs11.CKA_EC_PARAMS,
	pkcs11.CKA_CHECK_VALUE, pkcs11.CKA_SIGN, pkcs11.CKA_WRAP, pkcs11.CKA_ENCRYPT, pkcs11.CKA_DECRYPT,
}

// Inventory lists every object this session can see, with its public
// attributes, in handle order.
func (t *Token) Inventory() ([]ObjectSummary, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	hs, err := t.findObjects(nil)
	if err != nil {
		return nil, err
	}
	var out []ObjectSummary
	for _, h := range hs {
		o := ObjectSummary{Handle: h, Attributes: map[string]string{}}
		for _, typ := range inventoryAttributes {
			got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
			if err == nil && len(got) == 1 {
				o.Attributes[AttributeName(typ)] = fmt.Sprintf("%x", got[0].Value)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// Provenance says what the token reports about where k came from, and
// claims "generated in this HSM and never in the clear" only when the
// token says so (CKA_LOCAL and CKA_ALWAYS_SENSITIVE both true). A key that
// is to be wrapped for KMS is extractable, so CKA_NEVER_EXTRACTABLE is
// false for it and is reported only when true.
func (k *Key) Provenance() string {
	var parts []string
	switch {
	case k.LocalKnown && k.Local && k.AlwaysSensitiveKnown && k.AlwaysSensitive:
		parts = append(parts, "generated in this HSM and never in the clear (CKA_LOCAL=true, CKA_ALWAYS_SENSITIVE=true)")
	default:
		switch {
		case !k.LocalKnown:
			parts = append(parts, "origin unknown (the token does not report CKA_LOCAL)")
		case k.Local:
			parts = append(parts, "generated in this HSM (CKA_LOCAL=true)")
		default:
			parts = append(parts, "not generated in this HSM: it was imported or unwrapped into it (CKA_LOCAL=false)")
		}
		switch {
		case !k.AlwaysSensitiveKnown:
			parts = append(parts, "whether it was ever in the clear is unknown (the token does not report CKA_ALWAYS_SENSITIVE)")
		case !k.AlwaysSensitive:
			parts = append(parts, "it has been readable in the clear (CKA_ALWAYS_SENSITIVE=false)")
		default:
			parts = append(parts, "never readable in the clear in this HSM (CKA_ALWAYS_SENSITIVE=true)")
		}
	}
	if k.NeverExtractableKnown && k.NeverExtractable {
		parts = append(parts, "never extractable (CKA_NEVER_EXTRACTABLE=true)")
	}
	return strings.Join(parts, "; ")
}

// DestroyInterrupted destroys every object that carries both CKA_LABEL
// label and CKA_ID id, and says how many it destroyed. It exists for one
// case only: a generation kmsbridge journaled with that freshly chosen
// CKA_ID was stopped inside C_GenerateKey(Pair), and the token kept what
// it had written so far (SoftHSM2 stores a new key's attributes one after
// another, so a kill can leave an object with its label and CKA_ID but not
// CKA_LOCAL or its value). Such an object was never used and can never be
// proven kmsbridge's; the ownership authority decides that it is one
// (ownership.Authority.Interrupted) before this is called. Destroying an
// object already gone is no error, so a re-run after a stop here finishes.
func (t *Token) DestroyInterrupted(label string, id []byte) (int, error) {
	t, done, err := t.bound()
	if err != nil {
		return 0, err
	}
	defer done()
	if label == "" || len(id) != KeyIDBytes {
		return 0, fmt.Errorf("an interrupted generation's object is named by its label and its %d-byte CKA_ID", KeyIDBytes)
	}
	hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label), pkcs11.NewAttribute(pkcs11.CKA_ID, id)})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range hs {
		if err := t.p.DestroyObject(t.session, h); err != nil {
			return n, newError("C_DestroyObject", err)
		}
		n++
	}
	return n, nil
}

// OnlyPublicHalf says whether what carries label in this token is the
// public half of a key pair and nothing else: at least one object, each a
// public key with CKA_ID id. A token that writes a new pair's public key
// before its private key (SoftHSM2's C_GenerateKeyPair creates the public
// key object first) leaves that when stopped in between. The public half
// holds nothing secret; the ownership authority decides whether it is such
// a leftover (ownership.Authority.InterruptedPair). Only CKA_CLASS and
// CKA_ID are read.
func (t *Token) OnlyPublicHalf(label string, id []byte) (bool, error) {
	t, done, err := t.bound()
	if err != nil {
		return false, err
	}
	defer done()
	if label == "" || len(id) != KeyIDBytes {
		return false, nil
	}
	hs, err := t.findObjects([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil || len(hs) == 0 {
		return false, err
	}
	for _, h := range hs {
		a := t.readAttributes(h, []uint{pkcs11.CKA_CLASS, pkcs11.CKA_ID})
		c, ok := a[pkcs11.CKA_CLASS]
		if !ok || ulong(c) != pkcs11.CKO_PUBLIC_KEY || !bytes.Equal(a[pkcs11.CKA_ID], id) {
			return false, nil
		}
	}
	return true, nil
}

// Incomplete says whether k, read back from this token, lacks the material
// a key of its type has: an RSA key without a modulus, an EC key without
// a curve, a secret key of length 0, or an AES key without the
// CKA_CHECK_VALUE this token gives every AES key it generates (asked of a
// throwaway session key, Capabilities.CheckValue). It is what a token that
// writes a new key's material after creating its object (SoftHSM2) leaves
// when stopped in between; a complete key is never incomplete. No secret
// attribute is read.
func (t *Token) Incomplete(k *Key) bool {
	switch k.KeyType {
	case pkcs11.CKK_RSA:
		return k.ModulusBits == 0
	case pkcs11.CKK_EC:
		return k.Curve == nil
	case pkcs11.CKK_AES:
		if k.ValueLen == 0 {
			return true
		}
		if len(k.CheckValue) > 0 {
			return false
		}
		caps, err := t.Capabilities()
		return err == nil && caps.CheckValue()
	default:
		return k.ValueLen == 0
	}
}
