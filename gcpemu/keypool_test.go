package gcpemu_test

import (
	"path/filepath"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/kmsbridge/kmsbridge/gcpemu"
	"github.com/kmsbridge/kmsbridge/internal/emukeys"
)

// TestImportJobKeysFromTheTestKeyCache: a second emulator over the same
// test key cache gives its import jobs the first one's key pairs, in
// order, and no emulator gives two of its jobs the same pair.
func TestImportJobKeysFromTheTestKeyCache(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	run := func() (first, second string) {
		keys, err := emukeys.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		srv, c, _ := start(t, gcpemu.Options{TestKeys: keys})
		ring, _ := setup(t, c, kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION, kmspb.CryptoKey_ENCRYPT_DECRYPT, kmspb.ProtectionLevel_SOFTWARE)
		a := newJob(t, srv, c, ring, "job1", kmspb.ImportJob_RSA_OAEP_3072_SHA256_AES_256, kmspb.ProtectionLevel_SOFTWARE)
		b := newJob(t, srv, c, ring, "job2", kmspb.ImportJob_RSA_OAEP_3072_SHA256_AES_256, kmspb.ProtectionLevel_SOFTWARE)
		if a.GetPublicKey().GetPem() == b.GetPublicKey().GetPem() {
			t.Fatal("two import jobs of one emulator have the same key pair")
		}
		return a.GetPublicKey().GetPem(), b.GetPublicKey().GetPem()
	}
	a1, b1 := run()
	a2, b2 := run()
	if a1 != a2 || b1 != b2 {
		t.Fatal("the second emulator did not take the first one's cached key pairs in order")
	}
}
