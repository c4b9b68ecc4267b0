package hsm_test

import (
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// openSoftHSM provisions a fresh SoftHSM2 token and returns it logged in.
func openSoftHSM(t *testing.T) *hsm.Token {
	t.Helper()
	tok := softhsm.NewTestToken(t, "hsm-test")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tk, err := m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	if err := tk.Login(softhsm.TestPIN); err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestGeneratedKeyHasTheTemplatePolicy(t *testing.T) {
	tk := openSoftHSM(t)
	k, err := tk.GenerateAES256("payments", false)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Sensitive || !k.Extractable || k.WrapWithTrusted {
		t.Errorf("policy: sensitive=%v extractable=%v wrapWithTrusted=%v, want true/true/false", k.Sensitive, k.Extractable, k.WrapWithTrusted)
	}
	if k.KeyType != pkcs11.CKK_AES || k.ValueLen != 32 {
		t.Errorf("key type %#x len %d, want AES 32", k.KeyType, k.ValueLen)
	}
	if len(k.ID) != hsm.KeyIDBytes {
		t.Errorf("CKA_ID is %d bytes, want %d", len(k.ID), hsm.KeyIDBytes)
	}
	if len(k.CheckValue) != 3 {
		t.Errorf("SoftHSM2 gives a 3-byte CKA_CHECK_VALUE for AES keys; got %x", k.CheckValue)
	}
	if err := hsm.CheckAES256ForImport(k); err != nil {
		t.Errorf("generated key not importable: %v", err)
	}
	byID, err := tk.FindSecretKey(hsm.KeySelector{ID: k.ID})
	if err != nil {
		t.Fatal(err)
	}
	if byID.Label != "payments" || byID.CheckValueHex() != k.CheckValueHex() {
		t.Errorf("found by id: %q %s, want payments %s", byID.Label, byID.CheckValueHex(), k.CheckValueHex())
	}
}

func TestGenerateRefusesALabelInUse(t *testing.T) {
	tk := openSoftHSM(t)
	if _, err := tk.GenerateAES256("dup", false); err != nil {
		t.Fatal(err)
	}
	_, err := tk.GenerateAES256("dup", false)
	if !errors.Is(err, hsm.ErrLabelExists) {
		t.Fatalf("second generate: got %v, want ErrLabelExists", err)
	}
}

func TestFindMissingKeyIsNotFound(t *testing.T) {
	tk := openSoftHSM(t)
	_, err := tk.FindSecretKey(hsm.KeySelector{Label: "absent"})
	if !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("got %v, want ErrKeyNotFound", err)
	}
}

func TestWrongPINNamesTheCallAndCode(t *testing.T) {
	tok := softhsm.NewTestToken(t, "pin-test")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(hsm.TokenSelector{Serial: tok.Serial})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	err = tk.Login("0000")
	var perr *hsm.Error
	if !errors.As(err, &perr) || perr.Code != pkcs11.CKR_PIN_INCORRECT || perr.Call != "C_Login" {
		t.Fatalf("got %v, want C_Login CKR_PIN_INCORRECT", err)
	}
	want := "C_Login: CKR_PIN_INCORRECT (0xa0): the PIN is wrong"
	if got := err.Error(); !strings.HasPrefix(got, want) {
		t.Errorf("message %q does not start with %q", got, want)
	}
}

func TestUnknownTokenListsWhatIsPresent(t *testing.T) {
	tok := softhsm.NewTestToken(t, "present")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.OpenToken(hsm.TokenSelector{Label: "absent"})
	if !errors.Is(err, hsm.ErrTokenNotFound) {
		t.Fatalf("got %v, want ErrTokenNotFound", err)
	}
	if want := `label "present"`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not list the present token (%s)", err, want)
	}
}

func TestSoftHSMProbe(t *testing.T) {
	tk := openSoftHSM(t)
	if err := tk.ProbeOAEP(hsm.OAEPSHA1); err != nil {
		t.Errorf("SoftHSM2 wraps with OAEP SHA-1: probe said %v", err)
	}
	// software-tokens.md: SoftHSM2 2.6.1 answers CKR_ARGUMENTS_BAD for OAEP SHA-256.
	if err := tk.ProbeOAEP(hsm.OAEPSHA256); !errors.Is(err, hsm.ErrWrapUnsupported) {
		t.Errorf("SoftHSM2 2.6.1 cannot wrap with OAEP SHA-256: probe said %v", err)
	}
}

// TestWrapOAEPDecryptsToTheKeyWithItsCheckValue plays KMS: it holds the
// wrapping private key, decrypts what the token wrapped, and checks the
// result against the token's own key check value.
func TestWrapOAEPDecryptsToTheKeyWithItsCheckValue(t *testing.T) {
	tk := openSoftHSM(t)
	k, err := tk.GenerateAES256("wrapme", false)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := tk.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1)
	if err != nil {
		t.Fatal(err)
	}
	material, err := rsa.DecryptOAEP(sha1.New(), nil, priv, wrapped, nil)
	if err != nil {
		t.Fatalf("KMS side cannot decrypt the token's OAEP SHA-1 output: %v", err)
	}
	if len(material) != 32 {
		t.Fatalf("unwrapped %d bytes, want 32", len(material))
	}
	block, _ := aes.NewCipher(material)
	var kcv [16]byte
	block.Encrypt(kcv[:], kcv[:])
	if got, want := kcv[:3], k.CheckValue; string(got) != string(want) {
		t.Errorf("check value of unwrapped material %X, token says %X", got, want)
	}
}
