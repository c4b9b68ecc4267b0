package aws

import (
	"strings"
	"testing"
)

// TestDoctorAdviceNamesOnlyWhatTheTokenDoes: a cell KMS refuses is advised
// only the algorithms and wrapping key specs that import the same key spec
// on this token; on a token without AES key wrap, RSA-AES is never named.
func TestDoctorAdviceNamesOnlyWhatTheTokenDoes(t *testing.T) {
	rows := []DoctorRow{
		{KeySpec: "RSA_2048", WrappingAlgorithm: "RSAES_OAEP_SHA_1", WrappingKeySpec: "RSA_4096", RefusedBy: "KMS", Reason: "too large for RSA-OAEP alone"},
		{KeySpec: "RSA_2048", WrappingAlgorithm: "RSA_AES_KEY_WRAP_SHA_1", WrappingKeySpec: "RSA_4096", RefusedBy: "token", Reason: "no AES key wrap"},
		{KeySpec: "RSA_2048", WrappingAlgorithm: "RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec: "RSA_4096", RefusedBy: "token", Reason: "no AES key wrap"},
		{KeySpec: "HMAC_512", WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048", RefusedBy: "KMS", Reason: "does not fit"},
		{KeySpec: "HMAC_512", WrappingAlgorithm: "RSAES_OAEP_SHA_1", WrappingKeySpec: "RSA_2048", Imports: true},
		{KeySpec: "HMAC_512", WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_3072", Imports: true},
		{KeySpec: "HMAC_512", WrappingAlgorithm: "RSA_AES_KEY_WRAP_SHA_1", WrappingKeySpec: "RSA_2048", RefusedBy: "token"},
	}
	adviseKMSRefusals(rows)
	if r := rows[0].Reason; strings.Contains(r, "RSA_AES") || !strings.Contains(r, "can do none") {
		t.Errorf("RSA_2048 on a token without AES key wrap: %q", r)
	}
	if r := rows[3].Reason; !strings.Contains(r, "RSAES_OAEP_SHA_1") || !strings.Contains(r, "RSA_3072") || strings.Contains(r, "RSA_AES") {
		t.Errorf("HMAC_512 under RSA_2048: %q, want RSAES_OAEP_SHA_1 or RSA_3072, never RSA-AES", r)
	}
}
