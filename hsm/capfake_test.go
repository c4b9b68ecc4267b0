package hsm

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

// capFake is a token for the capability probes: it lists mechs, generates
// and wraps unless told to fail in one of the shapes real tokens fail in,
// and keeps every object it holds, so a test can check nothing was left.
type capFake struct {
	fakeP11
	mechs map[uint]uint // mechanism -> CKF_ flags
	// rejects: an attribute C_GenerateKey answers CKR_ATTRIBUTE_TYPE_INVALID for.
	rejects uint
	// wrapErr: what C_WrapKey returns, when set.
	wrapErr error
	// persists: session objects read back CKA_TOKEN=true.
	persists bool
	// createErr: what C_CreateObject returns, when set.
	createErr error
	// wrapLen: the length of what C_WrapKey returns, when not 0.
	wrapLen int
	// genErr: what C_GenerateKey returns for a template labelled genErrLabel.
	genErr      error
	genErrLabel string
	// signErr: what C_SignInit returns, when set.
	signErr  error
	next     pkcs11.ObjectHandle
	objects  map[pkcs11.ObjectHandle][]*pkcs11.Attribute
	generate int
}

func newCapFake() *capFake {
	return &capFake{
		mechs: map[uint]uint{
			pkcs11.CKM_AES_KEY_GEN:            pkcs11.CKF_GENERATE,
			pkcs11.CKM_GENERIC_SECRET_KEY_GEN: pkcs11.CKF_GENERATE,
			pkcs11.CKM_RSA_PKCS_OAEP:          pkcs11.CKF_WRAP | pkcs11.CKF_ENCRYPT,
			pkcs11.CKM_SHA256_HMAC:            pkcs11.CKF_SIGN,
		},
		objects: map[pkcs11.ObjectHandle][]*pkcs11.Attribute{},
		rejects: ^uint(0), // no attribute
	}
}

func (f *capFake) token() *Token {
	return &Token{p: f, session: 1, id: TokenIdentity{Label: "fake", Manufacturer: "Fake", Model: "F"}}
}

