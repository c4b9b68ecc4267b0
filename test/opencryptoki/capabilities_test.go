package opencryptoki_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// openOCK provisions opencryptoki's soft token and opens it logged in; all
// is closed and wiped when the test ends.
func openOCK(t *testing.T) *hsm.Token {
	t.Helper()
	tok := softhsm.NewOCKTestToken(t, "ock")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tk, err := m.OpenToken(hsm.TokenSelector{Label: "ock"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	if err := tk.Login(softhsm.TestPIN); err != nil {
		t.Fatal(err)
	}
	return tk
}

// docs/tokens.md: what opencryptoki 3.8.1's soft token can and cannot do,
// as the capability probes find it.
func TestOCKCapabilities(t *testing.T) {
	tk := openOCK(t)
	oaep256 := hsm.WrapMethod{OAEP: hsm.OAEPSHA256}
	kindOf := func(err error) (hsm.Kind, bool) {
		var u *hsm.UnsupportedError
		if errors.As(err, &u) {
			return u.Kind, true
		}
		return 0, false
	}
	t.Run("ok AES-256 with RSA-OAEP SHA-256, CKA_WRAP_WITH_TRUSTED left out", func(t *testing.T) {
		warnings, err := tk.Check(hsm.Ask{Key: hsm.AES256(), Generate: true, Wrap: oaep256})
		if err != nil {
			t.Fatal(err)
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "CKA_WRAP_WITH_TRUSTED=false was left out") {
			t.Errorf("warnings %q: want the one adaptation", warnings)
		}
	})
	tests := []struct {
		name string
		ask  hsm.Ask
		kind hsm.Kind
		why  string
	}{
		{"fail RSA-AES: no RFC 5649 mechanism", hsm.Ask{Key: hsm.AES256(), Generate: true, Wrap: hsm.WrapMethod{RSAAES: true, OAEP: hsm.OAEPSHA256}}, hsm.KindWrap, "AES key wrap with padding"},
		{"fail HMAC_224: no HMAC-SHA-224 proof", hsm.Ask{Key: hsm.HMACKey(28), Generate: true, Wrap: oaep256}, hsm.KindProof, "HMAC-224"},
		{"fail EC: cannot generate", hsm.Ask{Key: hsm.ECKey(hsm.P256), Generate: true, Wrap: oaep256}, hsm.KindGenerate, "CKM_EC_KEY_PAIR_GEN"},
		{"fail RSA private key with OAEP", hsm.Ask{Key: hsm.RSAKey(2048), Generate: true, Wrap: oaep256}, hsm.KindWrap, "CKR_KEY_NOT_WRAPPABLE"},
		{"fail dual control", hsm.Ask{Key: hsm.AES256(), Generate: true, Wrap: oaep256, DualControl: true}, hsm.KindDualControl, "rejects the CKA_WRAP_WITH_TRUSTED attribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tk.Check(tt.ask)
			if k, ok := kindOf(err); !ok || k != tt.kind || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("got %v, want kind %d naming %q", err, tt.kind, tt.why)
			}
		})
	}
	t.Run("ok HMAC_256 generated and read back as asked", func(t *testing.T) {
		k, err := tk.Generate("ock-hmac", hsm.HMACKey(32), false)
		if err != nil {
			t.Fatal(err)
		}
		if k.WrapWithTrusted || !k.Sensitive || !k.Extractable {
			t.Errorf("key %+v: want sensitive, extractable, no wrap-with-trusted", k)
		}
	})
	t.Run("fail Generate with dual control, nothing made", func(t *testing.T) {
		_, err := tk.Generate("ock-dual", hsm.AES256(), true)
		if k, ok := kindOf(err); !ok || k != hsm.KindDualControl {
			t.Fatalf("got %v, want the dual-control refusal", err)
		}
		if inUse, _ := tk.LabelInUse("ock-dual"); inUse {
			t.Error("a refused generation left an object behind")
		}
	})
}
