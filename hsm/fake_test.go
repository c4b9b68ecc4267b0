package hsm

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

// fakeP11 is a PKCS11 whose calls succeed with canned values unless a
// function field overrides them. It records destroyed objects.
type fakeP11 struct {
	PKCS11    // nil: any call not overridden panics, so tests see unexpected calls
	tokens    map[uint]pkcs11.TokenInfo
	login     func(pin string) error
	wrap      func() ([]byte, error)
	created   []pkcs11.ObjectHandle
	destroyed []pkcs11.ObjectHandle
	logins    int
}

func (f *fakeP11) GetSlotList(bool) ([]uint, error) {
	var s []uint
	for k := range f.tokens {
		s = append(s, k)
	}
	return s, nil
}
func (f *fakeP11) GetTokenInfo(slot uint) (pkcs11.TokenInfo, error) { return f.tokens[slot], nil }
func (f *fakeP11) OpenSession(uint, uint) (pkcs11.SessionHandle, error) {
	return 1, nil
}
func (f *fakeP11) CloseSession(pkcs11.SessionHandle) error { return nil }
func (f *fakeP11) Logout(pkcs11.SessionHandle) error       { return nil }
func (f *fakeP11) Login(_ pkcs11.SessionHandle, _ uint, pin string) error {
	f.logins++
	return f.login(pin)
}
func (f *fakeP11) CreateObject(pkcs11.SessionHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	h := pkcs11.ObjectHandle(100 + len(f.created))
	f.created = append(f.created, h)
	return h, nil
}
func (f *fakeP11) DestroyObject(_ pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
	f.destroyed = append(f.destroyed, h)
	return nil
}
func (f *fakeP11) WrapKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, pkcs11.ObjectHandle) ([]byte, error) {
	return f.wrap()
}

func fakeToken(f *fakeP11) *Token {
	return &Token{p: f, session: 1, id: TokenIdentity{Label: "fake"}}
}

func testPub() *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}
}

func TestWrapOAEPDestroysTheSessionKeyWhenTheWrapFails(t *testing.T) {
	f := &fakeP11{wrap: func() ([]byte, error) { return nil, pkcs11.Error(pkcs11.CKR_KEY_NOT_WRAPPABLE) }}
	_, err := fakeToken(f).WrapOAEP(&Key{Handle: 7}, testPub(), OAEPSHA1)
	var perr *Error
	if !errors.As(err, &perr) || perr.Call != "C_WrapKey" || perr.Code != pkcs11.CKR_KEY_NOT_WRAPPABLE {
		t.Fatalf("got %v, want C_WrapKey CKR_KEY_NOT_WRAPPABLE", err)
	}
	if !strings.Contains(err.Error(), "CKA_WRAP_WITH_TRUSTED") {
		t.Errorf("advice missing from %q", err)
	}
	if len(f.created) != 1 || len(f.destroyed) != 1 || f.created[0] != f.destroyed[0] {
		t.Errorf("session wrapping key created %v, destroyed %v: it must be destroyed", f.created, f.destroyed)
	}
}

func TestWrapOAEPRejectsOutputOfTheWrongLength(t *testing.T) {
	f := &fakeP11{wrap: func() ([]byte, error) { return make([]byte, 40), nil }}
	_, err := fakeToken(f).WrapOAEP(&Key{Handle: 7}, testPub(), OAEPSHA256)
	if !errors.Is(err, ErrWrapUnsupported) || !strings.Contains(err.Error(), "not the 256-byte modulus length") {
		t.Fatalf("got %v, want a length error", err)
	}
}

func TestLoginIsNeverRetried(t *testing.T) {
	f := &fakeP11{login: func(string) error { return pkcs11.Error(pkcs11.CKR_PIN_INCORRECT) }}
	err := fakeToken(f).Login("9999")
	if f.logins != 1 {
		t.Errorf("C_Login called %d times, want exactly 1", f.logins)
	}
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)) {
		t.Errorf("errors.Is(CKR_PIN_INCORRECT) false for %v", err)
	}
}