func (f *capFake) GetMechanismList(uint) ([]*pkcs11.Mechanism, error) {
	var out []*pkcs11.Mechanism
	for m := range f.mechs {
		out = append(out, pkcs11.NewMechanism(m, nil))
	}
	return out, nil
}
func (f *capFake) GetMechanismInfo(_ uint, m []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error) {
	return pkcs11.MechanismInfo{MinKeySize: 1, MaxKeySize: 4096, Flags: f.mechs[m[0].Mechanism]}, nil
}
func (f *capFake) add(tmpl []*pkcs11.Attribute) pkcs11.ObjectHandle {
	f.next++
	f.objects[f.next] = tmpl
	return f.next
}
func (f *capFake) GenerateKey(_ pkcs11.SessionHandle, _ []*pkcs11.Mechanism, tmpl []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	f.generate++
	for _, a := range tmpl {
		if a.Type == f.rejects {
			return 0, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)
		}
		if f.genErr != nil && a.Type == pkcs11.CKA_LABEL && string(a.Value) == f.genErrLabel {
			return 0, f.genErr
		}
	}
	return f.add(tmpl), nil
}
func (f *capFake) CreateObject(_ pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if f.createErr != nil {
		return 0, f.createErr
	}
	return f.add(tmpl), nil
}
func (f *capFake) DestroyObject(_ pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
	delete(f.objects, h)
	return nil
}
func (f *capFake) GetAttributeValue(_ pkcs11.SessionHandle, h pkcs11.ObjectHandle, want []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	var out []*pkcs11.Attribute
	for _, w := range want {
		if w.Type == pkcs11.CKA_TOKEN && f.persists {
			out = append(out, pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true))
			continue
		}
		found := false
		for _, a := range f.objects[h] {
			if a.Type == w.Type {
				out, found = append(out, a), true
			}
		}
		if !found {
			return nil, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)
		}
	}
	return out, nil
}
func (f *capFake) WrapKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, pkcs11.ObjectHandle) ([]byte, error) {
	if f.wrapErr != nil {
		return nil, f.wrapErr
	}
	if f.wrapLen != 0 {
		return make([]byte, f.wrapLen), nil
	}
	return make([]byte, 256), nil
}
func (f *capFake) SignInit(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error {
	return f.signErr
}
func (f *capFake) Sign(pkcs11.SessionHandle, []byte) ([]byte, error)               { return make([]byte, 32), nil }
func (f *capFake) FindObjectsInit(pkcs11.SessionHandle, []*pkcs11.Attribute) error { return nil }
func (f *capFake) FindObjects(pkcs11.SessionHandle, int) ([]pkcs11.ObjectHandle, bool, error) {
	return nil, false, nil
}
func (f *capFake) FindObjectsFinal(pkcs11.SessionHandle) error { return nil }

// nothingLeft fails the test when the fake still holds an object: every
// probe object must have been destroyed.
func (f *capFake) nothingLeft(t *testing.T) {
	t.Helper()
	if len(f.objects) != 0 {
		t.Errorf("%d objects left in the token after the probes; want none", len(f.objects))
	}
}

func kindIs(err error, k Kind) bool {
	var u *UnsupportedError
	return errors.As(err, &u) && u.Kind == k
}

var aesOAEP = Ask{Key: AES256(), Generate: true, Wrap: WrapMethod{OAEP: OAEPSHA256}}

func TestFakeUnknownWrapWithTrustedIsLeftOutAndSaidSo(t *testing.T) {
	f := newCapFake()
	f.rejects = pkcs11.CKA_WRAP_WITH_TRUSTED
	warnings, err := f.token().Check(aesOAEP)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "CKA_WRAP_WITH_TRUSTED=false was left out") || !strings.Contains(warnings[0], "PKCS#11 default") {
		t.Errorf("warnings %q: want the adaptation, with why it is safe", warnings)
	}
	f.nothingLeft(t)
}

func TestFakeUnknownSecurityAttributeIsNamedAndNeverDropped(t *testing.T) {
	f := newCapFake()
	f.rejects = pkcs11.CKA_SENSITIVE
	tk := f.token()
	_, err := tk.Generate("k", AES256(), false)
	if !kindIs(err, KindGenerate) || !strings.Contains(err.Error(), "CKR_ATTRIBUTE_TYPE_INVALID for CKA_SENSITIVE") || !strings.Contains(err.Error(), "never leaves out") {
		t.Fatalf("got %v, want a refusal naming CKA_SENSITIVE", err)
	}
	f.nothingLeft(t)
}

func TestFakeDualControlRefusedWhenTheAttributeIsUnknown(t *testing.T) {
	f := newCapFake()
	f.rejects = pkcs11.CKA_WRAP_WITH_TRUSTED
	a := aesOAEP
	a.DualControl = true
	_, err := f.token().Check(a)
	if !kindIs(err, KindDualControl) || !strings.Contains(err.Error(), "rejects the CKA_WRAP_WITH_TRUSTED attribute") {
		t.Fatalf("got %v, want dual control refused with the reason", err)
	}
	f.nothingLeft(t)
}

