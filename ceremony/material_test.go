package ceremony

import (
	"reflect"
	"strings"
	"testing"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestMaterialsAreAWSKeySpecs: the key-spec names a ceremony file has
// always used are AWS KMS's, so every file means the same as before only
// while each name names the same HSM key as AWS's adapter imports under
// it, in the same order (the order messages list them in).
func TestMaterialsAreAWSKeySpecs(t *testing.T) {
	if len(materials) != len(awskms.KeySpecs) {
		t.Fatalf("%d materials, %d AWS key specs", len(materials), len(awskms.KeySpecs))
	}
	for i, m := range materials {
		s := awskms.KeySpecs[i]
		if m.Name != string(s.Name) || !reflect.DeepEqual(m.HSM, s.HSM) {
			t.Errorf("materials[%d] = %s %v; AWS's key spec %d is %s %v", i, m.Name, m.HSM, i, s.Name, s.HSM)
		}
	}
	if specNames() != awskms.SpecNames() {
		t.Errorf("specNames() = %q; AWS's are %q", specNames(), awskms.SpecNames())
	}
}

func TestParseMaterial(t *testing.T) {
	m, err := parseMaterial(" ecc_nist_p384 ")
	if err != nil || m.Name != "ECC_NIST_P384" || m.HSM.Curve.Name != "P-384" {
		t.Errorf("parseMaterial = %+v, %v", m, err)
	}
	for _, bad := range []string{"", "AES_256", "SM2", "ECC_NIST_EDWARDS25519"} {
		if _, err := parseMaterial(bad); err == nil || !strings.Contains(err.Error(), "choose one of SYMMETRIC_DEFAULT") {
			t.Errorf("parseMaterial(%q) = %v; want an error listing the names", bad, err)
		}
	}
}
