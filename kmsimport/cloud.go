package kmsimport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// The cloud-neutral seam. Every cloud that imports with the same
// construction the token performs (RSA-OAEP, or CKM_RSA_AES_KEY_WRAP:
// an ephemeral AES-256 key under RSA-OAEP, the target key under AES key
// wrap with padding) is an Adapter; the HSM side (hsmside.go) and the
// step engine (engine.go) are the same for all of them. Each cloud's
// sub-package (kmsimport/aws, kmsimport/gcp, kmsimport/azure) holds its
// client, rules, result fields and flow and implements Adapter; this
// package imports none of them, nor any cloud's SDK (neutral_test.go). No
// cloud wraps or reads key material any other way than through the HSM
// side.

// CloudTarget is one cloud's side of the wrap.
type CloudTarget interface {
	// Cloud names the cloud in messages, e.g. "Google Cloud KMS".
	Cloud() string
	// WrapMethods lists the wrap methods the cloud accepts for material
	// of p, strongest first, each with the cloud's own name for it.
	WrapMethods(p hsm.KeyParams) []CloudWrap
}

// Adapter is one cloud for one request, as the neutral core and the
// command line see it. The rest of a cloud's side is its flow's: its
// steps, and its result fields as the record sees them (Flow.Facts).
type Adapter interface {
	CloudTarget
	// JournalTarget names the cloud account and place the request's runs
	// are journaled under (journal.Scope's Target): runs into one target
	// share one journal and its lock.
	JournalTarget() string
	// RecordInputs is the request as the ceremony record's entries name
	// it, with the cloud under "Cloud" (AWS's leaves it out).
	RecordInputs() map[string]string
}

// CloudWrap is a wrap method under the name a cloud gives it, with the
// RSA wrapping key size the cloud will use.
type CloudWrap struct {
	Name    string
	Method  hsm.WrapMethod
	RSABits int
}

// ChooseCloudWrap returns the first of target's wrap methods for p that
// the token was checked to perform (generating the key first when
// generate), and what was passed over and why. It changes nothing.
func ChooseCloudWrap(tok Token, target CloudTarget, p hsm.KeyParams, generate bool) (CloudWrap, []string, error) {
	pr, err := ProbeWrap(tok, hsm.Ask{Key: p, Generate: generate}, target.WrapMethods(p))
	if err != nil {
		var u *hsm.UnsupportedError
		if errors.As(err, &u) {
			return CloudWrap{}, nil, fmt.Errorf("%w: %v; so it cannot import %s material into %s", hsm.ErrUnsuitableKey, err, p, target.Cloud())
		}
		return CloudWrap{}, nil, err
	}
	if pr.Chosen.Name == "" {
		return CloudWrap{}, nil, fmt.Errorf("%w: the token can wrap %s material with none of the methods %s accepts for it: %s", ErrInvalidInput, p, target.Cloud(), strings.Join(pr.Refused, "; "))
	}
	return pr.Chosen, append(pr.Refused, pr.Warnings...), nil
}