func TestFakeWrapNotSupportedAtAllNamesTheKindOfHSM(t *testing.T) {
	f := newCapFake()
	f.wrapErr = pkcs11.Error(pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
	_, err := f.token().Check(aesOAEP)
	var u *UnsupportedError
	if !errors.As(err, &u) || !u.AtAll() || !strings.Contains(err.Error(), "cannot export any key") || !strings.Contains(err.Error(), "use an HSM whose PKCS#11 module implements C_WrapKey") {
		t.Fatalf("got %v, want 'cannot wrap at all' with the kind of HSM that would work", err)
	}
	f.nothingLeft(t)
}

func TestFakeNoWrapMechanismIsNotWrappingAtAll(t *testing.T) {
	f := newCapFake()
	f.mechs[pkcs11.CKM_RSA_PKCS_OAEP] = pkcs11.CKF_ENCRYPT
	_, err := f.token().Check(aesOAEP)
	if !kindIs(err, KindNoWrap) || !strings.Contains(err.Error(), "none of the mechanisms it lists has CKF_WRAP") {
		t.Fatalf("got %v, want the no-wrapping-at-all refusal", err)
	}
	if f.generate != 0 {
		t.Errorf("%d C_GenerateKey calls: a token that cannot wrap needs no probe", f.generate)
	}
}

func TestFakeOAEPWithoutCKFWrapIsOneMechanismMissing(t *testing.T) {
	f := newCapFake()
	f.mechs[pkcs11.CKM_RSA_PKCS_OAEP] = pkcs11.CKF_ENCRYPT
	f.mechs[CKM_AES_KEY_WRAP_KWP] = pkcs11.CKF_WRAP
	_, err := f.token().Check(aesOAEP)
	if !kindIs(err, KindWrap) || !strings.Contains(err.Error(), "lists CKM_RSA_PKCS_OAEP but without CKF_WRAP") {
		t.Fatalf("got %v, want one wrapping method refused for want of CKF_WRAP", err)
	}
	f.nothingLeft(t)
}

func TestFakeGenerateNotSupportedAtAll(t *testing.T) {
	f := newCapFake()
	delete(f.mechs, pkcs11.CKM_AES_KEY_GEN)
	delete(f.mechs, pkcs11.CKM_GENERIC_SECRET_KEY_GEN)
	_, err := f.token().Check(aesOAEP)
	var u *UnsupportedError
	if !errors.As(err, &u) || u.Kind != KindNoGenerate || !u.AtAll() || !strings.Contains(err.Error(), "without --generate") {
		t.Fatalf("got %v, want the no-generation-at-all refusal", err)
	}
	if f.generate != 0 {
		t.Errorf("%d C_GenerateKey calls on a token that lists no generation", f.generate)
	}
}

func TestFakePersistedSessionObjectIsDestroyedAndReported(t *testing.T) {
	f := newCapFake()
	f.persists = true
	tk := f.token()
	_, err := tk.Check(aesOAEP)
	if !kindIs(err, KindPersisted) || !strings.Contains(err.Error(), "CKA_TOKEN=false read back true") || !strings.Contains(err.Error(), "it was destroyed") {
		t.Fatalf("got %v, want the persisted session object reported as destroyed", err)
	}
	c, _ := tk.Capabilities()
	if len(c.Notes()) == 0 {
		t.Error("no note about the persisted object in the capabilities")
	}
	f.nothingLeft(t)
}

func TestFakeGeneratedKeyThatDiffersFromItsTemplateIsRefusedAndKept(t *testing.T) {
	f := newCapFake()
	tk := f.token()
	// The token turns CKA_EXTRACTABLE off: what it reads back is what counts.
	h, _ := f.GenerateKey(1, nil, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)})
	err := tk.checkReadBack(h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true)}, "k", []byte{1})
	var m *TemplateMismatchError
	if !errors.As(err, &m) || !strings.Contains(err.Error(), "CKA_EXTRACTABLE is false, asked true") || !strings.Contains(err.Error(), "The key stays in the token") {
		t.Fatalf("got %v, want the difference named and the key said to stay", err)
	}
	if _, ok := f.objects[h]; !ok {
		t.Error("the mismatching key was deleted; kmsbridge never deletes an HSM key")
	}
}

func TestWrapErrorNamesCallCodeAndMechanism(t *testing.T) {
	f := newCapFake()
	f.wrapErr = pkcs11.Error(pkcs11.CKR_MECHANISM_PARAM_INVALID)
	_, err := f.token().WrapOAEP(&Key{Handle: 7}, testPub(), OAEPSHA256)
	want := "C_WrapKey: CKR_MECHANISM_PARAM_INVALID (0x71) with CKM_RSA_PKCS_OAEP (SHA-256): the token rejects these mechanism parameters (often an OAEP hash it does not support); choose another wrapping algorithm"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	f.nothingLeft(t)
}

