package hsm_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// openSoftHSM provisions a fresh SoftHSM2 token and returns it logged in.
func openSoftHSM(t *testing.T) *hsm.Token { return benchToken(t) }

// benchToken is openSoftHSM for tests and benchmarks alike.
func benchToken(t testing.TB) *hsm.Token {
	t.Helper()
	tok := softhsm.NewTestToken(t, "hsm-test")
	return openLoggedIn(t, hsm.ModuleConfig{Path: tok.Module}, tok.Label, tok.PIN)
}

// openLoggedIn loads a module, opens the token labelled label and logs in;
// all of it is closed when the test ends.
func openLoggedIn(t testing.TB, cfg hsm.ModuleConfig, label, pin string) *hsm.Token {
	t.Helper()
	m, err := hsm.LoadModule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tk, err := m.OpenToken(hsm.TokenSelector{Label: label})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	if err := tk.Login(pin); err != nil {
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

// FindByLabel answers, with one search, both which key has a label and
// whether any object does, for every case a plan meets.
func TestFindByLabelIsOneSearchForKeyAndLabel(t *testing.T) {
	tk := openSoftHSM(t)
	aes, err := tk.GenerateAES256("aes", false)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tk.Generate("pair", hsm.ECKey(hsm.P256), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		label     string
		p         hsm.KeyParams
		wantID    []byte
		wantInUse bool
	}{
		{"free", hsm.AES256(), nil, false},
		{"aes", hsm.AES256(), aes.ID, true},
		{"pair", hsm.ECKey(hsm.P256), pair.ID, true},
		// Both halves of the pair have the label, neither is a secret key.
		{"pair", hsm.AES256(), nil, true},
		{"aes", hsm.ECKey(hsm.P256), nil, true},
	} {
		k, inUse, err := tk.FindByLabel(c.label, c.p)
		if err != nil {
			t.Errorf("%s as %s: %v", c.label, c.p, err)
			continue
		}
		if inUse != c.wantInUse || (k == nil) != (c.wantID == nil) || k != nil && !bytes.Equal(k.ID, c.wantID) {
			t.Errorf("%s as %s: got key %v, in use %v; want CKA_ID %x, in use %v", c.label, c.p, k, inUse, c.wantID, c.wantInUse)
		}
	}
	// GenerateAfterSearch trusts its caller's search: two keys can end up
	// with one label, which FindByLabel then reports as ambiguous.
	if _, err := tk.GenerateAfterSearch("aes", hsm.AES256(), false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tk.FindByLabel("aes", hsm.AES256()); !errors.Is(err, hsm.ErrKeyAmbiguous) {
		t.Errorf("two secret keys labelled aes: got %v, want ErrKeyAmbiguous", err)
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
	priv := kmsWrappingKey(t)
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

// TestSoftHSMRSAAESWrapOfEveryKeyType wraps one key of each type with the
// composed RSA-AES wrap and unwraps it outside the token, as KMS would.
func TestSoftHSMRSAAESWrapOfEveryKeyType(t *testing.T) {
	tk := openSoftHSM(t)
	if err := tk.ProbeRSAAES(hsm.OAEPSHA1); err != nil {
		t.Fatalf("SoftHSM2 can compose RSA-AES with OAEP SHA-1: %v", err)
	}
	if native, why := tk.NativeRSAAES(hsm.OAEPSHA1); native || !strings.Contains(why, "does not list") {
		t.Errorf("SoftHSM2 2.6 has no CKM_RSA_AES_KEY_WRAP: native=%v (%s)", native, why)
	}
	if err := tk.ProbeRSAAES(hsm.OAEPSHA256); !errors.Is(err, hsm.ErrWrapUnsupported) {
		t.Fatalf("SoftHSM2 2.6 cannot OAEP SHA-256, so no RSA-AES SHA-256 either: %v", err)
	}
	priv := kmsWrappingKey(t)
	for i, p := range []hsm.KeyParams{hsm.AES256(), hsm.HMACKey(64), hsm.RSAKey(2048), hsm.ECKey(hsm.P256), hsm.ECKey(hsm.Secp256k1)} {
		k, err := tk.Generate(fmt.Sprintf("k%d", i), p, false)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if err := hsm.CheckForImport(k, p); err != nil {
			t.Errorf("%s: generated key not importable: %v", p, err)
		}
		blob, err := tk.WrapRSAAES(k, &priv.PublicKey, hsm.OAEPSHA1)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		aesKey, err := rsa.DecryptOAEP(sha1.New(), nil, priv, blob[:256], nil)
		if err != nil || len(aesKey) != 32 {
			t.Fatalf("%s: OAEP part: %v (%d bytes)", p, err, len(aesKey))
		}
		material := opensslUnwrapKWP(t, aesKey, blob[256:])
		switch {
		case p.Secret():
			if len(material) != p.Bytes {
				t.Errorf("%s: unwrapped %d bytes", p, len(material))
			}
		default:
			// SoftHSM2 2.6 zero-pads PKCS#8 to a multiple of 8 (software-tokens.md).
			// The DER's own length says where the padding starts: trimming
			// zero bytes instead would also eat a key whose DER ends in 0x00.
			var outer asn1.RawValue
			pad, err := asn1.Unmarshal(material, &outer)
			if err != nil {
				t.Fatalf("%s: unwrapped material is not DER: %v", p, err)
			}
			der := material[:len(material)-len(pad)]
			if len(pad) > 7 || len(bytes.TrimRight(pad, "\x00")) != 0 {
				t.Errorf("%s: %d bytes after the DER, want at most 7 zero bytes: %x", p, len(pad), pad)
			}
			if _, err := opensslPKey(t, der); err != nil {
				t.Errorf("%s: OpenSSL cannot parse the PKCS#8: %v", p, err)
			}
		}
		if !p.Secret() {
			spki, err := tk.PublicKeyDER(k)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if p.KeyType != pkcs11.CKK_EC || p.Curve.Name != hsm.Secp256k1.Name {
				if _, err := x509.ParsePKIXPublicKey(spki); err != nil {
					t.Errorf("%s: public key DER does not parse: %v", p, err)
				}
			}
		}
	}
}

func TestSoftHSMHMACMatchesGo(t *testing.T) {
	tk := openSoftHSM(t)
	k, err := tk.Generate("mac", hsm.HMACKey(32), false)
	if err != nil {
		t.Fatal(err)
	}
	priv := kmsWrappingKey(t)
	blob, err := tk.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := rsa.DecryptOAEP(sha1.New(), nil, priv, blob, nil)
	mac, err := tk.HMAC(k, crypto.SHA256, []byte("message"))
	if err != nil {
		t.Fatal(err)
	}
	want := hmac.New(sha256.New, secret)
	want.Write([]byte("message"))
	if !hmac.Equal(mac, want.Sum(nil)) {
		t.Error("token HMAC differs from HMAC over the unwrapped key")
	}
}

func opensslUnwrapKWP(t *testing.T, kek, wrapped []byte) []byte {
	t.Helper()
	cmd := exec.Command("openssl", "enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(kek), "-iv", "A65959A6")
	cmd.Stdin = bytes.NewReader(wrapped)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl RFC 5649 unwrap: %v", err)
	}
	return out
}

func opensslPKey(t *testing.T, der []byte) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("openssl", "pkey", "-inform", "DER", "-noout", "-text")
	cmd.Stdin = bytes.NewReader(der)
	return cmd.CombinedOutput()
}

// kmsWrappingKey plays KMS's side of an import: a wrapping key pair whose
// private half the test holds, to decrypt what the token wrapped.
func kmsWrappingKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}
