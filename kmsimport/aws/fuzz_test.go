package aws

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// FuzzReadTransferFiles feeds arbitrary bytes to the bundle and
// wrapped-material parsers, as a file carried between hosts could hold:
// each must return a result or an error that stays short, never panic.
func FuzzReadTransferFiles(f *testing.F) {
	f.Add([]byte(`{"Format":"` + kmsimport.BundleFormat + `","KeyId":"k"}`))
	f.Add([]byte(`{"Format":"` + kmsimport.WrappedFormat + `","HsmKey":{"KeyId":"zz"}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"KeyId":1}`))
	f.Add([]byte(`{"ParametersValidTo":"tomorrow"}`))
	f.Add([]byte(`{"PublicKey":"!!"}{}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "f.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Skip()
		}
		if _, _, err := kmsimport.ReadBundle(p, time.Now()); err != nil && len(err.Error()) > 2000 {
			t.Fatalf("bundle error is %d bytes long", len(err.Error()))
		}
		if _, err := kmsimport.ReadWrapped(p, nil, ""); err != nil && len(err.Error()) > 2000 {
			t.Fatalf("wrapped error is %d bytes long", len(err.Error()))
		}
		_, _, _ = ReadBundleForPairing(p)
	})
}

// FuzzRules checks the input rules on arbitrary strings: a refusal is
// always a ValidationError with a short message.
func FuzzRules(f *testing.F) {
	f.Add("team", "payments")
	f.Add("aws:x", "")
	f.Add("alias/aws/x", "\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, err := range []error{CheckTag(a, b), CheckAlias(a), CheckDescription(b), kmsimport.CheckKeyLabel(a), CheckKeyMaterialDescription(b)} {
			if err == nil {
				continue
			}
			if _, ok := err.(*kmsimport.ValidationError); !ok {
				t.Fatalf("%T is not a *ValidationError", err)
			}
			if len(err.Error()) > 600 {
				t.Fatalf("error is %d bytes long", len(err.Error()))
			}
		}
	})
}
