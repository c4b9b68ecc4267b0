package azure

import (
	"fmt"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
)

// Request is one import into Key Vault or Managed HSM, from flags alone.
type Request struct {
	// Vault is the vault URL VaultURL accepted.
	Vault string
	// KeyName is the key to import into (a new key, or one kmsbridge
	// imported from this HSM key before).
	KeyName string
	// KEKName is the Key Exchange Key, created when absent; KEKBits its
	// size when created.
	KEKName string
	KEKBits int
	// KeyLabel / KeyID select the HSM key; Generate makes it.
	KeyLabel string
	KeyID    []byte
	Generate bool
	// KeyType is the key to generate: RSA-2048|3072|4096, EC-P256|P384.
	KeyType string
	// Attributes of the imported key.
	Expires, NotBefore *time.Time
	Disabled           bool
	Tags               map[string]string
}

// DefaultKEKName is the KEK used without --kek-name.
const DefaultKEKName = "kmsbridge-kek"

// Key types kmsbridge imports into Key Vault, as the HSM generates them.
var keyTypes = map[string]hsm.KeyParams{
	"RSA-2048": hsm.RSAKey(2048), "RSA-3072": hsm.RSAKey(3072), "RSA-4096": hsm.RSAKey(4096),
	"EC-P256": hsm.ECKey(hsm.P256), "EC-P384": hsm.ECKey(hsm.P384),
}

// KeyTypeNames lists them for help and errors.
const KeyTypeNames = "RSA-2048, RSA-3072, RSA-4096, EC-P256, EC-P384"

// Validate checks the request alone, changing nothing.
func (r *Request) Validate(now time.Time) error {
	if r.Vault == "" {
		return invalid("no vault: give --vault-url")
	}
	if !byok.ValidKeyName(r.KeyName) {
		return invalid("--key-name %q: Key Vault key names are 1-127 letters, digits and '-'", r.KeyName)
	}
	if r.KEKName == "" {
		r.KEKName = DefaultKEKName
	}
	if !byok.ValidKeyName(r.KEKName) {
		return invalid("--kek-name %q: Key Vault key names are 1-127 letters, digits and '-'", r.KEKName)
	}
	if strings.EqualFold(r.KEKName, r.KeyName) {
		return invalid("--kek-name and --key-name are both %q: the Key Exchange Key is a separate, import-only key", r.KeyName)
	}
	if r.KEKBits == 0 {
		r.KEKBits = 4096
	}
	if r.KEKBits != 2048 && r.KEKBits != 3072 && r.KEKBits != 4096 {
		return invalid("--kek-size %d: a Key Exchange Key is RSA-HSM 2048, 3072 or 4096", r.KEKBits)
	}
	if r.KeyLabel == "" && len(r.KeyID) == 0 {
		return invalid("name the HSM key with --key-label (or --key-id)")
	}
	if r.Generate {
		if r.KeyLabel == "" {
			return invalid("--generate needs --key-label for the new HSM key")
		}
		if r.KeyType == "" {
			r.KeyType = "RSA-3072"
		}
	}
	if r.KeyType != "" {
		if _, ok := keyTypes[r.KeyType]; !ok {
			return invalid("--azure-key-type %q: choose %s (oct-HSM AES into Managed HSM is not supported yet)", r.KeyType, KeyTypeNames)
		}
	}
	if r.Expires != nil && !r.Expires.After(now) {
		return invalid("--valid-to %s is in the past: Key Vault would import a key that can never be used", r.Expires.Format(time.RFC3339))
	}
	if r.Expires != nil && r.NotBefore != nil && !r.NotBefore.Before(*r.Expires) {
		return invalid("--not-before %s is not before --valid-to %s", r.NotBefore.Format(time.RFC3339), r.Expires.Format(time.RFC3339))
	}
	if len(r.Tags)+2 > 15 {
		return invalid("%d tags: Key Vault keeps at most 15 per key and kmsbridge adds 2 (%s, %s)", len(r.Tags), TagHSMKeyID, TagTokenSerial)
	}
	for k, v := range r.Tags {
		if k == TagHSMKeyID || k == TagTokenSerial {
			return invalid("--tag %s is kmsbridge's own link to the HSM key: choose another tag name", k)
		}
		if k == "" || len(k) > 512 || len(v) > 256 {
			return invalid("--tag %s: Key Vault tag names are 1-512 characters, values at most 256", k)
		}
	}
	return nil
}

// ParamsOf is the HSM key kind an Azure key type names.
func ParamsOf(keyType string) (hsm.KeyParams, error) {
	p, ok := keyTypes[keyType]
	if !ok {
		return p, invalid("key type %q: choose %s", keyType, KeyTypeNames)
	}
	return p, nil
}

func (r *Request) String() string {
	return fmt.Sprintf("%s/keys/%s", r.Vault, r.KeyName)
}
