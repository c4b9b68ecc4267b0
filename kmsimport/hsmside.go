package kmsimport

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// The HSM side of an import, the same for every cloud: choose the HSM key
// (an existing one the operator named, or the label to generate under, or
// the key an earlier run generated there, each through the ownership
// authority), generate it, journaled, choose the strongest wrap method
// the cloud accepts that the token was checked to perform, and wrap inside
// the token. AWS's flows (hsm_steps.go) and each cloud's sub-package call
// these and nothing else to touch the HSM key; the cloud side supplies
// only its kinds of key, its wrap methods (CloudTarget) and its words.

// KeyChoice is what an import asks of its HSM key.
type KeyChoice struct {
	// Label and ID select the key; with Generate, Label is where to
	// generate it.
	Label string
	ID    []byte
	// Type is RFC 7512's type from a PKCS#11 URI, "" when not given.
	Type     string
	Generate bool
	// LabelFree: the caller's plan already found Label free.
	LabelFree bool
	// AllowNonSensitive takes a key whose value the token hands out in
	// the clear, with a warning; OfferNonSensitive says the command has
	// --allow-non-sensitive, so the refusal may name it.
	AllowNonSensitive, OfferNonSensitive bool
	// Params is the kind of key when the request fixed it (Known); else
	// the key is looked for as each of Kinds in turn, and Kind derives
	// the import's kind from the key found.
	Params hsm.KeyParams
	Known  bool
	Kinds  []hsm.KeyParams
	Kind   func(*hsm.Key) (hsm.KeyParams, error)
	// What names the keys looked for in the not-found refusal ("secret or
	// private key"); NotFound is its advice after "check the label or
	// CKA_ID".
	What, NotFound string
	// Command is the kmsbridge command, for the advice that re-runs it
	// with --adopt ("import").
	Command string
}

// ChosenKey is the HSM key an import uses.
type ChosenKey struct {
	// Key is the key; nil when it is to be generated under the free label.
	Key *hsm.Key
	// Params is its kind (Params of the choice, or what Kind derived).
	Params hsm.KeyParams
	// Generated: kmsbridge generated it (an earlier run, see Resumed).
	Generated bool
	// Adopted: taken over on purpose with --adopt.
	Adopted bool
	// Resumed says what an earlier run did that this one takes up; "".
	Resumed  string
	Warnings []string
	Summary  string
}

// ChooseHSMKey selects the HSM key as c asks, changing nothing in the
// token: with c.Generate, the label must be free, or hold the key an
// earlier kmsbridge run generated there (owner decides, and the journal
// notes the resumption), or one the operator adopts on purpose; without,
// the key named must be extractable, sensitive (or allowed not to be),
// proven kmsbridge's or adopted, and fit for import as its kind. owner
// nil is one over j that adopts nothing.
func ChooseHSMKey(tok Token, owner *ownership.Authority, j *journal.Journal, c KeyChoice) (ChosenKey, error) {
	id := tok.Identity()
	if owner == nil {
		owner = &ownership.Authority{TokenSerial: id.Serial, Journal: j, Command: c.Command}
	}
	if c.Generate {
		return chooseLabel(tok, owner, j, c)
	}
	sel := hsm.KeySelector{Label: c.Label, ID: c.ID, Type: c.Type}
	k, err := findHSMKey(tok, sel, c)
	if err != nil {
		return ChosenKey{}, err
	}
	ch := ChosenKey{Params: c.Params}
	if ch.Warnings, err = CheckKeyPolicy(k, c); err != nil {
		return ChosenKey{}, err
	}
	// From here a refusal keeps the policy's warning, for the partial
	// result.
	v, err := owner.ExistingKey(k, "run the same kmsbridge "+command(c)+" again with --adopt added")
	if err != nil {
		return ChosenKey{Warnings: ch.Warnings}, err
	}
	if !c.Known {
		if ch.Params, err = c.Kind(k); err != nil {
			return ChosenKey{Warnings: ch.Warnings}, err
		}
	}
	if err := hsm.CheckForImport(k, ch.Params); err != nil {
		return ChosenKey{Warnings: ch.Warnings}, err
	}
	ch.Key, ch.Generated = k, false
	if !v.Provenance.Clean {
		ch.Adopted = true
		ch.Warnings = append(ch.Warnings, fmt.Sprintf("HSM key %q (CKA_ID %s) was adopted with --adopt although the token does not say it was generated there and never in the clear: %s", k.Label, k.IDHex(), v.Provenance))
	}
	ch.Summary = fmt.Sprintf("found HSM key %q (CKA_ID %s, %s) in token %q", k.Label, k.IDHex(), ch.Params, id.Label)
	return ch, nil
}

