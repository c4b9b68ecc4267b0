package kmsimport

import "time"

// Problem kinds of other clouds' targets.
const (
	// ProblemTargetMissing: a target the ceremony file names holds no key.
	ProblemTargetMissing = "target-missing"
	// ProblemTargetNotLinked: the target's labels or tags do not name the
	// HSM key and token, so it is not provably this HSM key's copy.
	ProblemTargetNotLinked = "target-not-linked"
	// ProblemTargetNotEnabled: the imported version or key cannot be used
	// (destroyed, failed import, disabled).
	ProblemTargetNotEnabled = "target-not-enabled"
)

// How status links a cloud key to an HSM key (StatusTarget.LinkedBy, the
// AWS key's LinkedBy, the LINKED BY column): status reads tags and labels,
// which anyone allowed to tag the cloud key can write, so a link is
// "tags" until the material itself was compared inside this run.
const (
	// LinkedByTags: the cloud key's tags or labels name the HSM key's
	// CKA_ID and token serial; its material was not compared.
	LinkedByTags = "tags"
	// LinkedByVerified: this run also proved the cloud key holds the HSM
	// key's material (status --verify: a MAC, signature or public key the
	// HSM and the cloud computed alike), changing nothing.
	LinkedByVerified = "verified"
)

// StatusTarget is one key (a Cloud KMS crypto key version, a Key Vault
// key) of another cloud that holds, or should hold, an HSM key's
// material.
type StatusTarget struct {
	// Cloud is gcp or azure.
	Cloud string `json:"Cloud"`
	// Target is the crypto key version's resource name, or the Key Vault
	// key's id (its URL with version); the crypto key or vault key when
	// nothing was imported.
	Target string `json:"Target"`
	// Location is the key ring (projects/P/locations/L/keyRings/R) or
	// the vault URL: the REGION column.
	Location    string `json:"Location"`
	HSMKeyID    string `json:"HsmKeyId,omitempty"`
	HSMKeyLabel string `json:"HsmKeyLabel,omitempty"`
	// KeySpec is the Cloud KMS algorithm or the Key Vault key type.
	KeySpec string `json:"KeySpec,omitempty"`
	// State is the version's state (ENABLED, DESTROYED, ...) or the Key
	// Vault key's Enabled/Disabled; "missing" when there is no key.
	State           string `json:"State"`
	ProtectionLevel string `json:"ProtectionLevel,omitempty"`
	// ImportJob and ImportJobState are the Cloud KMS import job the
	// version was imported with.
	ImportJob      string `json:"ImportJob,omitempty"`
	ImportJobState string `json:"ImportJobState,omitempty"`
	// KEK is the Key Vault Key Exchange Key the material was wrapped
	// under, with its key_ops.
	KEK string `json:"Kek,omitempty"`
	// ValidTo is the Key Vault key's expiry (exp), when it has one.
	ValidTo      *time.Time `json:"ValidTo,omitempty"`
	DaysToExpiry *int       `json:"DaysToExpiry,omitempty"`
	// Linked is true when the target's labels or tags name the HSM key
	// (CKA_ID) and the token's serial.
	Linked bool `json:"Linked"`
	// LinkedBy says what the link rests on: LinkedByTags (status never
	// compares a target's material); "" when not linked.
	LinkedBy string `json:"LinkedBy,omitempty"`
	Note     string `json:"Note,omitempty"`
	// Problem is the kind of problem found when reading it (a
	// ProblemTarget* constant), or "".
	Problem string `json:"-"`
	// Fix is what resolves Problem.
	Fix string `json:"-"`
}
