package kmsimport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// step is one named step of a flow.
type step struct {
	name string
	fn   func(context.Context) (string, error)
	skip bool
}

// runSteps runs steps in order until one fails, reporting each as it
// completes or fails, so a record shows every step even if the process is
// killed later.
func (r *run) runSteps(ctx context.Context, steps []step) error {
	for _, s := range steps {
		if s.skip {
			continue
		}
		if err := ctx.Err(); err != nil {
			_ = r.im.Journal.Note(r.command(), "interrupted", map[string]string{"BeforeStep": s.name})
			err = r.fail(s.name, fmt.Errorf("%w: stopped by a signal before this step", ErrInterrupted))
			r.emit(StepInterrupted, "", err)
			return err
		}
		summary, err := s.fn(ctx)
		r.res.Resumed = r.resumed
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, ErrInterrupted) {
				err = fmt.Errorf("%w by a signal during this step: %w", ErrInterrupted, err)
			}
			err = r.fail(s.name, err)
			r.emit(s.name, "", err)
			if errors.Is(err, ErrInterrupted) {
				_ = r.im.Journal.Note(r.command(), "interrupted", map[string]string{"DuringStep": s.name})
				r.emit(StepInterrupted, "", err)
			}
			return err
		}
		r.res.Steps = append(r.res.Steps, StepRecord{Name: s.name, Summary: summary, Time: r.im.now().UTC()})
		r.emit(s.name, summary, nil)
		crashPoint("step:" + s.name)
		if r.im.Halt != nil {
			if herr := r.im.Halt(); herr != nil {
				return r.fail(s.name, fmt.Errorf("%w: %v; stopped before the next change", ErrJournal, herr))
			}
		}
	}
	return nil
}

// StepInterrupted names the record entry written when a signal stops a
// flow between two steps.
const StepInterrupted = "interrupted"

// ErrInterrupted means SIGINT or SIGTERM stopped the command between two
// steps.
var ErrInterrupted = errors.New("interrupted")

// StepEvent is one step completed or failed, with every identity and
// digest the flow knows at that point (never a secret), for a ceremony
// record.
type StepEvent struct {
	Step    string
	Summary string
	Err     error
	Facts   map[string]string
	Token   *hsm.TokenIdentity
}

func (r *run) emit(step, summary string, err error) {
	if r.im.Log != nil {
		if err != nil {
			r.im.Log.Error("step failed", "step", step)
		} else {
			r.im.Log.Info(summary, "step", step)
		}
	}
	if r.im.Observe != nil {
		ev := StepEvent{Step: step, Summary: summary, Err: err, Facts: r.facts()}
		if r.res.HSM.Token.Serial != "" || r.res.HSM.Token.Label != "" {
			tok := r.res.HSM.Token
			ev.Token = &tok
		}
		r.im.Observe(ev)
	}
}

// facts lists what the flow has established so far, by identity and digest.
func (r *run) facts() map[string]string {
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
		add("ImportTokenSha256", sha256Hex(r.token))
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