func TestGenerateErrorNamesTheRejectedAttribute(t *testing.T) {
	f := newCapFake()
	tk := f.token()
	if _, err := tk.Capabilities(); err != nil {
		t.Fatal(err)
	}
	tk.caps.omitChecked = true // as if the template check had passed earlier
	f.rejects = pkcs11.CKA_DERIVE
	_, err := tk.Generate("k", AES256(), false)
	var perr *Error
	if !errors.As(err, &perr) || perr.Attribute != "CKA_DERIVE" || perr.Mechanism != "CKM_AES_KEY_GEN" ||
		!strings.HasPrefix(err.Error(), "C_GenerateKey: CKR_ATTRIBUTE_TYPE_INVALID (0x12) with CKM_AES_KEY_GEN for CKA_DERIVE: ") {
		t.Fatalf("got %v, want the call, code, mechanism and attribute named", err)
	}
	f.nothingLeft(t)
}

// TestFakeWrappingKeyRefusedAsSessionObjectIsNotAWrapFailure: a token that
// refuses the KMS wrapping public key as a session object cannot wrap
// under it at all; no wrap was tried, so it is never reported as "cannot
// wrap with RSA-OAEP".
func TestFakeWrappingKeyRefusedAsSessionObjectIsNotAWrapFailure(t *testing.T) {
	f := newCapFake()
	f.createErr = pkcs11.Error(pkcs11.CKR_TEMPLATE_INCONSISTENT)
	tk := f.token()
	_, err := tk.Check(aesOAEP)
	var u *UnsupportedError
	if !errors.As(err, &u) || u.Kind != KindWrappingKey || !u.AtAll() {
		t.Fatalf("got %v, want KindWrappingKey, token-wide", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "cannot wrap with") || !strings.Contains(msg, "C_CreateObject") || !strings.Contains(msg, "CKR_TEMPLATE_INCONSISTENT") || !strings.Contains(msg, "no wrap was tried") {
		t.Errorf("message %q: want the refused session public key named, no wrap failure", msg)
	}
	caps, _ := tk.Capabilities()
	if !kindIs(caps.WrapsAtAll(), KindWrappingKey) {
		t.Errorf("WrapsAtAll() = %v, want the refusal: no method can wrap without the wrapping key", caps.WrapsAtAll())
	}
	if err := tk.ProbeOAEP(OAEPSHA1); !kindIs(err, KindWrappingKey) {
		t.Errorf("ProbeOAEP = %v, want KindWrappingKey", err)
	}
	f.nothingLeft(t)
}

// TestFakeWrapOfTheWrongLengthMarksThatAlgorithmImpossible: a token (a
// filtering proxy) that returns a wrap of the wrong length is answered
// with a refusal of that algorithm, never an unclassified error.
func TestFakeWrapOfTheWrongLengthMarksThatAlgorithmImpossible(t *testing.T) {
	for _, n := range []int{255, 257, 16} {
		f := newCapFake()
		f.wrapLen = n
		_, err := f.token().Check(aesOAEP)
		if !kindIs(err, KindWrap) || !strings.Contains(err.Error(), "not the 256-byte modulus length") {
			t.Errorf("wrap of %d bytes: got %v, want KindWrap naming the length", n, err)
		}
		// The real wrap says the same, never a bare error.
		_, err = f.token().WrapOAEP(&Key{Handle: 1, Label: "k"}, testPub(), OAEPSHA256)
		if !kindIs(err, KindWrap) {
			t.Errorf("WrapOAEP of %d bytes: got %v, want KindWrap", n, err)
		}
		f.nothingLeft(t)
	}
}

// TestFakeRSAAESOneUseKeyTemplateRefused: a token that refuses the one-use
// AES key's template makes RSA-AES impossible, said as a template refusal.
func TestFakeRSAAESOneUseKeyTemplateRefused(t *testing.T) {
	f := newCapFake()
	f.mechs[pkcs11.CKM_AES_KEY_WRAP_PAD] = pkcs11.CKF_WRAP
	f.mechs[0x210B] = pkcs11.CKF_WRAP // CKM_AES_KEY_WRAP_KWP
	f.genErr, f.genErrLabel = pkcs11.Error(pkcs11.CKR_TEMPLATE_INCONSISTENT), "kmsbridge ephemeral AES key (session)"
	f.wrapLen = 0
	a := aesOAEP
	a.Wrap = WrapMethod{RSAAES: true, OAEP: OAEPSHA1}
	_, err := f.token().Check(a)
	if !kindIs(err, KindTemplate) || !strings.Contains(err.Error(), "one-use AES-256 session key") || !strings.Contains(err.Error(), "CKR_TEMPLATE_INCONSISTENT") {
		t.Fatalf("got %v, want KindTemplate naming the one-use key and the code", err)
	}
	// RSA-OAEP is unaffected.
	if _, err := f.token().Check(Ask{Key: AES256(), Generate: true, Wrap: WrapMethod{OAEP: OAEPSHA1}}); err != nil {
		t.Errorf("RSA-OAEP: %v", err)
	}
	f.nothingLeft(t)
}

// TestFakeKeyTypeMissingIsNotClaimed: a token without a key type's
// generation mechanism is refused that key type, its proof is not claimed,
// and other key types still generate.
func TestFakeKeyTypeMissingIsNotClaimed(t *testing.T) {
	f := newCapFake()
	delete(f.mechs, pkcs11.CKM_GENERIC_SECRET_KEY_GEN)
	tk := f.token()
	caps, err := tk.Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	if err := caps.Generation(HMACKey(32)); !kindIs(err, KindGenerate) || !strings.Contains(err.Error(), "CKM_GENERIC_SECRET_KEY_GEN") {
		t.Errorf("Generation(HMAC) = %v, want KindGenerate naming the mechanism", err)
	}
	if err := caps.Proof(HMACKey(32)); !kindIs(err, KindProof) || !strings.Contains(err.Error(), "no throwaway") {
		t.Errorf("Proof(HMAC) = %v, want not claimed", err)
	}
	if err := caps.Generation(AES256()); err != nil {
		t.Errorf("Generation(AES) = %v", err)
	}
	f.nothingLeft(t)
}

// TestFakeHMACProofRefusedIsNotClaimed: a token that generates HMAC keys
// but cannot compute the HMAC has no proof of import for them.
func TestFakeHMACProofRefusedIsNotClaimed(t *testing.T) {
	f := newCapFake()
	f.signErr = pkcs11.Error(pkcs11.CKR_MECHANISM_INVALID)
	caps, err := f.token().Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	if err := caps.Proof(HMACKey(32)); !kindIs(err, KindProof) || !strings.Contains(err.Error(), "CKR_MECHANISM_INVALID") {
		t.Errorf("Proof(HMAC) = %v, want KindProof with the token's answer", err)
	}
	if err := caps.Proof(AES256()); err != nil {
		t.Errorf("Proof(AES) = %v", err)
	}
	f.nothingLeft(t)
}

// TestFakeCallFailureIsNotARefusal: a failure of the device is returned as
// the failed call, never kept as "cannot wrap".
func TestFakeCallFailureIsNotARefusal(t *testing.T) {
	f := newCapFake()
	f.wrapErr = pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
	_, err := f.token().Check(aesOAEP)
	var perr *Error
	if errors.Is(err, ErrWrapUnsupported) || !errors.As(err, &perr) || perr.Code != pkcs11.CKR_DEVICE_REMOVED {
		t.Fatalf("got %v, want the failed call, not a refusal", err)
	}
}
