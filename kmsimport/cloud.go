package kmsimport

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// The cloud-neutral seam. Every cloud that imports with the same
// construction the token performs (RSA-OAEP, or CKM_RSA_AES_KEY_WRAP:
// an ephemeral AES-256 key under RSA-OAEP, the target key under AES key
// wrap with padding) is a CloudTarget; the HSM side below is the same for
// all of them. Each cloud's sub-package (kmsimport/gcp) holds its client,
// rules, result fields and flow, and calls these helpers for the HSM
// steps, so no cloud wraps or reads key material any other way.

// CloudTarget is one cloud's side of an import.
type CloudTarget interface {
	// Cloud names the cloud in results, journals and messages, e.g. "gcp".
	Cloud() string
	// WrapMethods lists the wrap methods the cloud accepts for material
	// of p, strongest first, each with the cloud's own name for it.
	WrapMethods(p hsm.KeyParams) []CloudWrap
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
	var refused []string
	for _, w := range target.WrapMethods(p) {
		warnings, err := tok.Check(hsm.Ask{Key: p, Generate: generate, Wrap: w.Method})
		if err == nil {
			return w, append(refused, warnings...), nil
		}
		if !isWrapOnly(err) {
			var u *hsm.UnsupportedError
			if errors.As(err, &u) {
				return CloudWrap{}, nil, fmt.Errorf("%w: %v; so it cannot import %s material into %s", hsm.ErrUnsuitableKey, err, p, target.Cloud())
			}
			return CloudWrap{}, nil, err
		}
		refused = append(refused, fmt.Sprintf("no %s, because %v", w.Name, err))
	}
	return CloudWrap{}, nil, fmt.Errorf("%w: the token can wrap %s material with none of the methods %s accepts for it: %s", ErrInvalidInput, p, target.Cloud(), strings.Join(refused, "; "))
}

// WrapInToken wraps k under pub with m inside the token: the one way any
// cloud's import gets its wrapped material.
func WrapInToken(tok Token, k *hsm.Key, pub *rsa.PublicKey, m hsm.WrapMethod) ([]byte, error) {
	if m.RSAAES {
		return tok.WrapRSAAES(k, pub, m.OAEP)
	}
	return tok.WrapOAEP(k, pub, m.OAEP)
}
