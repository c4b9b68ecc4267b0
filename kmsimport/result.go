package kmsimport

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// Result is what an import did, for people (the summary) and scripts
// (JSON). Field names follow AWS's where AWS has one.
type Result struct {
	KeyId                      string          `json:"KeyId,omitempty"`
	Arn                        string          `json:"Arn,omitempty"`
	AliasName                  string          `json:"AliasName,omitempty"`
	KeySpec                    string          `json:"KeySpec"`
	KeyUsage                   string          `json:"KeyUsage"`
	Origin                     string          `json:"Origin"`
	KeyState                   string          `json:"KeyState,omitempty"`
	CreatedKMSKey              bool            `json:"CreatedKmsKey"`
	WrappingAlgorithm          string          `json:"WrappingAlgorithm,omitempty"`
	WrappingKeySpec            string          `json:"WrappingKeySpec,omitempty"`
	WrappingPublicKeySHA256    string          `json:"WrappingPublicKeySha256,omitempty"`
	ParametersValidTo          time.Time       `json:"ParametersValidTo,omitzero"`
	EncryptedKeyMaterialSHA256 string          `json:"EncryptedKeyMaterialSha256,omitempty"`
	KeyMaterialId              string          `json:"KeyMaterialId,omitempty"`
	ExpirationModel            string          `json:"ExpirationModel,omitempty"`
	ValidTo                    *time.Time      `json:"ValidTo,omitempty"`
	HSM                        HSMKey          `json:"Hsm"`
	Verification               Verification    `json:"Verification"`
	Replicas                   []ReplicaResult `json:"Replicas,omitempty"`
	Warnings                   []string        `json:"Warnings,omitempty"`
	Steps                      []StepRecord    `json:"Steps"`
}

// HSMKey identifies the master copy in the token.
type HSMKey struct {
	Token         hsm.TokenIdentity `json:"Token"`
	KeyLabel      string            `json:"KeyLabel,omitempty"`
	KeyID         string            `json:"KeyId,omitempty"`
	KeyCheckValue string            `json:"KeyCheckValue,omitempty"`
	Generated     bool              `json:"Generated"`
}

// StepRecord is one completed step.
type StepRecord struct {
	Name    string    `json:"Name"`
	Summary string    `json:"Summary"`
	Time    time.Time `json:"Time"`
}

// StepError is a failed step, with what exists now and how to finish.
type StepError struct {
	Step string
	Err  error
	// State lists what the import had created or changed before the failure.
	State []string
	// Resume is the advice that finishes the job, or "" when nothing changed.
	Resume string
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Step, e.Err)
	if len(e.State) == 0 {
		b.WriteString("\nNothing was changed in the HSM or in KMS.")
	} else {
		b.WriteString("\nWhat exists now: " + strings.Join(e.State, "; ") + ".")
	}
	if e.Resume != "" {
		b.WriteString("\nTo finish: " + e.Resume)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// fail wraps err from step with what exists now and how to resume.
func (r *run) fail(step string, err error) error {
	se := &StepError{Step: step, Err: err}
	if r.res.HSM.Generated {
		se.State = append(se.State, fmt.Sprintf("HSM key %q (CKA_ID %s) was generated in token %q and is kept as the master copy", r.res.HSM.KeyLabel, r.res.HSM.KeyID, r.res.HSM.Token.Label))
	}
	if r.res.CreatedKMSKey {
		se.State = append(se.State, fmt.Sprintf("KMS key %s was created (origin EXTERNAL, tagged %s=%s) and waits for key material", r.res.KeyId, TagHSMKeyID, r.res.HSM.KeyID))
	}
	for _, rep := range r.res.Replicas {
		if rep.Created {
			se.State = append(se.State, fmt.Sprintf("replica %s was created in %s", rep.KeyId, rep.Region))
		}
	}
	if step == StepReplicate {
		se.Resume = fmt.Sprintf("fix the cause above, then run the same kmsbridge import --multi-region again with --hsm-key-id %s --kms-key-id %s (without --generate): it finds the replicas made so far and imports the same material into each", r.res.HSM.KeyID, r.res.KeyId)
	}
	if r.res.KeyMaterialId != "" {
		se.State = append(se.State, fmt.Sprintf("the material is imported (KeyMaterialId %s)", r.res.KeyMaterialId))
	}
	if len(se.State) > 0 && r.res.KeyMaterialId == "" && r.res.HSM.KeyID != "" {
		kms := "--kms-key-id " + r.res.KeyId
		if r.res.KeyId == "" {
			kms = "(no --kms-key-id: a new KMS key is created)"
		}
		se.Resume = fmt.Sprintf("fix the cause above, then run kmsbridge import again with --hsm-key-id %s %s and without --generate; the HSM key is never lost and KMS accepts the same material again", r.res.HSM.KeyID, kms)
	}
	if errors.Is(err, ErrVerification) {
		se.Resume = ""
	}
	return se
}

// WriteSummary writes the result for a person: what was created, the
// values officers compare, and what was verified.
func (r *Result) WriteSummary(w io.Writer) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %-28s %s\n", k, v)
		}
	}
	fmt.Fprintln(w, "Import complete.")
	fmt.Fprintln(w, "KMS")
	row("key id", r.KeyId)
	row("ARN", r.Arn)
	row("alias", r.AliasName)
	created := "existing key"
	if r.CreatedKMSKey {
		created = "created by this import"
	}
	row("key", fmt.Sprintf("%s, %s, origin %s, %s", r.KeySpec, r.KeyUsage, r.Origin, created))
	row("state", r.KeyState)
	row("KeyMaterialId", r.KeyMaterialId)
	if r.ValidTo != nil {
		row("expires", r.ValidTo.Format(time.RFC3339))
	} else {
		row("expires", "never (KEY_MATERIAL_DOES_NOT_EXPIRE)")
	}
	fmt.Fprintln(w, "HSM")
	t := r.HSM.Token
	row("token", fmt.Sprintf("%q serial %s (%s %s)", t.Label, t.Serial, t.Manufacturer, t.Model))
	gen := "existing key"
	if r.HSM.Generated {
		gen = "generated by this import"
	}
	row("key label", fmt.Sprintf("%q (%s)", r.HSM.KeyLabel, gen))
	row("key CKA_ID", r.HSM.KeyID)
	kcv := r.HSM.KeyCheckValue
	if kcv == "" {
		kcv = "not provided by this token"
	}
	row("key check value", kcv)
	fmt.Fprintln(w, "Wrapping")
	row("algorithm", r.WrappingAlgorithm)
	row("wrapping key spec", r.WrappingKeySpec)
	row("public key SHA-256", r.WrappingPublicKeySHA256)
	row("wrapped material SHA-256", r.EncryptedKeyMaterialSHA256)
	r.Verification.write(w, row)
	for _, rep := range r.Replicas {
		fmt.Fprintf(w, "Replica %s\n", rep.Region)
		row("key", rep.KeyId)
		row("wrapping public key SHA-256", rep.WrappingPublicKeySHA256)
		row("wrapped material SHA-256", rep.EncryptedKeyMaterialSHA256)
		row("alias", rep.AliasName)
		row("verified", rep.Verification)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "Warning: "+warn)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
