package opencryptoki_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestOCKDoctorReportsTheAdaptationAndChangesNothing runs the doctor's
// probes on opencryptoki's soft token holding one key: the objects and
// their attributes are the same after, and the report says what
// docs/tokens.md says.
func TestOCKDoctorReportsTheAdaptationAndChangesNothing(t *testing.T) {
	tk := openOCK(t)
	if _, err := tk.Generate("existing", hsm.AES256(), false); err != nil {
		t.Fatal(err)
	}
	before, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := awskms.Doctor(tk)
	if err != nil {
		t.Fatal(err)
	}
	after, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 || !reflect.DeepEqual(before, after) {
		t.Errorf("doctor changed the token: %d objects before %v, after %v", len(before), before, after)
	}
	if len(rep.Adaptations) != 1 || !strings.Contains(rep.Adaptations[0], "CKA_WRAP_WITH_TRUSTED=false was left out") {
		t.Errorf("adaptations %q: want the CKA_WRAP_WITH_TRUSTED one", rep.Adaptations)
	}
	if !strings.HasPrefix(rep.DualControl, "no: ") {
		t.Errorf("dual control %q: opencryptoki's soft token cannot hold CKA_WRAP_WITH_TRUSTED", rep.DualControl)
	}
	// It generates AES, HMAC and RSA keys but no EC key: doctor claims
	// only what it generated on throwaway keys.
	if !strings.HasPrefix(rep.Generates, "some: ") || !strings.Contains(rep.Generates, "CKM_EC_KEY_PAIR_GEN") {
		t.Errorf("generates %q: want some, naming the missing CKM_EC_KEY_PAIR_GEN", rep.Generates)
	}
	if !strings.HasPrefix(rep.Proof["ECC_NIST_P256"], "none: ") {
		t.Errorf("ECC_NIST_P256 proof %q: no EC key could be made to check it on", rep.Proof["ECC_NIST_P256"])
	}
	if !strings.HasPrefix(rep.Proof["HMAC_224"], "none: ") {
		t.Errorf("HMAC_224 proof %q: the token has no HMAC-SHA-224", rep.Proof["HMAC_224"])
	}
	imports := 0
	for _, row := range rep.Rows {
		if row.Imports {
			imports++
			if !strings.HasPrefix(row.WrappingAlgorithm, "RSAES_OAEP") || !(row.KeySpec == "SYMMETRIC_DEFAULT" || strings.HasPrefix(row.KeySpec, "HMAC_")) {
				t.Errorf("row %+v imports; docs/tokens.md says only AES and HMAC_256/384/512 with RSA-OAEP do", row)
			}
		}
	}
	// 4 key specs × 2 OAEP hashes × 3 wrapping key specs.
	if imports != 24 {
		t.Errorf("%d combinations import, want 24", imports)
	}
}
