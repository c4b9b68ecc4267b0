package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// The HSM steps of AWS's import, in step order (importflow.go lists them
// all): select-hsm-key, check-approval, probe-wrapping, generate-hsm-key,
// wrap. Each goes through the HSM side every cloud shares (hsmside.go);
// what is AWS's here is KMS's key specs and wrapping algorithms.

// selectKey chooses the HSM key (ChooseHSMKey), and with it, for an
// existing key the request named no spec for, the KMS key spec.
func (r *run) selectKey(context.Context) (string, error) {
	r.res.HSM.Token = r.im.Token.Identity()
	ch, err := kmsimport.ChooseHSMKey(r.im.Token, r.owner(), r.im.Journal, kmsimport.KeyChoice{
		Label: r.req.KeyLabel, ID: r.req.KeyID, Type: r.req.KeyType, Generate: r.req.Generate, LabelFree: r.req.LabelFree,
		AllowNonSensitive: r.req.AllowNonSensitive, OfferNonSensitive: true,
		Params: r.spec.HSM, Known: r.spec.Name != "", Kinds: []hsm.KeyParams{hsm.AES256(), hsm.RSAKey(0)}, Kind: r.specOf,
		What: "secret or private key", NotFound: ", or create it with --generate", Command: r.command(),
	})
	r.res.Warnings = append(r.res.Warnings, ch.Warnings...)
	if ch.Key != nil {
		// Taken, even when the journal could not note the resumption: the
		// failure then says the key exists.
		r.req.Generate = false
		r.setKey(ch.Key, ch.Generated)
		r.res.HSM.Adopted = r.res.HSM.Adopted || ch.Adopted
		if ch.Resumed != "" {
			r.resumed = append(r.resumed, ch.Resumed)
		}
	}
	if err != nil {
		return "", err
	}
	return ch.Summary, nil
}

// specOf is the KMS key spec of an existing HSM key the request gave no
// spec for, which becomes the run's.
func (r *run) specOf(k *hsm.Key) (hsm.KeyParams, error) {
	spec, ok := SpecOfHSMKey(k)
	if !ok {
		return hsm.KeyParams{}, fmt.Errorf("%w: HSM key %q is not the material of any KMS key spec (%s)", hsm.ErrUnsuitableKey, k.Label, SpecNames())
	}
	if _, err := spec.Usage(r.req.KeyUsage); err != nil {
		return hsm.KeyParams{}, err
	}
	r.setSpec(spec)
	return spec.HSM, nil
}

func (r *run) setKey(k *hsm.Key, generated bool) {
	r.key = k
	r.res.HSM.Take(k, generated)
}

// refuseDualControl stops a one-command import of a key under dual
// control: the SO must approve the wrapping key between getting it from KMS
// and the wrap, which is what the split is for.
func (r *run) refuseDualControl(context.Context) (string, error) {
	if r.dualControl() {
		return "", invalid("HSM key %q has CKA_WRAP_WITH_TRUSTED=true (dual control): the Security Officer must approve each KMS wrapping key before the wrap, so use kmsbridge prepare, then approve (as SO) and wrap on the HSM host, then upload", r.key.Label)
	}
	return "no dual control on this key", nil
}

// dualControl reports whether the key is, or will be, wrappable only under
// a wrapping key the Security Officer approved.
func (r *run) dualControl() bool {
	return r.req.WrapWithTrusted || r.key != nil && r.key.WrapWithTrusted
}

// probe chooses the wrapping algorithm: the one asked for, which the
// token must be able to do, or the strongest KMS accepts for the spec that
// the token can (ProbeWrap).
func (r *run) probe(context.Context) (string, error) {
	if r.req.WrappingAlgorithm != "" {
		w, _ := ParseWrappingAlgorithm(r.req.WrappingAlgorithm)
		if err := CheckWrapping(r.spec, w, r.req.WrappingKeySpec); err != nil {
			return "", err
		}
		warnings, err := r.tokenCan(w)
		if err != nil {
			if !kmsimport.IsWrapOnly(err) {
				return "", r.cannot(err)
			}
			return "", fmt.Errorf("%w: %v, so it cannot do --wrapping-algorithm %s for %s; %s", kmsimport.ErrInvalidInput, err, w.Algorithm, r.spec.Name, r.alternatives(w))
		}
		r.useWrapping(w, warnings)
		return fmt.Sprintf("token can wrap %s material with %s, as asked", r.spec.Name, w.Algorithm), nil
	}
	ws := ValidWrappings(r.spec, r.req.WrappingKeySpec)
	methods := make([]kmsimport.CloudWrap, len(ws))
	for i, w := range ws {
		methods[i] = cloudWrap(w, r.req.WrappingKeySpec)
	}
	pr, err := kmsimport.ProbeWrap(r.im.Token, r.ask(), methods)
	if err != nil {
		return "", r.cannot(err)
	}
	for _, w := range ws {
		if string(w.Algorithm) != pr.Chosen.Name {
			continue
		}
		r.useWrapping(w, pr.Warnings)
		msg := fmt.Sprintf("using %s, the strongest wrapping algorithm KMS accepts for %s that the token supports", w.Algorithm, r.spec.Name)
		if len(pr.Refused) > 0 {
			msg += ": " + strings.Join(pr.Refused, "; ")
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("used %s: %s", w.Algorithm, strings.Join(pr.Refused, "; ")))
		}
		return msg, nil
	}
	return "", fmt.Errorf("%w: token %q can wrap %s material with none of the algorithms KMS accepts for it under %s: %s", kmsimport.ErrInvalidInput, r.res.HSM.Token.Label, r.spec.Name, r.req.WrappingKeySpec, strings.Join(pr.Refused, "; "))
}

