package azure

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest"
)

// Result is what an import into Key Vault did and proved.
type Result struct {
	Cloud string `json:"Cloud"`
	// KMSEndpoint is where the Key Vault calls went, as the endpoint
	// policy allowed it, with the TLS peer that answered.
	KMSEndpoint  *kmsimport.Endpoint `json:"KmsEndpoint,omitempty"`
	Vault        string              `json:"Vault"`
	ManagedHSM   bool                `json:"ManagedHsm"`
	KeyName      string              `json:"KeyName"`
	KeyID        string              `json:"KeyId,omitempty"`
	KeyType      string              `json:"KeyType,omitempty"`
	ImportMethod string              `json:"ImportMethod,omitempty"`
	// Imported is false when an earlier run had imported the key.
	Imported bool `json:"Imported"`

	KEK         KEK    `json:"Kek"`
	ByokSHA256  string `json:"ByokSha256,omitempty"`
	Attestation string `json:"Attestation"`
	// KEKAttestation is what the verified attestation showed, when one was.
	KEKAttestation *attest.Result `json:"KekAttestation,omitempty"`

	HSM   HSMKey `json:"Hsm"`
	Proof Proof  `json:"Proof"`

	Steps    []kmsimport.StepRecord `json:"Steps"`
	Warnings []string               `json:"Warnings,omitempty"`
	Resumed  []string               `json:"Resumed,omitempty"`
}

// KEK is the Key Exchange Key the material was wrapped under.
type KEK struct {
	KID             string `json:"Kid,omitempty"`
	Bits            int    `json:"Bits,omitempty"`
	Created         bool   `json:"Created"`
	PublicKeySHA256 string `json:"PublicKeySha256,omitempty"`
}

// HSMKey identifies the master copy, as for every cloud.
type HSMKey = kmsimport.HSMKey

// Proof says what Key Vault showed about the imported material.
type Proof struct {
	// MaterialConfirmed: the vault's key is the HSM's, shown by Method.
	MaterialConfirmed bool `json:"MaterialConfirmed"`
	// Method is ProofPublicKey (RSA, EC), ProofEncrypt or ProofCheckValue
	// (AES); Algorithm the vault's algorithm for an AES proof.
	Method          string `json:"Method,omitempty"`
	Algorithm       string `json:"Algorithm,omitempty"`
	PublicKeySHA256 string `json:"PublicKeySha256,omitempty"`
	Summary         string `json:"Summary,omitempty"`
}

// WriteSummary prints the result for people.
func (r *Result) WriteSummary(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	if r.ManagedHSM {
		fmt.Fprintln(tw, "Imported into Azure Key Vault Managed HSM")
	} else {
		fmt.Fprintln(tw, "Imported into Azure Key Vault")
	}
	row("key", r.KeyID)
	row("key type", r.KeyType)
	row("wrapped with", r.ImportMethod)
	if r.KMSEndpoint != nil {
		row("endpoint", r.KMSEndpoint.String())
	}
	row("key exchange key", r.KEK.KID)
	row("KEK public key SHA-256", r.KEK.PublicKeySHA256)
	row("KEK attestation", r.Attestation)
	row(".byok SHA-256", r.ByokSHA256)
	row("HSM key", fmt.Sprintf("%q (CKA_ID %s) in token %q (serial %s)", r.HSM.KeyLabel, r.HSM.KeyID, r.HSM.Token.Label, r.HSM.Token.Serial))
	row("proof", r.Proof.Summary)
	for _, warn := range r.Warnings {
		row("warning", warn)
	}
	if len(r.Resumed) > 0 {
		row("resumed", strings.Join(r.Resumed, "; "))
	}
	_ = tw.Flush()
}
