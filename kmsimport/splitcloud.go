package kmsimport

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// The clouds the air-gapped split serves. One bundle format and one
// wrapped-material format carry all of them: the Cloud field says whose
// the file is, the common fields keep their meaning (the wrapping public
// key, the handle that pairs the import with it, the target, its
// validity), and a cloud's own facts go in its section. docs/split-bundle.md
// lists the fields per cloud.
const (
	CloudAWS   = "aws"
	CloudGCP   = "gcp"
	CloudAzure = "azure"
)

// GCPBundle is Google Cloud KMS's section of a bundle. In a Google bundle
// KeyId is the crypto key's resource name, Region its location, KeySpec
// the Cloud KMS algorithm, WrappingAlgorithm the import method,
// WrappingKeySpec RSA_3072 or RSA_4096, PublicKey the import job's
// wrapping public key (DER), ImportToken the import job's resource name
// and ParametersValidTo the job's expire time.
type GCPBundle struct {
	ProtectionLevel string `json:"ProtectionLevel"`
	// ReimportVersion is the DESTROYED or IMPORT_FAILED version id to
	// import into again, or "".
	ReimportVersion string `json:"ReimportVersion,omitempty"`
	// JobGenerateTime is when Cloud KMS generated the job's key pair: the
	// time the attestation's certificates are checked at.
	JobGenerateTime time.Time `json:"JobGenerateTime"`
	// Attestation is the import job's attestation exactly as Cloud KMS
	// returned it; nil for a SOFTWARE job. wrap verifies it offline,
	// against roots the officers bring, before anything is wrapped.
	Attestation *GCPAttestation `json:"Attestation,omitempty"`
	// OnlineAttestation says whether prepare verified it too (it does when
	// given the roots).
	OnlineAttestation string `json:"OnlineAttestation"`
}

// GCPAttestation is a Cloud KMS KeyOperationAttestation.
type GCPAttestation struct {
	Format               int32    `json:"Format"`
	Content              []byte   `json:"Content"`
	CaviumCerts          []string `json:"CaviumCerts"`
	GoogleCardCerts      []string `json:"GoogleCardCerts"`
	GooglePartitionCerts []string `json:"GooglePartitionCerts"`
}

// GCPWrapped is Google's section of a wrapped file: what upload needs
// beyond the common fields, and what wrap established about the job.
type GCPWrapped struct {
	ProtectionLevel string `json:"ProtectionLevel"`
	ReimportVersion string `json:"ReimportVersion,omitempty"`
	// Attestation is what wrap established about the job's wrapping key:
	// "verified: ...", "none: SOFTWARE ..." or "skipped: ...".
	Attestation string `json:"Attestation"`
}

// AzureSplit is Azure Key Vault's section of a bundle and of a wrapped
// file. In an Azure bundle KeyId is VAULT/keys/NAME, KeySpec the key type
// (RSA-3072, EC-P256, ...), WrappingAlgorithm CKM_RSA_AES_KEY_WRAP,
// WrappingKeySpec the KEK's size, PublicKey the KEK's public key (DER),
// ImportToken the KEK's versioned key identifier (the .byok header's kid)
// and ParametersValidTo how long the bundle is trusted (the KEK's expiry,
// or at most AzureBundleValidity). In an Azure wrapped file
// EncryptedKeyMaterial is the .byok file's bytes.
type AzureSplit struct {
	Vault   string `json:"Vault"`
	KeyName string `json:"KeyName"`
	KEKName string `json:"KekName"`
	// ManagedHSM says the vault is a Managed HSM (by its host, or
	// --managed-hsm at prepare), the only kind that imports AES keys.
	ManagedHSM bool `json:"ManagedHsm,omitempty"`
	// Attributes of the key upload imports.
	Tags      map[string]string `json:"Tags,omitempty"`
	Expires   *time.Time        `json:"Expires,omitempty"`
	NotBefore *time.Time        `json:"NotBefore,omitempty"`
	Disabled  bool              `json:"Disabled,omitempty"`
	// KEKAttestation says what was and was not checked of the KEK.
	KEKAttestation string `json:"KekAttestation"`
	// KEKAttestationStatement is a Managed HSM's attestation of the KEK as
	// prepare read it, for the offline wrap to verify against the roots
	// the officers bring (absent for a Key Vault).
	KEKAttestationStatement *AzureAttestation `json:"KekAttestationStatement,omitempty"`
}

// AzureAttestation is attributes.attestation of Managed HSM's GET
// /keys/NAME/VERSION/attestation, base64url decoded.
type AzureAttestation struct {
	Version               string `json:"Version"`
	CertificatePEM        []byte `json:"CertificatePem"`
	PrivateKeyAttestation []byte `json:"PrivateKeyAttestation"`
	PublicKeyAttestation  []byte `json:"PublicKeyAttestation,omitempty"`
}

// AzureBundleValidity bounds how long an Azure bundle is trusted: the KEK
// has no import token that expires, so the offline host refuses a snapshot
// of it older than this.
const AzureBundleValidity = 7 * 24 * time.Hour

// SplitCloud is what a cloud's adapter tells the split about its files:
// the checks that need the cloud's rules. kmsimport runs the common ones
// (format, digests, public key size, expiry) itself.
type SplitCloud struct {
	// CheckBundle checks a bundle of this cloud offline: target names,
	// algorithm, method and the cloud's section.
	CheckBundle func(path string, b *Bundle) error
	// CheckEndpoint applies the cloud's endpoint policy to the endpoint
	// the bundle's wrapping key came from; allow is --allow-endpoint.
	CheckEndpoint func(b *Bundle, allow string) error
	// CheckWrapped checks a wrapped file of this cloud.
	CheckWrapped func(path string, w *Wrapped) error
}