// ask is what the token must do for this run, but the wrap method.
func (r *run) ask() hsm.Ask {
	return hsm.Ask{Key: r.spec.HSM, Generate: r.req.Generate && r.key == nil, DualControl: r.dualControl()}
}

// tokenCan asks the token, by its capability probes, whether it can
// generate (when asked), prove and wrap this spec's material with w.
func (r *run) tokenCan(w Wrapping) ([]string, error) {
	ask := r.ask()
	ask.Wrap = hsm.WrapMethod{RSAAES: w.RSAAES, OAEP: w.OAEP}
	return r.im.Token.Check(ask)
}

// cannot turns what the token lacks beyond one wrapping algorithm (a key
// type, the proof, dual control, wrapping at all) into the refusal.
func (r *run) cannot(err error) error {
	var u *hsm.UnsupportedError
	if !errors.As(err, &u) {
		return err
	}
	// What the token lacks is the token's, not the key's: it is never
	// called "key is not suitable".
	return fmt.Errorf("%w; so it cannot import %s material", err, r.spec.Name)
}

// useWrapping records the chosen wrapping and what the token check said
// to pass on.
func (r *run) useWrapping(w Wrapping, warnings []string) {
	r.wrapping = w
	r.res.WrappingAlgorithm = string(w.Algorithm)
	for _, warn := range warnings {
		if strings.HasPrefix(warn, "CKA_WRAP_WITH_TRUSTED=false was left out") {
			r.res.HSM.Adaptations = append(r.res.HSM.Adaptations, warn)
			continue
		}
		r.res.Warnings = append(r.res.Warnings, warn)
	}
}

// alternatives names the other algorithms KMS accepts for the spec that
// the token was checked to do.
func (r *run) alternatives(not Wrapping) string {
	var alts []string
	for _, w := range ValidWrappings(r.spec, r.req.WrappingKeySpec) {
		if w == not {
			continue
		}
		if _, err := r.tokenCan(w); err == nil {
			alts = append(alts, string(w.Algorithm))
		}
	}
	if len(alts) == 0 {
		return "it was checked with every other algorithm KMS accepts for it under " + string(r.req.WrappingKeySpec) + ", and can do none of them"
	}
	return "choose " + strings.Join(alts, " or ") + ", which it was checked to do"
}

// generate makes the HSM key (GenerateHSMKey), unless an earlier run did.
func (r *run) generate(context.Context) (string, error) {
	if r.key != nil {
		return fmt.Sprintf("HSM key %q (CKA_ID %s) was generated by an earlier run of this import; not generating another", r.key.Label, r.key.IDHex()), nil
	}
	// select-hsm-key (or the rotation's choice of label) found the label
	// free, and the journal keeps other runs off the token meanwhile.
	tok := r.res.HSM.Token
	k, err := kmsimport.GenerateHSMKey(r.im.Token, r.im.Journal, r.command(), r.req.KeyLabel, r.spec.HSM, r.req.WrapWithTrusted,
		map[string]string{"TokenLabel": tok.Label, "KeySpec": string(r.spec.Name)})
	if k != nil {
		r.setKey(k, true)
	}
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("generated %s key %q (CKA_ID %s) in token %q: sensitive, extractable only by wrapping, every template attribute read back as asked", r.spec.HSM, k.Label, k.IDHex(), r.res.HSM.Token.Label)
	for _, a := range r.res.HSM.Adaptations {
		msg += "; " + a
	}
	return msg, nil
}

// wrap wraps the HSM key under KMS's wrapping public key inside the token
// (WrapInToken).
func (r *run) wrap(context.Context) (string, error) {
	wrapped, sum, err := kmsimport.WrapInToken(r.im.Token, r.key, r.pub, hsm.WrapMethod{RSAAES: r.wrapping.RSAAES, OAEP: r.wrapping.OAEP})
	if err != nil {
		return "", err
	}
	r.wrapped = wrapped
	r.res.EncryptedKeyMaterialSHA256 = sum
	return fmt.Sprintf("wrapped HSM key %q inside the token with %s: %d bytes, SHA-256 %s", r.key.Label, r.wrapping.Algorithm, len(wrapped), r.res.EncryptedKeyMaterialSHA256), nil
}

// CheckTokenCan says, without changing anything, whether tok can import
// material of spec as req asks: generate it (when req.Generate) and wrap it
// with req's wrapping algorithm. key is the existing HSM key, or nil. It
// runs the same checks and probes as import.
func CheckTokenCan(tok kmsimport.Token, spec KeySpec, req Request, key *hsm.Key) error {
	r := &run{im: &Importer{Token: tok}, req: &req, res: &Result{}, key: key}
	r.res.HSM.Token = tok.Identity()
	r.setSpec(spec)
	if r.req.WrappingKeySpec == "" {
		r.req.WrappingKeySpec = types.WrappingKeySpecRsa4096
	}
	_, err := r.probe(context.Background())
	return err
}
