package gcp

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Result is what an import into Cloud KMS did and proved. It is printed
// as a summary, or as JSON with --output json.
type Result struct {
	Cloud string `json:"Cloud"`
	// KMSEndpoint is where the Cloud KMS calls went, as the endpoint
	// policy allowed it (kmsimport.CheckCloudEndpoint).
	KMSEndpoint      *kmsimport.Endpoint `json:"KmsEndpoint,omitempty"`
	CryptoKey        string              `json:"CryptoKey"`
	CryptoKeyVersion string              `json:"CryptoKeyVersion,omitempty"`
	VersionState     string              `json:"VersionState,omitempty"`
	Algorithm        string              `json:"Algorithm,omitempty"`
	Purpose          string              `json:"Purpose,omitempty"`
	ProtectionLevel  string              `json:"ProtectionLevel,omitempty"`
	ImportJob        string              `json:"ImportJob,omitempty"`
	ImportMethod     string              `json:"ImportMethod,omitempty"`
	// What this run created; false for what existed.
	KeyRingCreated   bool `json:"KeyRingCreated"`
	CryptoKeyCreated bool `json:"CryptoKeyCreated"`
	ImportJobCreated bool `json:"ImportJobCreated"`
	Reimported       bool `json:"Reimported,omitempty"`

	WrappingPublicKeySHA256 string      `json:"WrappingPublicKeySha256,omitempty"`
	Attestation             Attestation `json:"Attestation"`
	WrappedKeySHA256        string      `json:"WrappedKeySha256,omitempty"`

	HSM   HSMKey `json:"Hsm"`
	Proof Proof  `json:"Proof"`

	Steps    []kmsimport.StepRecord `json:"Steps"`
	Warnings []string               `json:"Warnings,omitempty"`
	Resumed  []string               `json:"Resumed,omitempty"`
}

// Attestation says whether, and how, the import job's wrapping key was
// proven to live in Google's HSM before the wrap.
type Attestation struct {
	// Verified is true only when the statement was checked and held.
	Verified bool `json:"Verified"`
	// Status is "verified", "skipped" (--gcp-skip-attestation) or
	// "none: SOFTWARE protection level".
	Status                 string   `json:"Status"`
	HSM                    string   `json:"Hsm,omitempty"`
	PublicKeySHA256        string   `json:"PublicKeySha256,omitempty"`
	ManufacturerRootSHA256 string   `json:"ManufacturerRootSha256,omitempty"`
	OwnerRootSHA256        string   `json:"OwnerRootSha256,omitempty"`
	PartitionCertSHA256    string   `json:"PartitionCertSha256,omitempty"`
	Attributes             string   `json:"Attributes,omitempty"`
	Notes                  []string `json:"Notes,omitempty"`
}

// HSMKey identifies the master copy, as for every cloud.
type HSMKey = kmsimport.HSMKey

// Proof says what Cloud KMS showed about the imported material.
type Proof struct {
	// MaterialConfirmed: Cloud KMS showed it holds exactly the HSM's
	// material (public key equal, or MAC equal).
	MaterialConfirmed bool   `json:"MaterialConfirmed"`
	EncryptDecrypt    bool   `json:"EncryptDecrypt,omitempty"`
	PublicKeySHA256   string `json:"PublicKeySha256,omitempty"`
	Mac               string `json:"Mac,omitempty"`
	Summary           string `json:"Summary,omitempty"`
}

// WriteSummary prints the result for people.
func (r *Result) WriteSummary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	fmt.Fprintln(tw, "Imported into Google Cloud KMS")
	row("crypto key version", r.CryptoKeyVersion)
	row("state", r.VersionState)
	row("algorithm", r.Algorithm)
	row("protection level", r.ProtectionLevel)
	row("import job", r.ImportJob+" ("+r.ImportMethod+")")
	row("attestation", r.Attestation.Status)
	row("attested HSM", r.Attestation.HSM)
	if r.KMSEndpoint != nil {
		row("endpoint", r.KMSEndpoint.String())
	}
	row("wrapping key SHA-256", r.WrappingPublicKeySHA256)
	row("HSM key", fmt.Sprintf("%q (CKA_ID %s) in token %q", r.HSM.KeyLabel, r.HSM.KeyID, r.HSM.Token.Label))
	row("proof", r.Proof.Summary)
	for _, warn := range r.Warnings {
		row("warning", warn)
	}
	if len(r.Resumed) > 0 {
		row("resumed", strings.Join(r.Resumed, "; "))
	}
	_ = tw.Flush()
}
