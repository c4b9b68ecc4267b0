package azkvemu

import (
	"path/filepath"
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
)

// TestCreatedRSAKeysFromTheTestKeyCache: a second vault over the same test
// key cache gives its created RSA keys the first one's pairs, in order,
// and no vault gives two of its keys the same pair.
func TestCreatedRSAKeysFromTheTestKeyCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	run := func() (a, b string) {
		keys, err := emukeys.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		s := New(KeyVault)
		s.TestKeys = keys
		for _, name := range []string{"a", "b"} {
			if _, e := s.create(name, []byte(`{"kty":"RSA-HSM","key_size":2048,"key_ops":["import"]}`)); e != nil {
				t.Fatalf("create %s: %+v", name, e)
			}
		}
		a, b = s.keys["a"][0].rsa.N.String(), s.keys["b"][0].rsa.N.String()
		if a == b {
			t.Fatal("two keys of one vault have the same RSA pair")
		}
		return a, b
	}
	a1, b1 := run()
	a2, b2 := run()
	if a1 != a2 || b1 != b2 {
		t.Fatal("the second vault did not take the first one's cached pairs in order")
	}
}
