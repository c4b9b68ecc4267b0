package gcp

import (
	"strings"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Request is one import into Cloud KMS, as the operator asked for it.
type Request struct {
	// The target: projects/Project/locations/Location/keyRings/KeyRing/
	// cryptoKeys/CryptoKey. The key ring and the key are created when
	// absent.
	Project, Location, KeyRing, CryptoKey string
	// Algorithm is a Cloud KMS algorithm name; "" means
	// GOOGLE_SYMMETRIC_ENCRYPTION with Generate, else the HSM key's type.
	Algorithm string
	// ProtectionLevel is "HSM" (default) or "SOFTWARE".
	ProtectionLevel string
	// ImportJob names an existing import job to use; "" creates one.
	ImportJob string
	// ReimportVersion re-imports into this DESTROYED or IMPORT_FAILED
	// version id of CryptoKey instead of creating a new version.
	ReimportVersion string

	// The HSM key, as for AWS: found by KeyLabel or KeyID, or generated.
	KeyLabel string
	KeyID    []byte
	Generate bool

	// ManufacturerRoot and OwnerRoot are the trust roots' files. Required
	// for an HSM job unless SkipAttestation.
	ManufacturerRoot, OwnerRoot string
	// SkipAttestation wraps under an HSM job without checking its
	// attestation; the result and the record say so.
	SkipAttestation bool
}

var (
	projectRE = lazyre.New(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	// Cloud KMS locations: "global", multi-regions and regions.
	locationRE = lazyre.New(`^[a-z][a-z0-9-]{1,40}[a-z0-9]$`)
	idRE       = lazyre.New(`^[a-zA-Z0-9_-]{1,63}$`)
	keyNameRE  = lazyre.New(`^projects/([^/]+)/locations/([^/]+)/keyRings/([^/]+)/cryptoKeys/([^/]+)$`)
	versionRE  = lazyre.New(`^[1-9][0-9]{0,9}$`)
)

// ParseKeyName fills the target from a full CryptoKey resource name,
// projects/P/locations/L/keyRings/R/cryptoKeys/K, when s is one.
func (r *Request) ParseKeyName(s string) bool {
	m := keyNameRE.FindStringSubmatch(strings.TrimPrefix(s, "gcp://"))
	if m == nil {
		return false
	}
	r.Project, r.Location, r.KeyRing, r.CryptoKey = m[1], m[2], m[3], m[4]
	return true
}

// Validate checks the request on its own, before any token or Cloud KMS
// call.
func (r *Request) Validate() error {
	if err := r.ValidateTarget(); err != nil {
		return err
	}
	if r.ProtectionLevel == "HSM" && !r.SkipAttestation && (r.ManufacturerRoot == "" || r.OwnerRoot == "") {
		return invalid("an HSM import job's attestation is verified before the wrap, against trust roots you supply: give --gcp-manufacturer-root FILE and --gcp-owner-root FILE (docs/gcp-import.md says where to get them), or --gcp-skip-attestation to wrap unverified (recorded)")
	}
	return r.validateHSMKey()
}

// ValidateTarget checks the Cloud KMS side of the request alone: the
// target's names, the protection level, the algorithm, and that roots
// are not given for a job that has no attestation. The air-gapped
// split's prepare, which knows no HSM key, checks only this.
func (r *Request) ValidateTarget() error {
	switch {
	case r.Project == "":
		return invalid("no Google Cloud project: give --gcp-project PROJECT_ID")
	case !projectRE.MatchString(r.Project):
		return invalid("--gcp-project %q is not a project ID (6 to 30 lowercase letters, digits and hyphens, starting with a letter): give the project ID, not its name or number", kmsimport.Excerpt(r.Project))
	case r.Location == "":
		return invalid("no Cloud KMS location: give --gcp-location, e.g. us-central1, europe-west1 or global")
	case !locationRE.MatchString(r.Location):
		return invalid("--gcp-location %q is not a location name such as us-central1 or global", kmsimport.Excerpt(r.Location))
	case r.KeyRing == "":
		return invalid("no key ring: give --key-ring NAME (created when absent)")
	case !idRE.MatchString(r.KeyRing):
		return invalid("--key-ring %q is not a key ring ID: 1 to 63 letters, digits, '_' and '-'", kmsimport.Excerpt(r.KeyRing))
	case r.CryptoKey == "":
		return invalid("no crypto key: give --crypto-key NAME (created, import-only, when absent)")
	case !idRE.MatchString(r.CryptoKey):
		return invalid("--crypto-key %q is not a crypto key ID: 1 to 63 letters, digits, '_' and '-', or a full name projects/P/locations/L/keyRings/R/cryptoKeys/K", kmsimport.Excerpt(r.CryptoKey))
	case r.ImportJob != "" && !idRE.MatchString(r.ImportJob):
		return invalid("--import-job %q is not an import job ID in key ring %s", kmsimport.Excerpt(r.ImportJob), r.KeyRing)
	case r.ReimportVersion != "" && !versionRE.MatchString(r.ReimportVersion):
		return invalid("--crypto-key-version %q is not a version number such as 1", kmsimport.Excerpt(r.ReimportVersion))
	}
	switch strings.ToUpper(r.ProtectionLevel) {
	case "", "HSM":
		r.ProtectionLevel = "HSM"
	case "SOFTWARE":
		r.ProtectionLevel = "SOFTWARE"
	default:
		return invalid("--gcp-protection-level %q: choose HSM (default) or SOFTWARE", kmsimport.Excerpt(r.ProtectionLevel))
	}
	if r.ProtectionLevel == "SOFTWARE" && (r.ManufacturerRoot != "" || r.OwnerRoot != "") {
		return invalid("a SOFTWARE import job has no attestation to check against --gcp-manufacturer-root/--gcp-owner-root: drop them, or use --gcp-protection-level HSM")
	}
	if r.Algorithm != "" {
		if _, err := ParseAlgorithm(r.Algorithm); err != nil {
			return err
		}
	}
	return nil
}

// validateHSMKey checks how the HSM key is chosen.
func (r *Request) validateHSMKey() error {
	switch {
	case r.Generate && r.KeyLabel == "":
		return invalid("--generate needs --key-label: the label the new HSM key gets")
	case r.Generate && len(r.KeyID) > 0:
		return invalid("--generate chooses a random CKA_ID itself: drop --hsm-key-id, or drop --generate to use that existing key")
	case !r.Generate && r.KeyLabel == "" && len(r.KeyID) == 0:
		return invalid("no HSM key chosen: give --key-label (or --hsm-key-id HEX) of an existing key, or add --generate to make a new one")
	case !r.Generate && r.KeyLabel != "" && len(r.KeyID) > 0:
		return invalid("give either --key-label or --hsm-key-id, not both")
	}
	if r.KeyLabel != "" {
		if err := kmsimport.CheckKeyLabel(r.KeyLabel); err != nil {
			return err
		}
	}
	return nil
}

func (r *Request) location() string { return "projects/" + r.Project + "/locations/" + r.Location }
func (r *Request) ring() string     { return r.location() + "/keyRings/" + r.KeyRing }
func (r *Request) key() string      { return r.ring() + "/cryptoKeys/" + r.CryptoKey }

func (r *Request) protection() kmspb.ProtectionLevel {
	if r.ProtectionLevel == "SOFTWARE" {
		return kmspb.ProtectionLevel_SOFTWARE
	}
	return kmspb.ProtectionLevel_HSM
}