func TestLoginRefusesAnEmptyPINWithoutCallingTheToken(t *testing.T) {
	f := &fakeP11{}
	err := fakeToken(f).Login("")
	if !errors.Is(err, ErrNoPIN) || f.logins != 0 {
		t.Fatalf("got %v after %d logins, want ErrNoPIN and no C_Login", err, f.logins)
	}
}

func TestLockedPINAdvice(t *testing.T) {
	f := &fakeP11{login: func(string) error { return pkcs11.Error(pkcs11.CKR_PIN_LOCKED) }}
	err := fakeToken(f).Login("1234")
	if got := err.Error(); got != "C_Login: CKR_PIN_LOCKED (0xa4): the user PIN is locked after too many failures; the token's Security Officer must unlock or reset it" {
		t.Errorf("message: %q", got)
	}
}

func TestAmbiguousTokenLabel(t *testing.T) {
	f := &fakeP11{tokens: map[uint]pkcs11.TokenInfo{
		1: {Label: "ceremony", SerialNumber: "a", Flags: pkcs11.CKF_TOKEN_INITIALIZED},
		2: {Label: "ceremony", SerialNumber: "b", Flags: pkcs11.CKF_TOKEN_INITIALIZED},
	}}
	_, err := openToken(f, TokenSelector{Label: "ceremony"})
	if !errors.Is(err, ErrKeyAmbiguous) || !strings.Contains(err.Error(), "--token-serial") {
		t.Fatalf("got %v, want an ambiguity error pointing at --token-serial", err)
	}
}

func TestTokenSelectorNeedsExactlyOne(t *testing.T) {
	slot := uint(0)
	tests := []struct {
		name    string
		sel     TokenSelector
		wantErr string
	}{
		{"ok label", TokenSelector{Label: "x"}, ""},
		{"ok slot zero", TokenSelector{Slot: &slot}, ""},
		{"fail none", TokenSelector{}, "no token chosen"},
		{"fail two", TokenSelector{Label: "x", Serial: "y"}, "more than one way"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sel.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNSSVendorCodesAreNamed(t *testing.T) {
	err := newError("C_Initialize", pkcs11.Error(0xCE534351))
	if got := err.Error(); !strings.HasPrefix(got, "C_Initialize: CKR_NSS_CERTDB_FAILED (0xce534351): NSS cannot open") {
		t.Errorf("message: %q", got)
	}
}

func TestLoadModuleRefusesNSSWithoutItsDatabase(t *testing.T) {
	// No library is loaded: the path is refused before dlopen, because NSS
	// softokn crashes the process without configdir.
	_, err := LoadModule(ModuleConfig{Path: "/usr/lib/x86_64-linux-gnu/libsoftokn3.so"})
	if !errors.Is(err, ErrModule) || !strings.Contains(err.Error(), "--module-params") {
		t.Fatalf("got %v, want a refusal naming --module-params", err)
	}
}

// TestLoginPINZeroesThePIN: the token is given the PIN, and the byte slice
// that held it is all zeros afterwards, whether C_Login succeeded or not.
func TestLoginPINZeroesThePIN(t *testing.T) {
	for _, loginErr := range []error{nil, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)} {
		var seen string
		f := &fakeP11{login: func(pin string) error { seen = strings.Clone(pin); return loginErr }}
		pin := []byte("482916")
		err := fakeToken(f).LoginPIN(pin)
		if (err == nil) != (loginErr == nil) || seen != "482916" {
			t.Fatalf("LoginPIN: err %v, token saw %q", err, seen)
		}
		if !bytes.Equal(pin, make([]byte, len(pin))) {
			t.Errorf("the PIN slice is %q after LoginPIN (C_Login error %v), want zeros", pin, loginErr)
		}
		so := []byte("135790")
		_ = fakeToken(f).LoginSOPIN(so)
		if !bytes.Equal(so, make([]byte, len(so))) {
			t.Errorf("the SO PIN slice is %q after LoginSOPIN, want zeros", so)
		}
	}
}
