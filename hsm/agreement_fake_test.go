package hsm

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

// agreementP11 is a token for AgreementMAC that fails in the ways a real
// token cannot be made to on demand.
type agreementP11 struct {
	*fakeP11
	mechs       []uint
	derive      func() (pkcs11.ObjectHandle, error)
	extractable bool
	signed      bool
}

func (a *agreementP11) GetMechanismList(uint) ([]*pkcs11.Mechanism, error) {
	var out []*pkcs11.Mechanism
	for _, m := range a.mechs {
		out = append(out, pkcs11.NewMechanism(m, nil))
	}
	return out, nil
}

func (a *agreementP11) GetAttributeValue(_ pkcs11.SessionHandle, h pkcs11.ObjectHandle, attrs []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	var out []*pkcs11.Attribute
	for _, at := range attrs {
		v := true
		switch at.Type {
		case pkcs11.CKA_EXTRACTABLE:
			v = a.extractable
		case pkcs11.CKA_TOKEN:
			v = false
		}
		out = append(out, pkcs11.NewAttribute(at.Type, v))
	}
	return out, nil
}

func (a *agreementP11) DeriveKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	return a.derive()
}

func (a *agreementP11) SignInit(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error {
	return nil
}

func (a *agreementP11) Sign(pkcs11.SessionHandle, []byte) ([]byte, error) {
	a.signed = true
	return make([]byte, 32), nil
}

func TestAgreementMACRefusals(t *testing.T) {
	key := &Key{Label: "ka", Class: pkcs11.CKO_PRIVATE_KEY, KeyType: pkcs11.CKK_EC, Curve: &P256, Handle: 7}
	point := append([]byte{4}, make([]byte, 64)...)
	both := []uint{pkcs11.CKM_ECDH1_DERIVE, pkcs11.CKM_SHA256_HMAC}
	ok := func() (pkcs11.ObjectHandle, error) { return 42, nil }
	tests := []struct {
		name        string
		p           *agreementP11
		unavailable bool   // ErrNoAgreement: fall back to the public key
		want        string // in the message
	}{
		{"fail no ECDH mechanism", &agreementP11{mechs: []uint{pkcs11.CKM_SHA256_HMAC}, derive: ok}, true, "does not list CKM_ECDH1_DERIVE"},
		{"fail no HMAC mechanism", &agreementP11{mechs: []uint{pkcs11.CKM_ECDH1_DERIVE}, derive: ok}, true, "CKM_SHA256_HMAC"},
		{"fail derive refused", &agreementP11{mechs: both, derive: func() (pkcs11.ObjectHandle, error) { return 0, pkcs11.Error(pkcs11.CKR_MECHANISM_PARAM_INVALID) }}, true, "CKR_MECHANISM_PARAM_INVALID"},
		{"fail derived secret extractable", &agreementP11{mechs: both, derive: ok, extractable: true}, true, "destroyed unused"},
		{"fail token gone", &agreementP11{mechs: both, derive: func() (pkcs11.ObjectHandle, error) {
			return 0, &GoneError{Call: "C_DeriveKey", Code: pkcs11.CKR_DEVICE_REMOVED, Effect: "unknown"}
		}}, false, "stopped answering"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.fakeP11 = &fakeP11{}
			tok := &Token{p: tc.p, session: 1, id: TokenIdentity{Label: "fake"}}
			_, err := tok.AgreementMAC(key, point, []byte("challenge"))
			if err == nil || errors.Is(err, ErrNoAgreement) != tc.unavailable || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v: ErrNoAgreement %t, want %t and %q", err, errors.Is(err, ErrNoAgreement), tc.unavailable, tc.want)
			}
			if !tc.unavailable && !errors.Is(err, ErrTokenUnresponsive) {
				t.Errorf("a token that stopped answering is not ErrTokenUnresponsive: %v", err)
			}
			if tc.p.signed {
				t.Error("the token was asked to HMAC under a secret it did not make as asked")
			}
			if tc.p.extractable && (len(tc.p.destroyed) != 1 || tc.p.destroyed[0] != 42) {
				t.Errorf("the derived secret was not destroyed: %v", tc.p.destroyed)
			}
		})
	}
}
