package kmsimport

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
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
func (im *Importer) Run(ctx context.Context, req Request) (*Result, error) {
	r := &run{im: im, req: &req, res: &Result{Origin: string(types.OriginTypeExternal)}}
	err := r.runSteps(ctx, []step{
		{StepValidate, r.validate, false},
		{StepSelectKey, r.selectKey, false},
		{StepApproval, r.refuseDualControl, false},
		{StepProbe, r.probe, false},
		{StepCheckKMS, r.checkKMS, false},
		{StepGenerate, r.generate, !req.Generate},
		{StepCreateKey, r.createKey, false},
		{StepGetParameters, r.getParameters, false},
		{StepWrap, r.wrap, false},
		{StepImport, r.importMaterial, false},
		{StepAlias, r.alias, req.Alias == ""},
		{StepVerify, r.verify, false},
		{StepReplicate, r.replicate, !req.MultiRegion},
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

func (r *run) verify(ctx context.Context) (string, error) {
	v, err := Verify(ctx, r.im.KMS, r.im.Token, r.res.KeyId, r.key, r.spec)
	r.res.Verification = v
	r.res.KeyState = v.KeyState
	if err != nil {
		return "", err
	}
	return v.Summary, nil
}

// setSpec fixes the key spec and its usage; Validate has checked the usage.
func (r *run) setSpec(spec KeySpec) {
	r.spec = spec
	r.usage, _ = spec.Usage(r.req.KeyUsage)
	r.res.KeySpec, r.res.KeyUsage = string(spec.Name), string(r.usage)
}