func command(c KeyChoice) string {
	if c.Command == "" {
		return "import"
	}
	return c.Command
}

// chooseLabel is ChooseHSMKey with Generate: the label to generate under,
// or the key an earlier run generated under it.
func chooseLabel(tok Token, owner *ownership.Authority, j *journal.Journal, c KeyChoice) (ChosenKey, error) {
	id := tok.Identity()
	inUse := false
	if !c.LabelFree {
		var err error
		if inUse, err = tok.LabelInUse(c.Label); err != nil {
			return ChosenKey{}, err
		}
	}
	if !inUse {
		return ChosenKey{Params: c.Params, Summary: fmt.Sprintf("label %q is free in token %q (serial %s)", c.Label, id.Label, id.Serial)}, nil
	}
	k, err := tok.FindKey(hsm.KeySelector{Label: c.Label}, c.Params)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		// Another kind of object has the label: the public half a key pair
		// generation of this host stopped inside the token left, or not
		// kmsbridge's.
		in, ok, perr := owner.InterruptedPair(c.Label, func(id []byte) (bool, error) { return tok.OnlyPublicHalf(c.Label, id) })
		if perr != nil {
			return ChosenKey{}, perr
		}
		if ok {
			return ChosenKey{Params: c.Params, Summary: fmt.Sprintf("label %q holds only the public half of the key pair journal attempt %s was generating when it was stopped inside the token (CKA_ID %s, which that attempt chose): it will be destroyed and the pair generated again", c.Label, in.Attempt, in.Target[ownership.IntentKeyID])}, nil
		}
		return ChosenKey{}, fmt.Errorf("%w: token %q already has an object labelled %q, and this host's journal has no unfinished kmsbridge run that generated it: choose a new --key-label, or drop --generate to import that existing key", hsm.ErrLabelExists, id.Label, c.Label)
	}
	if err != nil {
		return ChosenKey{}, fmt.Errorf("token %q has an object labelled %q: %w", id.Label, c.Label, err)
	}
	if in, ok := owner.Interrupted(c.Label, k, tok.Incomplete(k)); ok {
		// Never usable, never used: generating destroys it first
		// (GenerateHSMKey) and starts again.
		return ChosenKey{Params: c.Params, Summary: fmt.Sprintf("label %q holds what journal attempt %s left when it was stopped inside the token while generating (CKA_ID %s, which that attempt chose; %s): it will be destroyed and the key generated again", c.Label, in.Attempt, k.IDHex(), ownership.ProvenanceOf(k))}, nil
	}
	v, err := owner.GeneratedKey(c.Label, k, "choose a new --key-label, or drop --generate to import that existing key, or run the same kmsbridge "+command(c)+" again with --adopt added to take it over on purpose (recorded, with its provenance)")
	if err != nil {
		return ChosenKey{}, fmt.Errorf("token %q already has an object labelled %q: %w", id.Label, c.Label, err)
	}
	if err := hsm.CheckForImport(k, c.Params); err != nil {
		return ChosenKey{}, err
	}
	ch := ChosenKey{Key: k, Params: c.Params}
	if !v.Generated {
		ch.Adopted = true
		ch.Warnings = append(ch.Warnings, fmt.Sprintf("HSM key %q (CKA_ID %s) was adopted with --adopt, not generated by kmsbridge: %s", k.Label, k.IDHex(), v.Provenance))
		ch.Summary = fmt.Sprintf("label %q is taken by HSM key CKA_ID %s, which kmsbridge did not prove its own (%s): adopted on purpose with --adopt", k.Label, k.IDHex(), v.Provenance)
		return ch, nil
	}
	ch.Generated = true
	ch.Resumed = fmt.Sprintf("HSM key %q (CKA_ID %s), generated by an earlier run (%s)", k.Label, k.IDHex(), v.Evidence)
	if err := j.Note(command(c), "resume", map[string]string{"HsmKeyId": k.IDHex(), "HsmKeyLabel": k.Label, "Evidence": v.Evidence}); err != nil {
		// The key is taken all the same, so the failure says it exists.
		return ch, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	ch.Summary = fmt.Sprintf("label %q is taken by HSM key CKA_ID %s, which an earlier, unfinished run of kmsbridge generated (%s; the token says it was generated there and never in the clear): resuming with it", k.Label, k.IDHex(), v.Evidence)
	return ch, nil
}

