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

func TestHMACKeyTemplateMaySignAndNothingElse(t *testing.T) {
	m := attrs(t, SecretKeyTemplate(HMACKey(48), "mac", []byte{9}, false))
	if got := ulong(m[pkcs11.CKA_KEY_TYPE]); got != pkcs11.CKK_GENERIC_SECRET {
		t.Errorf("CKA_KEY_TYPE = %#x, want CKK_GENERIC_SECRET", got)
	}
	if got := ulong(m[pkcs11.CKA_VALUE_LEN]); got != 48 {
		t.Errorf("CKA_VALUE_LEN = %d, want 48", got)
	}
	wantBool(t, m, pkcs11.CKA_SIGN, "CKA_SIGN", true)
	wantBool(t, m, pkcs11.CKA_SENSITIVE, "CKA_SENSITIVE", true)
	wantBool(t, m, pkcs11.CKA_EXTRACTABLE, "CKA_EXTRACTABLE", true)
	for typ, name := range map[uint]string{pkcs11.CKA_VERIFY: "CKA_VERIFY", pkcs11.CKA_ENCRYPT: "CKA_ENCRYPT", pkcs11.CKA_DERIVE: "CKA_DERIVE"} {
		wantBool(t, m, typ, name, false)
	}
}

func TestKeyPairTemplates(t *testing.T) {
	for _, p := range []KeyParams{RSAKey(3072), ECKey(P384)} {
		pub, priv := KeyPairTemplates(p, "sig", []byte{7, 7}, true)
		pm, km := attrs(t, pub), attrs(t, priv)
		wantBool(t, pm, pkcs11.CKA_TOKEN, "public CKA_TOKEN", true)
		wantBool(t, pm, pkcs11.CKA_PRIVATE, "public CKA_PRIVATE", false)
		wantBool(t, km, pkcs11.CKA_TOKEN, "private CKA_TOKEN", true)
		wantBool(t, km, pkcs11.CKA_PRIVATE, "private CKA_PRIVATE", true)
		wantBool(t, km, pkcs11.CKA_SENSITIVE, "private CKA_SENSITIVE", true)
		wantBool(t, km, pkcs11.CKA_EXTRACTABLE, "private CKA_EXTRACTABLE", true)
		wantBool(t, km, pkcs11.CKA_WRAP_WITH_TRUSTED, "private CKA_WRAP_WITH_TRUSTED", true)
		for typ, name := range map[uint]string{pkcs11.CKA_SIGN: "CKA_SIGN", pkcs11.CKA_DECRYPT: "CKA_DECRYPT", pkcs11.CKA_UNWRAP: "CKA_UNWRAP", pkcs11.CKA_DERIVE: "CKA_DERIVE"} {
			wantBool(t, km, typ, "private "+name, false)
		}
		if string(pm[pkcs11.CKA_ID]) != string(km[pkcs11.CKA_ID]) || string(pm[pkcs11.CKA_LABEL]) != "sig" {
			t.Errorf("%s: the halves must share label and CKA_ID", p)
		}
		switch p.KeyType {
		case pkcs11.CKK_RSA:
			if got := ulong(pm[pkcs11.CKA_MODULUS_BITS]); got != 3072 {
				t.Errorf("CKA_MODULUS_BITS = %d", got)
			}
		case pkcs11.CKK_EC:
			if c := curveOf(pm[pkcs11.CKA_EC_PARAMS]); c == nil || c.Name != "P-384" {
				t.Errorf("CKA_EC_PARAMS names %v, want P-384", c)
			}
		}
	}
}

func TestEphemeralWrappingKeyIsASessionWrapOnlyKey(t *testing.T) {
	m := attrs(t, EphemeralWrappingKeyTemplate())
	wantBool(t, m, pkcs11.CKA_TOKEN, "CKA_TOKEN", false)
	wantBool(t, m, pkcs11.CKA_WRAP, "CKA_WRAP", true)
	wantBool(t, m, pkcs11.CKA_EXTRACTABLE, "CKA_EXTRACTABLE", true)
	wantBool(t, m, pkcs11.CKA_ENCRYPT, "CKA_ENCRYPT", false)
	wantBool(t, m, pkcs11.CKA_UNWRAP, "CKA_UNWRAP", false)
}
