package aws

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Request is one import, as the user asked for it.
type Request struct {
	// The HSM key: found by KeyLabel or KeyID, or generated with KeyLabel.
	KeyLabel string
	KeyID    []byte
	// KeyType is a --key URI's type= ("secret-key" or "private"), which
	// the key must be too; KeyByURI says the key was named by a URI, whose
	// object and id may both be given (and then both must match).
	KeyType  string
	KeyByURI bool
	Generate bool
	// LabelFree says the caller searched the token for KeyLabel just
	// before, found no object, and holds the journal that keeps other
	// kmsbridge runs off the token: select-hsm-key then does not search
	// again (each search reads every object on some tokens). Only a
	// generating request uses it; a planner sets it, never a user.
	LabelFree bool `json:"-"`
	// AliasFree says the caller looked Alias up in KMS just before and it
	// led to no key: check-kms then does not look it up again. A planner
	// sets it, never a user; CreateAlias still refuses an alias made in
	// between (AlreadyExistsException).
	AliasFree bool `json:"-"`
	// WrapWithTrusted gives a generated key CKA_WRAP_WITH_TRUSTED=true.
	WrapWithTrusted bool
	// AllowNonSensitive accepts an existing HSM key with
	// CKA_SENSITIVE=false, which is otherwise refused.
	AllowNonSensitive bool

	// KeySpec is the KMS key spec name; empty means SYMMETRIC_DEFAULT for a
	// generated key, and the spec the HSM key's type implies otherwise.
	KeySpec string
	// KeyUsage is the KMS key usage; empty means the spec's default.
	KeyUsage string

	// KMSKeyID names an existing EXTERNAL key; empty creates a new one.
	KMSKeyID    string
	Alias       string
	Description string
	Tags        []types.Tag

	// WrappingAlgorithm is a KMS AlgorithmSpec name; empty picks the
	// strongest the token can do.
	WrappingAlgorithm string
	WrappingKeySpec   types.WrappingKeySpec
	Expiry            Expiry

	// ImportType, KeyMaterialId and KeyMaterialDescription go to
	// ImportKeyMaterial as given (symmetric keys only); empty leaves KMS's
	// defaults. renew and rotate set them.
	// MultiRegion creates a multi-Region primary key and replicates it to
	// every Region of Importer.Replicas, importing the same material into
	// each replica.
	MultiRegion bool

	ImportType             types.ImportType
	KeyMaterialId          string
	KeyMaterialDescription string
}

// Validate checks the request on its own, before any token or KMS call.
func (r *Request) Validate(now time.Time) error {
	switch {
	case r.Generate && r.KeyLabel == "":
		return invalid("--generate needs --key-label: the label the new HSM key gets")
	case r.Generate && len(r.KeyID) > 0:
		return invalid("--generate chooses a random CKA_ID itself: drop --hsm-key-id, or drop --generate to use that existing key")
	case !r.Generate && r.KeyLabel == "" && len(r.KeyID) == 0:
		return invalid("no HSM key chosen: give --key-label (or --hsm-key-id HEX) of an existing key, or add --generate to make a new one")
	case r.Generate && r.KeyType != "" && r.KeySpec == "":
		return invalid("the --key URI says type=%s, and --generate without --key-spec makes an AES key (type=secret-key): give the --key-spec of the key to generate, or drop type", r.KeyType)
	case !r.Generate && r.KeyLabel != "" && len(r.KeyID) > 0 && !r.KeyByURI:
		return invalid("give either --key-label or --hsm-key-id, not both")
	}
	if r.KeyLabel != "" {
		if err := kmsimport.CheckKeyLabel(r.KeyLabel); err != nil {
			return err
		}
	}
	if r.Alias != "" {
		if err := CheckAlias(r.Alias); err != nil {
			return err
		}
	}
	if err := CheckDescription(r.Description); err != nil {
		return err
	}
	if err := CheckTags(r.Tags); err != nil {
		return err
	}
	wks, err := ParseWrappingKeySpec(string(r.WrappingKeySpec))
	if err != nil {
		return err
	}
	var w Wrapping
	if r.WrappingAlgorithm != "" {
		if w, err = ParseWrappingAlgorithm(r.WrappingAlgorithm); err != nil {
			return err
		}
	}
	if r.KeySpec != "" || r.Generate {
		spec := KeySpecs[0]
		if r.KeySpec != "" {
			if spec, err = ParseKeySpec(r.KeySpec); err != nil {
				return err
			}
		}
		if _, err := spec.Usage(r.KeyUsage); err != nil {
			return err
		}
		if want := map[bool]string{true: "secret-key", false: "private"}[spec.HSM.Secret()]; r.KeyType != "" && r.KeyType != want {
			return invalid("the --key URI says type=%s, and key spec %s is held as type=%s: fix the URI's type or the --key-spec", r.KeyType, spec.Name, want)
		}
		if r.WrappingAlgorithm != "" {
			if err := CheckWrapping(spec, w, wks); err != nil {
				return err
			}
		}
	}
	return r.Expiry.Validate(now)
}
