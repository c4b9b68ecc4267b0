package hsm

import (
	"crypto/rsa"
	"math/big"
	"testing"

	"github.com/miekg/pkcs11"
)

// attrs indexes a template by attribute type, failing on duplicates.
func attrs(t *testing.T, tmpl []*pkcs11.Attribute) map[uint][]byte {
	t.Helper()
	m := map[uint][]byte{}
	for _, a := range tmpl {
		if _, dup := m[a.Type]; dup {
			t.Fatalf("attribute %#x set twice", a.Type)
		}
		m[a.Type] = a.Value
	}
	return m
}

func wantBool(t *testing.T, m map[uint][]byte, typ uint, name string, want bool) {
	t.Helper()
	v, ok := m[typ]
	if !ok {
		t.Errorf("%s not set explicitly", name)
		return
	}
	if got := boolean(v); got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

func TestAES256KeyTemplate(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		m := attrs(t, AES256KeyTemplate("payments-2026", []byte{1, 2, 3}, trusted))
		wantBool(t, m, pkcs11.CKA_TOKEN, "CKA_TOKEN", true)
		wantBool(t, m, pkcs11.CKA_PRIVATE, "CKA_PRIVATE", true)
		wantBool(t, m, pkcs11.CKA_SENSITIVE, "CKA_SENSITIVE", true)
		wantBool(t, m, pkcs11.CKA_EXTRACTABLE, "CKA_EXTRACTABLE", true)
		wantBool(t, m, pkcs11.CKA_WRAP_WITH_TRUSTED, "CKA_WRAP_WITH_TRUSTED", trusted)
		for typ, name := range map[uint]string{
			pkcs11.CKA_ENCRYPT: "CKA_ENCRYPT", pkcs11.CKA_DECRYPT: "CKA_DECRYPT",
			pkcs11.CKA_SIGN: "CKA_SIGN", pkcs11.CKA_VERIFY: "CKA_VERIFY",
			pkcs11.CKA_WRAP: "CKA_WRAP", pkcs11.CKA_UNWRAP: "CKA_UNWRAP",
			pkcs11.CKA_DERIVE: "CKA_DERIVE",
		} {
			wantBool(t, m, typ, name, false)
		}
		if got := ulong(m[pkcs11.CKA_VALUE_LEN]); got != 32 {
			t.Errorf("CKA_VALUE_LEN = %d, want 32", got)
		}
		if got := ulong(m[pkcs11.CKA_KEY_TYPE]); got != pkcs11.CKK_AES {
			t.Errorf("CKA_KEY_TYPE = %#x, want CKK_AES", got)
		}
		if string(m[pkcs11.CKA_LABEL]) != "payments-2026" || string(m[pkcs11.CKA_ID]) != "\x01\x02\x03" {
			t.Errorf("label/id not carried: %q %x", m[pkcs11.CKA_LABEL], m[pkcs11.CKA_ID])
		}
		if _, ok := m[pkcs11.CKA_VALUE]; ok {
			t.Error("template must never carry CKA_VALUE")
		}
	}
}

func TestWrappingPublicKeyTemplateIsASessionWrapOnlyKey(t *testing.T) {
	pub := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}
	m := attrs(t, WrappingPublicKeyTemplate(pub))
	wantBool(t, m, pkcs11.CKA_TOKEN, "CKA_TOKEN", false)
	wantBool(t, m, pkcs11.CKA_WRAP, "CKA_WRAP", true)
	wantBool(t, m, pkcs11.CKA_ENCRYPT, "CKA_ENCRYPT", false)
	wantBool(t, m, pkcs11.CKA_VERIFY, "CKA_VERIFY", false)
	if got := new(big.Int).SetBytes(m[pkcs11.CKA_MODULUS]); got.Cmp(pub.N) != 0 {
		t.Error("modulus not carried")
	}
	if got := new(big.Int).SetBytes(m[pkcs11.CKA_PUBLIC_EXPONENT]); got.Int64() != 65537 {
		t.Errorf("public exponent %v, want 65537", got)
	}
}

func TestProbeKeyTemplateIsASessionObject(t *testing.T) {
	m := attrs(t, ProbeKeyTemplate())
	wantBool(t, m, pkcs11.CKA_TOKEN, "CKA_TOKEN", false)
	wantBool(t, m, pkcs11.CKA_EXTRACTABLE, "CKA_EXTRACTABLE", true)
}
