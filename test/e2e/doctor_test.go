package e2e

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestDoctorChangesNothingAndReportsSoftHSM runs kmsbridge doctor on a
// SoftHSM2 token holding a key and checks the token's objects and their
// attributes are identical before and after, and that the report says
// what SoftHSM2 2.6 can do (docs/tokens.md, the README matrix).
func TestDoctorChangesNothingAndReportsSoftHSM(t *testing.T) {
	tok := newToken(t)
	tk := openInProcess(t, tok)
	if _, err := tk.Generate("existing", hsm.AES256(), false); err != nil {
		t.Fatal(err)
	}
	before, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	r := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--output", "json")
	if r.Code != 0 {
		t.Fatalf("doctor: exit %d\n%s", r.Code, r.Stderr)
	}
	after, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("doctor changed the token:\nbefore %v\nafter  %v", before, after)
	}
	var res struct {
		Slots  []hsm.SlotInfo
		Report awskms.DoctorReport
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, r.Stdout)
	}
	rep := res.Report
	if want := len(awskms.KeySpecs) * len(awskms.Wrappings) * 3; len(rep.Rows) != want {
		t.Errorf("%d rows, want every key spec × algorithm × wrapping key spec (%d)", len(rep.Rows), want)
	}
	cell := func(spec, alg, wks string) awskms.DoctorRow {
		for _, row := range rep.Rows {
			if row.KeySpec == spec && row.WrappingAlgorithm == alg && row.WrappingKeySpec == wks {
				return row
			}
		}
		t.Fatalf("no row %s %s %s", spec, alg, wks)
		return awskms.DoctorRow{}
	}
	tests := []struct {
		spec, alg, wks string
		imports        bool
		by, why        string
	}{
		{"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSA_4096", true, "", ""},
		{"ECC_NIST_P256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048", true, "", ""},
		{"SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_256", "RSA_2048", false, "token", "CKR_ARGUMENTS_BAD"},
		{"HMAC_224", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048", false, "token", "zero-pads it"},
		{"RSA_2048", "RSAES_OAEP_SHA_1", "RSA_4096", false, "KMS", "too large for RSA-OAEP alone"},
	}
	for _, tt := range tests {
		row := cell(tt.spec, tt.alg, tt.wks)
		if row.Imports != tt.imports || row.RefusedBy != tt.by || !strings.Contains(row.Reason, tt.why) {
			t.Errorf("%s %s %s: %+v, want imports %v, refused by %q with %q", tt.spec, tt.alg, tt.wks, row, tt.imports, tt.by, tt.why)
		}
	}
	if !strings.HasPrefix(rep.DualControl, "yes") || !rep.CheckValue || len(rep.Mechanisms) == 0 {
		t.Errorf("dual control %q, check value %v, %d mechanisms: SoftHSM2 enforces dual control, gives check values and lists mechanisms", rep.DualControl, rep.CheckValue, len(rep.Mechanisms))
	}
	// A key-agreement key is proved by the token's own ECDH too, which
	// SoftHSM2 was checked to do on a throwaway pair (left in no token).
	for _, spec := range []string{"ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"} {
		if p := rep.Proof[spec]; !strings.Contains(p, "as KEY_AGREEMENT: KMS DeriveSharedSecret equals a peer's ECDH with the token's public key and the token's own ECDH") {
			t.Errorf("%s proof %q does not say the token's own ECDH was checked", spec, p)
		}
	}
	if p := rep.Proof["ECC_SECG_P256K1"]; strings.Contains(p, "KEY_AGREEMENT") {
		t.Errorf("secp256k1 has no key agreement in KMS, yet its proof says %q", p)
	}
	// The cost that grows with the token: what it holds (the one key) and
	// what its label search takes.
	if rep.Scale.Objects != len(before) || rep.Scale.SearchMillis <= 0 {
		t.Errorf("scale %+v: want the token's %d objects and a search time", rep.Scale, len(before))
	}
	// --key-spec limits the table and the probes to the specs it names,
	// and says so; the scale is the same.
	text := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--key-spec", "symmetric_default", "--key-spec", "HMAC_256")
	if !strings.Contains(text.Stdout, fmt.Sprintf("scale                     %d objects; one search for a label takes", len(before))) {
		t.Errorf("doctor's table does not say the token's scale:\n%s", text.Stdout)
	}
	if !strings.Contains(text.Stdout, "(only key specs SYMMETRIC_DEFAULT, HMAC_256 were checked, as --key-spec asked)") {
		t.Errorf("doctor --key-spec does not say it checked only those key specs:\n%s", text.Stdout)
	}
	for _, other := range []string{"RSA_2048", "ECC_NIST_P256", "HMAC_384"} {
		// A row or a proof line of that key spec (RSA_2048 is also a
		// wrapping key spec, in other rows).
		if regexp.MustCompile(`(?m)^\s*` + other + `\s`).MatchString(text.Stdout) {
			t.Errorf("doctor --key-spec SYMMETRIC_DEFAULT --key-spec HMAC_256 shows %s:\n%s", other, text.Stdout)
		}
	}
	if r := kmsbridge(t, tok, "doctor", "--token-label", tok.Label, "--key-spec", "AES_256"); r.Code != 2 || !strings.Contains(r.Stderr, `--key-spec: invalid input: unknown key spec "AES_256"`) {
		t.Errorf("doctor --key-spec AES_256: exit %d, want 2 naming the unknown key spec\n%s", r.Code, r.Stderr)
	}
}

// TestDoctorWithoutATokenListsSlots lists the module's tokens without
// logging in.
func TestDoctorWithoutATokenListsSlots(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	r := kmsbridge(t, tok, "doctor")
	if r.Code != 0 || !strings.Contains(r.Stdout, `token "ceremony" serial `+tok.Serial) || !strings.Contains(r.Stdout, "Choose a token") {
		t.Errorf("doctor without a token: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
}