// findHSMKey finds the key sel names: of c's kind when known, else the
// first of c's kinds that exists.
func findHSMKey(tok Token, sel hsm.KeySelector, c KeyChoice) (*hsm.Key, error) {
	if c.Known {
		return tok.FindKey(sel, c.Params)
	}
	err := hsm.ErrKeyNotFound
	for _, p := range c.Kinds {
		var k *hsm.Key
		if k, err = tok.FindKey(sel, p); !errors.Is(err, hsm.ErrKeyNotFound) {
			return k, err
		}
	}
	return nil, fmt.Errorf("%w: no %s with %s in token %q: check the label or CKA_ID%s", hsm.ErrKeyNotFound, c.What, sel, tok.Identity().Label, c.NotFound)
}

// CheckKeyPolicy refuses an existing HSM key the token will not wrap, and
// one whose value can be read in the clear unless c allows that, which
// the warning returned then says.
func CheckKeyPolicy(k *hsm.Key, c KeyChoice) ([]string, error) {
	if !k.Extractable {
		return nil, fmt.Errorf("%w: HSM key %q has CKA_EXTRACTABLE=false, so the token will never wrap it and its material cannot reach KMS: generate a new key with --generate", hsm.ErrUnsuitableKey, k.Label)
	}
	if k.Sensitive {
		return nil, nil
	}
	if !c.AllowNonSensitive {
		offer := ""
		if c.OfferNonSensitive {
			offer = ", or give --allow-non-sensitive to import it anyway (the result and the record say so)"
		}
		return nil, fmt.Errorf("%w: HSM key %q has CKA_SENSITIVE=false: the token hands its value out in the clear, so copies may exist outside the HSM and it is no master copy to trust: generate a new key with --generate%s", hsm.ErrUnsuitableKey, k.Label, offer)
	}
	return []string{fmt.Sprintf("HSM key %q has CKA_SENSITIVE=false (its value can be read from the token in the clear); imported because --allow-non-sensitive was given", k.Label)}, nil
}

// Take fills h from k, as the token read it back: generated says whether
// kmsbridge generated it. h.Token must be set.
func (h *HSMKey) Take(k *hsm.Key, generated bool) {
	h.KeyLabel = k.Label
	h.KeyID = k.IDHex()
	h.KeyCheckValue = k.CheckValueHex()
	h.KeyURI = hsm.KeyURI(h.Token, k)
	h.Generated = generated
	h.Provenance = k.Provenance()
}

// GenerateOp is the PKCS#11 call that makes a key of p, as the journal
// (and so the ownership authority) names it.
func GenerateOp(p hsm.KeyParams) string {
	if p.Secret() {
		return "C_GenerateKey"
	}
	return "C_GenerateKeyPair"
}

