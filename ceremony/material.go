package ceremony

import (
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Material is the HSM key a ceremony key names, as every cloud sees it:
// a cloud-neutral kind (algorithm and size or curve, hsm.KeyParams) that
// each target's adapter maps to its own cloud's spec (AWS KMS's key spec,
// Cloud KMS's algorithm, Key Vault's key type).
type Material struct {
	// Name is the key's key-spec as the file gives it, in upper case.
	Name string
	// HSM is the key the token holds as the master copy.
	HSM hsm.KeyParams
}

// materials are the kinds of key a ceremony file's key-spec names. The
// names are the ones ceremony files have always used, which are AWS KMS's
// key spec names, so that every file written before means the same; what
// they name is the HSM key, whichever clouds it goes to.
// TestMaterialsAreAWSKeySpecs keeps them equal to what AWS's adapter
// imports under the same names.
var materials = []Material{
	{"SYMMETRIC_DEFAULT", hsm.AES256()},
	{"HMAC_224", hsm.HMACKey(28)},
	{"HMAC_256", hsm.HMACKey(32)},
	{"HMAC_384", hsm.HMACKey(48)},
	{"HMAC_512", hsm.HMACKey(64)},
	{"RSA_2048", hsm.RSAKey(2048)},
	{"RSA_3072", hsm.RSAKey(3072)},
	{"RSA_4096", hsm.RSAKey(4096)},
	{"ECC_NIST_P256", hsm.ECKey(hsm.P256)},
	{"ECC_NIST_P384", hsm.ECKey(hsm.P384)},
	{"ECC_NIST_P521", hsm.ECKey(hsm.P521)},
	{"ECC_SECG_P256K1", hsm.ECKey(hsm.Secp256k1)},
}

// parseMaterial returns the material the key-spec name s names.
func parseMaterial(s string) (Material, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	for _, m := range materials {
		if m.Name == name {
			return m, nil
		}
	}
	return Material{}, fmt.Errorf("%w: unknown key spec %q: choose one of %s", kmsimport.ErrInvalidInput, kmsimport.Excerpt(s), specNames())
}

// specNames lists the key-spec names a ceremony key may give.
func specNames() string {
	names := make([]string, len(materials))
	for i, m := range materials {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}

// material is the HSM key k's key-spec names.
func (k Key) material() (Material, error) { return parseMaterial(k.KeySpec) }