var (
	splitCloudsMu sync.RWMutex
	splitClouds   = map[string]SplitCloud{}
)

// RegisterSplitCloud makes a cloud's bundles and wrapped files readable.
// Each cloud package registers itself when linked in.
func RegisterSplitCloud(name string, c SplitCloud) {
	splitCloudsMu.Lock()
	defer splitCloudsMu.Unlock()
	splitClouds[name] = c
}

func splitCloud(name string) (SplitCloud, bool) {
	splitCloudsMu.RLock()
	defer splitCloudsMu.RUnlock()
	c, ok := splitClouds[name]
	return c, ok
}

func splitCloudNames() string {
	splitCloudsMu.RLock()
	defer splitCloudsMu.RUnlock()
	var n []string
	for k := range splitClouds {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// CloudOf is the cloud a bundle or wrapped file is for: "" means AWS
// (format versions before the Cloud field).
func CloudOf(cloud string) string {
	if cloud == "" {
		return CloudAWS
	}
	return cloud
}

// checkBundleCloud runs the checks a bundle needs beyond the common ones
// (its cloud's SplitCloud), and refuses a section that does not belong
// to its cloud.
func checkBundleCloud(path string, b *Bundle) error {
	cloud := CloudOf(b.Cloud)
	switch {
	case cloud == CloudAWS && (b.Gcp != nil || b.Azure != nil):
		return invalid("%s: an AWS bundle with a Google or Azure section: the file was altered; run kmsbridge prepare again", path)
	case cloud == CloudGCP && (b.Gcp == nil || b.Azure != nil):
		return invalid("%s: a Google bundle needs its Gcp section and no other: the file was altered; run kmsbridge prepare --cloud gcp again", path)
	case cloud == CloudAzure && (b.Azure == nil || b.Gcp != nil):
		return invalid("%s: an Azure bundle needs its Azure section and no other: the file was altered; run kmsbridge prepare --cloud azure again", path)
	}
	c, ok := splitCloud(cloud)
	if !ok {
		return invalid("%s: Cloud %q is not a cloud this kmsbridge knows (%s): the file is from another version, or altered", path, Excerpt(b.Cloud), splitCloudNames())
	}
	return c.CheckBundle(path, b)
}

// checkWrappedCloud is checkBundleCloud for a wrapped file.
func checkWrappedCloud(path string, w *Wrapped) error {
	cloud := CloudOf(w.Cloud)
	switch {
	case cloud == CloudAWS && (w.Gcp != nil || w.Azure != nil),
		cloud == CloudGCP && (w.Gcp == nil || w.Azure != nil),
		cloud == CloudAzure && (w.Azure == nil || w.Gcp != nil):
		return invalid("%s: its cloud sections do not match Cloud %q: the file was altered or damaged; wrap again", path, Excerpt(cloud))
	}
	c, ok := splitCloud(cloud)
	if !ok {
		return invalid("%s: Cloud %q is not a cloud this kmsbridge knows (%s)", path, Excerpt(w.Cloud), splitCloudNames())
	}
	return c.CheckWrapped(path, w)
}

// CheckBundleOrigin applies, offline, the endpoint policy of the bundle's
// cloud to the endpoint its wrapping public key came from: a bundle from
// an endpoint that is not the cloud's own is refused unless allow
// (--allow-endpoint on this host) names it.
func CheckBundleOrigin(b *Bundle, allow string) error {
	cloud := CloudOf(b.Cloud)
	c, ok := splitCloud(cloud)
	if !ok {
		return invalid("the bundle is for cloud %q, which this kmsbridge does not know", Excerpt(b.Cloud))
	}
	if cloud != CloudAWS && (b.KmsEndpoint == nil || b.KmsEndpoint.URL == "") {
		return invalid("the bundle names no endpoint its wrapping public key came from: it was not made by this kmsbridge's prepare; run kmsbridge prepare --cloud %s again", cloud)
	}
	return c.CheckEndpoint(b, allow)
}

// expiredAdvice is what to run when a bundle's parameters expired.
func expiredAdvice(b *Bundle) string {
	switch CloudOf(b.Cloud) {
	case CloudGCP:
		return fmt.Sprintf("import job %s can no longer import (jobs live 3 days): run kmsbridge prepare --cloud gcp again for a bundle with a new job", b.ImportTokenString())
	case CloudAzure:
		return "the snapshot of the Key Exchange Key is too old to trust offline: run kmsbridge prepare --cloud azure again for a fresh bundle"
	}
	return fmt.Sprintf("the import parameters are valid 24 hours: run kmsbridge prepare --kms-key-id %s again for a fresh bundle", Excerpt(b.KeyId))
}

// ImportTokenString is the import token as text, for the clouds whose
// handle is a name (Google's import job, Azure's KEK kid).
func (b *Bundle) ImportTokenString() string { return Excerpt(string(b.ImportToken)) }

// WriteByok writes an Azure wrapped file's .byok transfer blob to a new
// file, mode 0600: the very bytes the wrapped file carries.
func WriteByok(path string, w *Wrapped) error {
	f, err := safefile.OpenFile("--byok-out", path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if _, err := f.Write(w.EncryptedKeyMaterial); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
