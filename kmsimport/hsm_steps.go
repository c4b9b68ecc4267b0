package kmsimport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
)

func (r *run) selectKey(context.Context) (string, error) {
	tok := r.im.Token.Identity()
	r.res.HSM.Token = tok
	if r.req.Generate {
		inUse := false
		if !r.req.LabelFree {
			var err error
			if inUse, err = r.im.Token.LabelInUse(r.req.KeyLabel); err != nil {
				return "", err
			}
		}
		if inUse {
			if summary, ok, err := r.resumeGenerated(); err != nil || ok {
				return summary, err
			}
			return "", fmt.Errorf("%w: token %q already has an object labelled %q, and this host's journal has no unfinished kmsbridge run that generated it: choose a new --key-label, or drop --generate to import that existing key", hsm.ErrLabelExists, tok.Label, r.req.KeyLabel)
		}
		return fmt.Sprintf("label %q is free in token %q (serial %s)", r.req.KeyLabel, tok.Label, tok.Serial), nil
	}
	sel := hsm.KeySelector{Label: r.req.KeyLabel, ID: r.req.KeyID, Type: r.req.KeyType}
	k, err := r.findKey(sel)
	if err != nil {
		return "", err
	}
	if err := r.checkPolicy(k); err != nil {
		return "", err
	}
	v, err := r.owner().ExistingKey(k, "run the same kmsbridge "+r.command()+" again with --adopt added")
	if err != nil {
		return "", err
	}
	if r.spec.Name == "" {
		spec, ok := SpecOfHSMKey(k)
		if !ok {
			return "", fmt.Errorf("%w: HSM key %q is not the material of any KMS key spec (%s)", hsm.ErrUnsuitableKey, k.Label, specNames())
		}
		if _, err := spec.Usage(r.req.KeyUsage); err != nil {
			return "", err
		}
		r.setSpec(spec)
	}
	if err := hsm.CheckForImport(k, r.spec.HSM); err != nil {
		return "", err
	}
	r.setKey(k, false)
	if !v.Provenance.Clean {
		r.res.HSM.Adopted = true
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("HSM key %q (CKA_ID %s) was adopted with --adopt although the token does not say it was generated there and never in the clear: %s", k.Label, k.IDHex(), v.Provenance))
	}
	return fmt.Sprintf("found HSM key %q (CKA_ID %s, %s) in token %q", k.Label, k.IDHex(), r.spec.HSM, tok.Label), nil
}

// findKey finds the key sel names: the secret key of a secret spec, the
// private key of a pair; with no spec yet, whichever exists.
func (r *run) findKey(sel hsm.KeySelector) (*hsm.Key, error) {
	if r.spec.Name != "" {
		return r.im.Token.FindKey(sel, r.spec.HSM)
	}
	k, err := r.im.Token.FindKey(sel, hsm.AES256())
	if errors.Is(err, hsm.ErrKeyNotFound) {
		k, err = r.im.Token.FindKey(sel, hsm.RSAKey(0))
		if errors.Is(err, hsm.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: no secret or private key with %s in token %q: check the label or CKA_ID, or create it with --generate", hsm.ErrKeyNotFound, sel, r.res.HSM.Token.Label)
		}
	}
	return k, err
}

func (r *run) setKey(k *hsm.Key, generated bool) {
	r.key = k
	r.res.HSM.KeyLabel = k.Label
	r.res.HSM.KeyID = k.IDHex()
	r.res.HSM.KeyCheckValue = k.CheckValueHex()
	r.res.HSM.KeyURI = hsm.KeyURI(r.res.HSM.Token, k)
	r.res.HSM.Generated = generated
	r.res.HSM.Provenance = k.Provenance()
}