// GenerateHSMKey generates a key of p under label, which ChooseHSMKey
// found free (the journal keeps other runs off the token meanwhile): the
// intent, with the CKA_ID the key will carry, is journaled before the call
// and the outcome after it, so a re-run proves the key its own; target says what for, with the label
// and the token's serial always in it. The token reads every template
// attribute back. When only the outcome could not be journaled, the key
// is returned with the error.
func GenerateHSMKey(tok Token, j *journal.Journal, cmd, label string, p hsm.KeyParams, wrapWithTrusted bool, target map[string]string) (*hsm.Key, error) {
	id := tok.Identity()
	t := map[string]string{"KeyLabel": label, "TokenSerial": id.Serial}
	for k, v := range target {
		t[k] = v
	}
	// The CKA_ID is chosen now and journaled with the intent: if the
	// process stops between the call and its outcome, the key under the
	// label is proven this call's by carrying it (ownership), never by the
	// label alone.
	keyID, err := hsm.NewKeyID()
	if err != nil {
		return nil, err
	}
	t[ownership.IntentKeyID] = hex.EncodeToString(keyID)
	if err := clearInterrupted(tok, j, cmd, label, p); err != nil {
		return nil, err
	}
	op := GenerateOp(p)
	pend, err := j.Intend(journal.Intent{Command: cmd, Op: op, Target: t, Find: map[string]string{"KeyLabel": label}})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	CrashAt("intent:" + op)
	k, err := tok.GenerateWithID(label, keyID, p, wrapWithTrusted)
	CrashAt("called:" + op)
	if err != nil {
		if jerr := pend.Done(journal.ResultFailed, nil, err); jerr != nil {
			return nil, errors.Join(err, fmt.Errorf("%w: %v", ErrJournal, jerr))
		}
		return nil, err
	}
	if err := pend.Done(journal.ResultOK, map[string]string{"HsmKeyId": k.IDHex(), "HsmKeyLabel": k.Label}, nil); err != nil {
		// The key exists: returned with the error, so the failure says so.
		return k, fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return k, nil
}

// clearInterrupted settles each generation under label on this token that
// this host's journal shows stopped between its intent and its outcome:
// whatever that call left in the token under the label and the CKA_ID the
// intent chose is destroyed, when the ownership authority says it is such
// a leftover (ownership.Authority.Interrupted: provenance not clean, so
// never usable, and never used, as no outcome was written), and the intent
// is then closed as failed, naming what was destroyed. A key that call
// left complete is resumed by ChooseHSMKey and never reaches here; one
// found here regardless is refused, not destroyed. Without such an intent
// (every run but one after a stop) this costs nothing in the token.
func clearInterrupted(tok Token, j *journal.Journal, cmd, label string, p hsm.KeyParams) error {
	serial := tok.Identity().Serial
	owner := &ownership.Authority{TokenSerial: serial, Journal: j, Command: cmd}
	for _, st := range owner.StoppedGenerations(label) {
		idHex := hex.EncodeToString(st.KeyID)
		// A key of the kind that reads back complete is never destroyed
		// (the authority decides); what cannot be read as one is a
		// leftover under the CKA_ID only that intent chose.
		if k, err := tok.FindKey(hsm.KeySelector{Label: label, ID: st.KeyID}, p); err == nil {
			if _, ok := owner.Interrupted(label, k, tok.Incomplete(k)); !ok {
				return fmt.Errorf("%w: token serial %s has HSM key %q (CKA_ID %s), which journal attempt %s generated and did not finish; run the same command again to resume with it", hsm.ErrLabelExists, serial, label, idHex, st.Intent.Attempt)
			}
		}
		n, err := tok.DestroyInterrupted(label, st.KeyID)
		if err != nil {
			return fmt.Errorf("journal attempt %s was stopped inside the token while generating %q (CKA_ID %s); destroying what it left failed: %w; run the same command again", st.Intent.Attempt, label, idHex, err)
		}
		if err := j.Reopen(st.Intent).Done(journal.ResultFailed, map[string]string{"HsmKeyId": idHex, "DestroyedObjects": fmt.Sprint(n)},
			fmt.Errorf("stopped inside the token before its outcome; the %d object(s) it left under the label and CKA_ID it chose were never used and were destroyed", n)); err != nil {
			return fmt.Errorf("%w: %v", ErrJournal, err)
		}
	}
	return nil
}

// WrapProbe is the wrap method chosen for an import, and why.
type WrapProbe struct {
	// Chosen is the first method the token was checked to perform; zero
	// when none.
	Chosen CloudWrap
	// Warnings are what the token check said of Chosen.
	Warnings []string
	// Refused says, for each method passed over, why.
	Refused []string
}

// ProbeWrap asks the token, by its capability probes and changing
// nothing, which of methods (strongest first) it can perform for ask (its
// Wrap set to each in turn). A refusal beyond one wrap method (the key
// type, the proof, dual control, wrapping at all) is returned as it is:
// what the token lacks, never the key's fault.
func ProbeWrap(tok Token, ask hsm.Ask, methods []CloudWrap) (WrapProbe, error) {
	var pr WrapProbe
	for _, w := range methods {
		ask.Wrap = w.Method
		warnings, err := tok.Check(ask)
		if err == nil {
			pr.Chosen, pr.Warnings = w, warnings
			return pr, nil
		}
		if !IsWrapOnly(err) {
			return WrapProbe{}, err
		}
		pr.Refused = append(pr.Refused, fmt.Sprintf("no %s, because %v", w.Name, err))
	}
	return pr, nil
}

// IsWrapOnly reports whether err means only this wrapping algorithm is
// out, so another may work.
func IsWrapOnly(err error) bool {
	var u *hsm.UnsupportedError
	return errors.As(err, &u) && u.Kind == hsm.KindWrap
}

// WrapInToken wraps k under pub with m inside the token: the one way any
// cloud's import gets its wrapped material. It returns the wrapped bytes
// and their SHA-256 (hex), the value the result and the record carry.
func WrapInToken(tok Token, k *hsm.Key, pub *rsa.PublicKey, m hsm.WrapMethod) ([]byte, string, error) {
	var wrapped []byte
	var err error
	if m.RSAAES {
		wrapped, err = tok.WrapRSAAES(k, pub, m.OAEP)
	} else {
		wrapped, err = tok.WrapOAEP(k, pub, m.OAEP)
	}
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(wrapped)
	return wrapped, hex.EncodeToString(sum[:]), nil
}
