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
