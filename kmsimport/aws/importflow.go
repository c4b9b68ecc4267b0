package aws

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Steps, in order. Their names appear in logs, errors and the Result.
const (
	StepValidate      = "validate"
	StepSelectKey     = "select-hsm-key"
	StepProbe         = "probe-wrapping"
	StepCheckKMS      = "check-kms"
	StepGenerate      = "generate-hsm-key"
	StepCreateKey     = "create-kms-key"
	StepGetParameters = "get-parameters"
	StepWrap          = "wrap"
	StepImport        = "import"
	StepAlias         = "alias"
	StepVerify        = "verify"
)

// Run imports the HSM key's material into KMS and verifies the KMS key
// works. Every check that can fail without changing anything runs before
// the first change. When a later step fails, the *StepError says what
// exists now and the command that finishes the job.
//
// The steps, in order, each with where it is; the step engine
// (engine.go) runs them. hsm_steps.go and kms_steps.go are each in step
// order, so the flow reads top-down by following this list.
func (im *Importer) Run(ctx context.Context, req Request) (*Result, error) {
	r := &run{im: im, req: &req, res: &Result{Origin: string(types.OriginTypeExternal)}}
	err := r.runSteps(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: r.validate},                           // below
		{Name: StepSelectKey, Run: r.selectKey},                         // hsm_steps.go
		{Name: StepApproval, Run: r.refuseDualControl},                  // hsm_steps.go
		{Name: StepProbe, Run: r.probe},                                 // hsm_steps.go
		{Name: StepCheckKMS, Run: r.checkKMS},                           // kms_steps.go
		{Name: StepGenerate, Run: r.generate, Skip: !req.Generate},      // hsm_steps.go
		{Name: StepCreateKey, Run: r.createKey},                         // kms_steps.go
		{Name: StepGetParameters, Run: r.getParameters},                 // kms_steps.go
		{Name: StepWrap, Run: r.wrap},                                   // hsm_steps.go
		{Name: StepImport, Run: r.importMaterial},                       // kms_steps.go
		{Name: StepAlias, Run: r.alias, Skip: req.Alias == ""},          // kms_steps.go
		{Name: StepVerify, Run: r.verify},                               // below
		{Name: StepReplicate, Run: r.replicate, Skip: !req.MultiRegion}, // multiregion.go
	})
	return r.res, err
}

func (r *run) validate(context.Context) (string, error) {
	if r.req.WrappingKeySpec == "" {
		r.req.WrappingKeySpec = types.WrappingKeySpecRsa4096
	}
	if err := r.req.Validate(r.im.now()); err != nil {
		return "", err
	}
	if len(r.im.Replicas) > 0 && !r.req.MultiRegion {
		return "", invalid("--replica-region makes replicas of a multi-Region key: add --multi-region")
	}
	if r.req.MultiRegion && len(r.im.Replicas) == 0 {
		return "", invalid("--multi-region: give each Region to replicate to with --replica-region (a multi-Region key without replicas is possible, but then say --replica-region later with import --kms-key-id)")
	}
	r.res.ExpirationModel = string(r.req.Expiry.Model())
	if !r.req.Expiry.NoExpiry {
		v := r.req.Expiry.ValidTo.UTC()
		r.res.ValidTo = &v
	}
	r.res.WrappingKeySpec = string(r.req.WrappingKeySpec)
	if r.req.KeySpec != "" || r.req.Generate {
		spec := KeySpecs[0]
		if r.req.KeySpec != "" {
			spec, _ = ParseKeySpec(r.req.KeySpec)
		}
		r.setSpec(spec)
	}
	return "request is complete and consistent", nil
}

// setSpec fixes the key spec and its usage; Validate has checked the usage.
func (r *run) setSpec(spec KeySpec) {
	r.usage, _ = spec.Usage(r.req.KeyUsage)
	r.spec = forUsage(spec, r.usage)
	r.res.KeySpec, r.res.KeyUsage = string(spec.Name), string(r.usage)
}

func (r *run) verify(ctx context.Context) (string, error) {
	if msg, err := r.othersMissing(ctx); msg != "" || err != nil {
		return msg, err
	}
	v, err := Verify(ctx, r.im.KMS, r.im.Token, r.res.KeyId, r.key, r.spec)
	r.res.Verification = v
	r.res.KeyState = v.KeyState
	if err != nil {
		return "", err
	}
	return v.Summary, nil
}

// othersMissing handles a re-import into a rotated key that other deleted
// or expired materials keep PendingImport: this run's material is back,
// which is all this command can do, so it succeeds and says, material by
// material, the import that makes the key usable again. "" when the key is
// not in that state (Verify then judges it).
func (r *run) othersMissing(ctx context.Context) (string, error) {
	if r.material == nil || r.material.KeyMaterialId == "" {
		return "", nil
	}
	d, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(r.res.KeyId)})
	if err != nil {
		return "", explain("DescribeKey", err)
	}
	if d.KeyMetadata.KeyState != types.KeyStatePendingImport {
		return "", nil
	}
	tags, err := r.listTags(ctx, r.res.KeyId)
	if err != nil {
		return "", err
	}
	ms, _, err := ListMaterials(ctx, r.im.KMS, d.KeyMetadata, tags)
	if err != nil {
		return "", err
	}
	if m := MaterialOf(ms, r.key.IDHex()); m == nil || m.ImportState != string(types.ImportStateImported) {
		return "", nil
	}
	var missing []string
	for _, m := range ms {
		if strings.HasPrefix(m.State, "PENDING") || m.ImportState == string(types.ImportStateImported) {
			continue
		}
		fix := "no tag names its HSM key: import it with kmsbridge import --kms-key-id " + r.res.KeyId + " --hsm-key-id HEX"
		if m.HSMKeyID != "" {
			fix = fmt.Sprintf("kmsbridge import --kms-key-id %s --hsm-key-id %s", r.res.KeyId, m.HSMKeyID)
		}
		missing = append(missing, fmt.Sprintf("material %s (%s): %s", shortID(m.KeyMaterialId), m.State, fix))
	}
	if len(missing) == 0 {
		return "", nil
	}
	r.res.KeyState = string(types.KeyStatePendingImport)
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("KMS key %s stays PendingImport (unusable) until its other deleted or expired material is imported again: %s", r.res.KeyId, strings.Join(missing, "; ")))
	return fmt.Sprintf("material %s is imported; KMS key %s stays PendingImport until %d other material(s) are imported again (see the warning); not verified while unusable", shortID(r.material.KeyMaterialId), r.res.KeyId, len(missing)), nil
}
