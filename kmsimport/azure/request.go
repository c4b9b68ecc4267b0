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
	// ManagedHSM is true when the vault is a Managed HSM: by its host
	// (*.managedhsm.*), or by --managed-hsm for an endpoint of one's own.
	// Only a Managed HSM imports oct-HSM (AES) keys.
	ManagedHSM bool
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
	// KeyType is the key to generate: one of KeyTypeNames.
	KeyType string
	// Attributes of the imported key.
	Expires, NotBefore *time.Time
	Disabled           bool
	Tags               map[string]string
	// AttestationRoot is the PEM file of the manufacturer root a Managed
	// HSM's attestation of the KEK is verified against (attestation.go).
	AttestationRoot string
	// HSMPartitions pin the Managed HSM that must hold the KEK: the
	// SHA-256 of each of its partition keys (--azure-hsm-partition),
	// checked against the attestation's partition (attest.VerifyPinned).
	HSMPartitions []string
}

// DefaultKEKName is the KEK used without --kek-name.
const DefaultKEKName = "kmsbridge-kek"

// Key types kmsbridge imports into Key Vault, as the HSM generates them
// (KV-BYOK and MHSM-BYOK, "Supported key types"). An AES master copy is
// generated able to encrypt, and only that, so the token can prove the
// Managed HSM holds the same key (docs/azure-import.md, "oct-HSM").
var keyTypes = map[string]hsm.KeyParams{
	"RSA-2048": hsm.RSAKey(2048), "RSA-3072": hsm.RSAKey(3072), "RSA-4096": hsm.RSAKey(4096),
	"EC-P256": hsm.ECKey(hsm.P256), "EC-P384": hsm.ECKey(hsm.P384), "EC-P521": hsm.ECKey(hsm.P521), "EC-P256K": hsm.ECKey(hsm.Secp256k1),
	"AES-128": aesKey(16), "AES-192": aesKey(24), "AES-256": aesKey(32),
}

func aesKey(n int) hsm.KeyParams {
	p := hsm.AESKey(n)
	p.Encrypts = true
	return p
}

// KeyTypeNames lists them for help and errors.
const KeyTypeNames = "RSA-2048, RSA-3072, RSA-4096, EC-P256, EC-P384, EC-P521, EC-P256K (secp256k1), AES-128, AES-192, AES-256 (AES: Managed HSM only)"

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
		p, ok := keyTypes[r.KeyType]
		if !ok {
			return invalid("--azure-key-type %q: choose %s", r.KeyType, KeyTypeNames)
		}
		if p.Secret() && !r.ManagedHSM {
			return notManagedHSM(r.Vault, p.String())
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
