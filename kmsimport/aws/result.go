package aws

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Result is what an import did, for people (the summary) and scripts
// (JSON). Field names follow AWS's where AWS has one.
type Result struct {
	KeyId                   string `json:"KeyId,omitempty"`
	Arn                     string `json:"Arn,omitempty"`
	AliasName               string `json:"AliasName,omitempty"`
	KeySpec                 string `json:"KeySpec"`
	KeyUsage                string `json:"KeyUsage"`
	Origin                  string `json:"Origin"`
	KeyState                string `json:"KeyState,omitempty"`
	CreatedKMSKey           bool   `json:"CreatedKmsKey"`
	WrappingAlgorithm       string `json:"WrappingAlgorithm,omitempty"`
	WrappingKeySpec         string `json:"WrappingKeySpec,omitempty"`
	WrappingPublicKeySHA256 string `json:"WrappingPublicKeySha256,omitempty"`
	// KMSEndpoint is the endpoint that handed out the wrapping public key,
	// as the transport sent to it, with its TLS identity.
	KMSEndpoint                *kmsimport.Endpoint `json:"KmsEndpoint,omitempty"`
	ParametersValidTo          time.Time           `json:"ParametersValidTo,omitzero"`
	EncryptedKeyMaterialSHA256 string              `json:"EncryptedKeyMaterialSha256,omitempty"`
	KeyMaterialId              string              `json:"KeyMaterialId,omitempty"`
	ExpirationModel            string              `json:"ExpirationModel,omitempty"`
	ValidTo                    *time.Time          `json:"ValidTo,omitempty"`
	HSM                        kmsimport.HSMKey    `json:"Hsm"`
	Verification               Verification        `json:"Verification"`
	Replicas                   []ReplicaResult     `json:"Replicas,omitempty"`
	Warnings                   []string            `json:"Warnings,omitempty"`
	// HSMEvidence says whether the HSM's evidence the proof was checked
	// against is authentic: for upload, "signed by audit key ..., signature
	// checked" or "unsigned, not checked ..."; empty when it came from the
	// token in this same run.
	HSMEvidence string `json:"HsmEvidence,omitempty"`
	// Resumed lists what an earlier, interrupted run had done that this
	// one took up instead of doing it again.
	Resumed []string               `json:"Resumed,omitempty"`
	Steps   []kmsimport.StepRecord `json:"Steps"`
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// fail wraps err from step with what exists now and how to resume.
func (r *run) fail(step string, err error) error {
	se := &kmsimport.StepError{Step: step, Err: err, Journal: r.im.Journal.Path()}
	res := r.res
	for _, s := range r.resumed {
		se.State = append(se.State, "taken up from an earlier run: "+s)
	}
	if res.HSM.Generated && len(r.resumed) == 0 {
		se.State = append(se.State, fmt.Sprintf("HSM key %q (CKA_ID %s) was generated in token %q and is kept as the master copy", res.HSM.KeyLabel, res.HSM.KeyID, res.HSM.Token.Label))
	}
	if contains(r.unknown, "C_GenerateKey") || contains(r.unknown, "C_GenerateKeyPair") {
		se.State = append(se.State, fmt.Sprintf("unknown whether HSM key %q was generated", r.req.KeyLabel))
	}
	material := "waits for key material (PendingImport)"
	switch {
	case res.KeyMaterialId != "":
		material = "holds the HSM key's material (KeyMaterialId " + res.KeyMaterialId + ")"
	case contains(r.unknown, "ImportKeyMaterial"):
		material = "may hold the material: unknown, the ImportKeyMaterial request may have reached KMS"
	case r.existing != nil && r.existing.KeyState == "Enabled":
		material = "is Enabled with material imported before"
	}
	switch {
	case res.CreatedKMSKey:
		se.State = append(se.State, fmt.Sprintf("KMS key %s was created (origin EXTERNAL, tagged %s=%s) and %s", res.KeyId, TagHSMKeyID, res.HSM.KeyID, material))
	case contains(r.unknown, "CreateKey"):
		se.State = append(se.State, fmt.Sprintf("unknown: the CreateKey request may have reached KMS; if it did, the new key carries the tags %s=%s and %s (see the journal)", TagHSMKeyID, res.HSM.KeyID, TagAttempt))
	case res.KeyId != "" && (r.tagged || res.KeyMaterialId != "" || contains(r.unknown, "ImportKeyMaterial") || contains(r.unknown, "TagResource")):
		tag := ""
		if r.tagged {
			tag = ", now tagged with the link to HSM key CKA_ID " + res.HSM.KeyID
		} else if contains(r.unknown, "TagResource") {
			tag = ", perhaps tagged with the link (unknown: the TagResource request may have reached KMS)"
		}
		se.State = append(se.State, fmt.Sprintf("existing KMS key %s%s, %s", res.KeyId, tag, material))
	}
	if contains(r.unknown, "CreateAlias") {
		se.State = append(se.State, fmt.Sprintf("unknown whether alias %s now points to %s: the CreateAlias request may have reached KMS", r.req.Alias, res.KeyId))
	} else if res.AliasName != "" && step != StepAlias {
		se.State = append(se.State, fmt.Sprintf("alias %s points to %s", res.AliasName, res.KeyId))
	}
	if contains(r.unknown, "DeleteImportedKeyMaterial") {
		se.State = append(se.State, "unknown whether the key material was deleted: the DeleteImportedKeyMaterial request may have reached KMS")
	}
	for _, rep := range res.Replicas {
		if rep.Created {
			se.State = append(se.State, fmt.Sprintf("replica %s was created in %s", rep.KeyId, rep.Region))
		}
	}
	if len(se.State) > 0 {
		se.Resume = r.resumeAdvice(err)
	}
	if step == StepReplicate && !errors.Is(err, kmsimport.ErrVerification) {
		se.Resume = fmt.Sprintf("fix the cause above, then run the same kmsbridge import --multi-region again with --hsm-key-id %s --kms-key-id %s (without --generate): it finds the replicas made so far and imports the same material into each", res.HSM.KeyID, res.KeyId)
	}
	return se
}

// resumeAdvice is the one command that finishes the job on this host.
func (r *run) resumeAdvice(err error) string {
	if errors.Is(err, kmsimport.ErrVerification) {
		// Re-running cannot fix a KMS key that does not behave as the HSM
		// key does; say how to look, and what not to do.
		return fmt.Sprintf("nothing to re-run: do not use KMS key %s until kmsbridge verify --kms-key-id %s --hsm-key-id %s passes on the HSM host; if it never does, schedule the key's deletion and import again into a new one", r.res.KeyId, r.res.KeyId, r.res.HSM.KeyID)
	}
	fix := "fix the cause above, then "
	if errors.Is(err, kmsimport.ErrJournal) {
		fix = "make the journal (--state-dir) and the ceremony record writable again (see the cause above), then "
	}
	switch r.command() {
	case "upload":
		return fix + "run the same kmsbridge upload again on this host, with the same wrapped file (or, if its import parameters expired, prepare --kms-key-id " + r.res.KeyId + ", wrap and upload again)"
	case "prepare":
		return fix + "run the same kmsbridge prepare again on this host: it finds the KMS key this run made and does not make another"
	case "wrap":
		return fix + "run the same kmsbridge wrap again on this host, with the same bundle: it takes up the HSM key this run generated instead of refusing its label"
	case "delete-material":
		return fix + "run the same kmsbridge delete-material again: it checks what KMS holds before deleting"
	case "ceremony":
		return fix + "run the same kmsbridge ceremony run again with the same file: it takes up every key where this run stopped"
	}
	alt := ""
	if r.res.HSM.KeyID != "" {
		alt = fmt.Sprintf(" (on a host without this journal: kmsbridge import --hsm-key-id %s without --generate, which finds the KMS key by its link tags)", r.res.HSM.KeyID)
	}
	return fix + "run the same kmsbridge import command again on this host: it finds what this run made and finishes it, never creating a second KMS key" + alt
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
	if r.KMSEndpoint != nil {
		row("endpoint", r.KMSEndpoint.String())
	}
	fmt.Fprintln(w, "HSM")
	t := r.HSM.Token
	row("token", fmt.Sprintf("%q serial %s (%s %s)", t.Label, t.Serial, t.Manufacturer, t.Model))
	gen := "existing key"
	if r.HSM.Generated {
		gen = "generated by this import"
	}
	if r.HSM.Adopted {
		gen = "existing key, adopted with --adopt"
	}
	row("key label", fmt.Sprintf("%q (%s)", r.HSM.KeyLabel, gen))
	row("key CKA_ID", r.HSM.KeyID)
	row("key URI", r.HSM.KeyURI)
	row("provenance", r.HSM.Provenance)
	for _, a := range r.HSM.Adaptations {
		row("adaptation", a)
	}
	kcv := r.HSM.KeyCheckValue
	if kcv == "" {
		kcv = "not provided by this token"
	}
	row("key check value", kcv)
	row("evidence", r.HSMEvidence)
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
	for _, s := range r.Resumed {
		fmt.Fprintln(w, "Resumed: "+s)
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
