package e2e

import (
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/test/localkms"
)

// TestCrossCheckWithLocalKMS runs the same import against
// nsmithuk/local-kms, an emulator nobody here wrote, which supports
// SYMMETRIC_DEFAULT with OAEP under RSA_2048 and really decrypts, then
// round-trips Encrypt/Decrypt through it.
func TestCrossCheckWithLocalKMS(t *testing.T) {
	t.Parallel()
	endpoint := localkms.Start(t)
	tok := newToken(t)
	res := importJSON(t, tok, "--token-label", tok.Label, "--endpoint-url", endpoint, "--allow-endpoint", endpoint, "--region", localkms.Region,
		"--wrapping-key-spec", "RSA_2048", "--key-label", "crosscheck", "--generate", "--valid-to", validTo(24*time.Hour))
	if res.KeyState != "Enabled" || !res.Verification.EncryptDecrypt {
		t.Fatalf("local-kms import: state %s verification %+v", res.KeyState, res.Verification)
	}
	roundTrip(t, kmsClient(endpoint), res.KeyId)
}