func (r *run) probe(context.Context) (string, error) {
	if r.req.WrappingAlgorithm != "" {
		w, _ := ParseWrappingAlgorithm(r.req.WrappingAlgorithm)
		if err := CheckWrapping(r.spec, w, r.req.WrappingKeySpec); err != nil {
			return "", err
		}
		warnings, err := r.tokenCan(w)
		if err != nil {
			if !isWrapOnly(err) {
				return "", r.cannot(err)
			}
			return "", fmt.Errorf("%w: %v, so it cannot do --wrapping-algorithm %s for %s; %s", ErrInvalidInput, err, w.Algorithm, r.spec.Name, r.alternatives(w))
		}
		r.useWrapping(w, warnings)
		return fmt.Sprintf("token can wrap %s material with %s, as asked", r.spec.Name, w.Algorithm), nil
	}
	var refused []string
	for _, w := range ValidWrappings(r.spec, r.req.WrappingKeySpec) {
		warnings, err := r.tokenCan(w)
		if err == nil {
			r.useWrapping(w, warnings)
			msg := fmt.Sprintf("using %s, the strongest wrapping algorithm KMS accepts for %s that the token supports", w.Algorithm, r.spec.Name)
			if len(refused) > 0 {
				msg += ": " + strings.Join(refused, "; ")
				r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("used %s: %s", w.Algorithm, strings.Join(refused, "; ")))
			}
			return msg, nil
		}
		if !isWrapOnly(err) {
			return "", r.cannot(err)
		}
		refused = append(refused, fmt.Sprintf("no %s, because %v", w.Algorithm, err))
	}
	return "", fmt.Errorf("%w: token %q can wrap %s material with none of the algorithms KMS accepts for it under %s: %s", ErrInvalidInput, r.res.HSM.Token.Label, r.spec.Name, r.req.WrappingKeySpec, strings.Join(refused, "; "))
}

// isWrapOnly reports whether err means only this wrapping algorithm is
// out, so another may work.
func isWrapOnly(err error) bool {
	var u *hsm.UnsupportedError
	return errors.As(err, &u) && u.Kind == hsm.KindWrap
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

// generateOp is the PKCS#11 call that makes a key of the run's spec.
func (r *run) generateOp() string {
	if r.spec.Secret() {
		return "C_GenerateKey"
	}
	return "C_GenerateKeyPair"
}

func (r *run) generate(context.Context) (string, error) {
	if r.key != nil {
		return fmt.Sprintf("HSM key %q (CKA_ID %s) was generated by an earlier run of this import; not generating another", r.key.Label, r.key.IDHex()), nil
	}
	tok := r.res.HSM.Token
	p, err := r.im.Journal.Intend(journal.Intent{Command: r.command(), Op: r.generateOp(),
		Target: map[string]string{"KeyLabel": r.req.KeyLabel, "TokenSerial": tok.Serial, "TokenLabel": tok.Label, "KeySpec": string(r.spec.Name)},
		Find:   map[string]string{"KeyLabel": r.req.KeyLabel}})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrJournal, err)
	}
	crashPoint("intent:" + r.generateOp())
	// select-hsm-key (or the rotation's choice of label) found the label
	// free, and the journal keeps other runs off the token meanwhile.
	k, err := r.im.Token.GenerateAfterSearch(r.req.KeyLabel, r.spec.HSM, r.req.WrapWithTrusted)
	crashPoint("called:" + r.generateOp())
	if err != nil {
		if jerr := p.Done(journal.ResultFailed, nil, err); jerr != nil {
			return "", errors.Join(err, fmt.Errorf("%w: %v", ErrJournal, jerr))
		}
		return "", err
	}
	r.setKey(k, true)
	msg := fmt.Sprintf("generated %s key %q (CKA_ID %s) in token %q: sensitive, extractable only by wrapping, every template attribute read back as asked", r.spec.HSM, k.Label, k.IDHex(), r.res.HSM.Token.Label)
	for _, a := range r.res.HSM.Adaptations {
		msg += "; " + a
	}
	if err := p.Done(journal.ResultOK, map[string]string{"HsmKeyId": k.IDHex(), "HsmKeyLabel": k.Label}, nil); err != nil {
		return "", fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return msg, nil
}

// resumeGenerated takes up the HSM key under the label to generate when
// the ownership authority proves it the one an earlier, interrupted
// kmsbridge run generated there (the token's provenance attributes and
// this host's journal or record agree), or when the operator adopts it on
// purpose with --adopt: then it is imported as adopted, never as
// generated. Anything else is refused with what the token says of it.
func (r *run) resumeGenerated() (string, bool, error) {
	tok := r.res.HSM.Token
	k, err := r.im.Token.FindKey(hsm.KeySelector{Label: r.req.KeyLabel}, r.spec.HSM)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		return "", false, nil // another kind of object has the label
	}
	if err != nil {
		return "", false, fmt.Errorf("token %q has an object labelled %q: %w", tok.Label, r.req.KeyLabel, err)
	}
	v, err := r.owner().GeneratedKey(r.req.KeyLabel, k, "choose a new --key-label, or drop --generate to import that existing key, or run the same kmsbridge "+r.command()+" again with --adopt added to take it over on purpose (recorded, with its provenance)")
	if err != nil {
		return "", false, fmt.Errorf("token %q already has an object labelled %q: %w", tok.Label, r.req.KeyLabel, err)
	}
	if err := hsm.CheckForImport(k, r.spec.HSM); err != nil {
		return "", false, err
	}
	r.req.Generate = false
	if !v.Generated {
		r.setKey(k, false)
		r.res.HSM.Adopted = true
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("HSM key %q (CKA_ID %s) was adopted with --adopt, not generated by kmsbridge: %s", k.Label, k.IDHex(), v.Provenance))
		return fmt.Sprintf("label %q is taken by HSM key CKA_ID %s, which kmsbridge did not prove its own (%s): adopted on purpose with --adopt", k.Label, k.IDHex(), v.Provenance), true, nil
	}
	r.setKey(k, true)
	r.resumed = append(r.resumed, fmt.Sprintf("HSM key %q (CKA_ID %s), generated by an earlier run (%s)", k.Label, k.IDHex(), v.Evidence))
	if err := r.im.Journal.Note(r.command(), "resume", map[string]string{"HsmKeyId": k.IDHex(), "HsmKeyLabel": k.Label, "Evidence": v.Evidence}); err != nil {
		return "", false, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return fmt.Sprintf("label %q is taken by HSM key CKA_ID %s, which an earlier, unfinished run of kmsbridge generated (%s; the token says it was generated there and never in the clear): resuming with it", k.Label, k.IDHex(), v.Evidence), true, nil
}

