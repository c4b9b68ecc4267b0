package aws

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// The AWS flows' run is the engine's Flow: the engine runs the steps, the
// run says what exists (fail, in result.go) and what is known (facts).

// engine is the step engine over this run, with the Importer's settings.
func (r *run) engine() kmsimport.Engine {
	return kmsimport.Engine{Flow: r, Journal: r.im.Journal, Command: r.command(), Log: r.im.Log, Observe: r.im.Observe, Now: r.im.Now, Halt: r.im.Halt}
}

// runSteps runs steps with the engine (engine.go).
func (r *run) runSteps(ctx context.Context, steps []kmsimport.Step) error {
	return r.engine().Run(ctx, steps)
}

// emit reports a step, or a part of one (a replica), as the engine does.
func (r *run) emit(step, summary string, err error) {
	r.engine().Emit(step, summary, err)
}

// StepFailed is fail (result.go), with what was taken up from an earlier
// run in the Result.
func (r *run) StepFailed(step string, err error) error {
	r.res.Resumed = r.resumed
	return r.fail(step, err)
}

// StepDone adds a completed step to the Result.
func (r *run) StepDone(s kmsimport.StepRecord) {
	r.res.Resumed = r.resumed
	r.res.Steps = append(r.res.Steps, s)
}

// HSMToken is the token of the run, once selected.
func (r *run) HSMToken() hsm.TokenIdentity { return r.res.HSM.Token }

// Facts lists what the flow has established so far, by identity and digest.
func (r *run) Facts() map[string]string {
	f := map[string]string{}
	add := func(k, v string) {
		if v != "" {
			f[k] = v
		}
	}
	res := r.res
	add("KmsKeyId", res.KeyId)
	add("KmsKeyArn", res.Arn)
	add("AliasName", res.AliasName)
	add("KeySpec", res.KeySpec)
	add("KeyUsage", res.KeyUsage)
	add("WrappingAlgorithm", res.WrappingAlgorithm)
	add("WrappingKeySpec", res.WrappingKeySpec)
	add("WrappingPublicKeySha256", res.WrappingPublicKeySHA256)
	if res.KMSEndpoint != nil {
		for k, v := range res.KMSEndpoint.Facts() {
			add(k, v)
		}
	}
	if len(r.token) > 0 {
		add("ImportTokenSha256", kmsimport.SHA256Hex(r.token))
	}
	add("EncryptedKeyMaterialSha256", res.EncryptedKeyMaterialSHA256)
	add("KeyMaterialId", res.KeyMaterialId)
	add("ExpirationModel", res.ExpirationModel)
	if res.ValidTo != nil {
		add("ValidTo", res.ValidTo.Format(time.RFC3339))
	}
	for _, rep := range res.Replicas {
		add("Replica:"+rep.Region, rep.KeyId+" "+rep.EncryptedKeyMaterialSHA256)
	}
	add("HsmKeyLabel", res.HSM.KeyLabel)
	add("HsmKeyId", res.HSM.KeyID)
	add("HsmKeyCheckValue", res.HSM.KeyCheckValue)
	add("HsmKeyUri", res.HSM.KeyURI)
	if len(res.HSM.Adaptations) > 0 {
		add("HsmAdaptations", strings.Join(res.HSM.Adaptations, "; "))
	}
	if res.Verification.Summary != "" {
		add("VerificationSummary", res.Verification.Summary)
		add("KmsConfirmedHsmKey", strconv.FormatBool(res.Verification.MaterialConfirmed))
	}
	return f
}