func (r *run) wrap(context.Context) (string, error) {
	wrapped, err := r.wrapWith(r.wrapping)
	if err != nil {
		return "", err
	}
	r.wrapped = wrapped
	sum := sha256.Sum256(wrapped)
	r.res.EncryptedKeyMaterialSHA256 = hex.EncodeToString(sum[:])
	return fmt.Sprintf("wrapped HSM key %q inside the token with %s: %d bytes, SHA-256 %s", r.key.Label, r.wrapping.Algorithm, len(wrapped), r.res.EncryptedKeyMaterialSHA256), nil
}

func (r *run) wrapWith(w Wrapping) ([]byte, error) {
	if w.RSAAES {
		return r.im.Token.WrapRSAAES(r.key, r.pub, w.OAEP)
	}
	return r.im.Token.WrapOAEP(r.key, r.pub, w.OAEP)
}

// tokenCan asks the token, by its capability probes, whether it can
// generate (when asked), prove and wrap this spec's material with w.
func (r *run) tokenCan(w Wrapping) ([]string, error) {
	return r.im.Token.Check(hsm.Ask{
		Key:         r.spec.HSM,
		Generate:    r.req.Generate && r.key == nil,
		Wrap:        hsm.WrapMethod{RSAAES: w.RSAAES, OAEP: w.OAEP},
		DualControl: r.dualControl(),
	})
}

// dualControl reports whether the key is, or will be, wrappable only under
// a wrapping key the Security Officer approved.
func (r *run) dualControl() bool {
	return r.req.WrapWithTrusted || r.key != nil && r.key.WrapWithTrusted
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

// CheckTokenCan says, without changing anything, whether tok can import
// material of spec as req asks: generate it (when req.Generate) and wrap it
// with req's wrapping algorithm. key is the existing HSM key, or nil. It
// runs the same checks and probes as import.
func CheckTokenCan(tok Token, spec KeySpec, req Request, key *hsm.Key) error {
	r := &run{im: &Importer{Token: tok}, req: &req, res: &Result{}, key: key}
	r.res.HSM.Token = tok.Identity()
	r.setSpec(spec)
	if r.req.WrappingKeySpec == "" {
		r.req.WrappingKeySpec = types.WrappingKeySpecRsa4096
	}
	_, err := r.probe(context.Background())
	return err
}

// checkPolicy refuses an existing HSM key the token will not wrap, and one
// whose value can be read in the clear unless the user accepted that with
// --allow-non-sensitive, which the result and the record then carry.
func (r *run) checkPolicy(k *hsm.Key) error {
	if !k.Extractable {
		return fmt.Errorf("%w: HSM key %q has CKA_EXTRACTABLE=false, so the token will never wrap it and its material cannot reach KMS: generate a new key with --generate", hsm.ErrUnsuitableKey, k.Label)
	}
	if k.Sensitive {
		return nil
	}
	if !r.req.AllowNonSensitive {
		return fmt.Errorf("%w: HSM key %q has CKA_SENSITIVE=false: the token hands its value out in the clear, so copies may exist outside the HSM and it is no master copy to trust: generate a new key with --generate, or give --allow-non-sensitive to import it anyway (the result and the record say so)", hsm.ErrUnsuitableKey, k.Label)
	}
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("HSM key %q has CKA_SENSITIVE=false (its value can be read from the token in the clear); imported because --allow-non-sensitive was given", k.Label))
	return nil
}
