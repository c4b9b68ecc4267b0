// Package ownership is kmsbridge's one authority on whose keys are whose.
// It answers every question of the kind "is this HSM key kmsbridge's, and
// made how", "does this HSM key already back a KMS key", "is this KMS key
// kmsbridge's", and import, prepare, wrap, rotate, renew, the ceremony
// planner and bulk runs ask it, and nothing else, before they take a key
// found in the token or in KMS as their own.
//
// It never decides on one source that someone else can write. A key is
// kmsbridge's only when two independent sources agree:
//
//   - An HSM key: the token's own attributes, read back, say it was
//     generated in the token and was never in the clear (CKA_LOCAL and
//     CKA_ALWAYS_SENSITIVE true, CKA_SENSITIVE true, and either
//     CKA_NEVER_EXTRACTABLE true or CKA_EXTRACTABLE true as kmsbridge's
//     template sets it), AND this host's journal or ceremony record names
//     it: a generation under its label on this token naming the CKA_ID the
//     token reads back from it (the outcome's, or the intent's, which is
//     written before the call). A generation is only ever called
//     kmsbridge's by proven (GeneratedKey, ExistingKey); a key found by a
//     cloud key's tags is taken up through LinkedKey, never as generated.
//   - A KMS key: its tags (the attempt tag of a kmsbridge CreateKey, or the
//     link tags naming the HSM key and token) AND this host's journal,
//     which shows that CreateKey, or kmsbridge tagging a key the operator
//     named, or an adoption the operator asked for.
//
// Anything else is refused with what was found (the HSM key's provenance
// attributes, the KMS key's tags) and the one command that takes it over
// on purpose: the same command with --adopt, which the journal (and so the
// ceremony record) then carries with the provenance shown. A journal line
// is never enough alone: anyone who can write the file can append one.
//
// It lives in a package of its own, beside journal/ and record/ (its
// sources) rather than inside kmsimport, because kmsimport, ceremony and
// cmd all ask it, and it must not depend on any of them; it talks to KMS
// only through the small KMSView interface, so the same rules hold
// whatever client asks.
package ownership

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
)

// ErrNotOurs marks a refusal: a key was found that kmsbridge cannot prove
// is its own. Nothing was changed.
var ErrNotOurs = errors.New("not proven to be kmsbridge's")

// NoteAdopt is the journal note an --adopt writes: what was taken over,
// with its provenance.
const NoteAdopt = "adopt"

// Generation operations, as the journal names them.
var generateOps = []string{"C_GenerateKey", "C_GenerateKeyPair"}

// Authority decides ownership for one token (and, for KMS keys, one KMS
// target), from the token's attributes, KMS's tags, and this host's
// journal and ceremony record.
type Authority struct {
	// TokenSerial is the token's serial number.
	TokenSerial string
	// Journal is this host's journal of the token and KMS target; nil
	// knows of nothing.
	Journal *journal.Journal
	// Record maps HSM labels a ceremony record shows generated to their
	// CKA_ID (hex); "" when the intent was recorded but not its outcome.
	Record map[string]string
	// RecordKMS maps the KMS keys a ceremony record shows kmsbridge
	// creating to their HSM key's CKA_ID (hex); RecordAttempts the
	// CreateKey attempts it shows without an answer, the same way.
	RecordKMS, RecordAttempts map[string]string
	// Adopt is the operator's --adopt: take over, on purpose and recorded,
	// a key kmsbridge cannot prove its own.
	Adopt bool
	// Command names the command in the journal's adopt notes.
	Command string
	// DryRun decides as the run would, adoption included, but records
	// nothing.
	DryRun bool
}

// Provenance is what the token says about where an HSM key came from.
type Provenance struct {
	// Clean: generated in the token and never in the clear, with the
	// policy kmsbridge's template sets.
	Clean bool
	// Why lists each attribute that fails Clean; empty when Clean.
	Why []string
	// Attributes are the provenance attributes as read ("true", "false",
	// "unreported"), for messages, notes and the record.
	Attributes map[string]string
}

func (p Provenance) String() string {
	keys := []string{"CKA_LOCAL", "CKA_ALWAYS_SENSITIVE", "CKA_NEVER_EXTRACTABLE", "CKA_SENSITIVE", "CKA_EXTRACTABLE"}
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+p.Attributes[k])
	}
	return strings.Join(parts, " ")
}

func tri(known, v bool) string {
	switch {
	case !known:
		return "unreported"
	case v:
		return "true"
	}
	return "false"
}

// ProvenanceOf reads k's provenance from the attributes the token reported
// for it (hsm reads them back from the token; nothing is assumed from a
// template).
func ProvenanceOf(k *hsm.Key) Provenance {
	p := Provenance{Attributes: map[string]string{
		"CKA_LOCAL":             tri(k.LocalKnown, k.Local),
		"CKA_ALWAYS_SENSITIVE":  tri(k.AlwaysSensitiveKnown, k.AlwaysSensitive),
		"CKA_NEVER_EXTRACTABLE": tri(k.NeverExtractableKnown, k.NeverExtractable),
		"CKA_SENSITIVE":         tri(true, k.Sensitive),
		"CKA_EXTRACTABLE":       tri(true, k.Extractable),
	}}
	if !k.LocalKnown || !k.Local {
		p.Why = append(p.Why, "CKA_LOCAL is "+p.Attributes["CKA_LOCAL"]+": the token does not say it generated the key (it may have been imported or unwrapped into it)")
	}
	if !k.AlwaysSensitiveKnown || !k.AlwaysSensitive {
		p.Why = append(p.Why, "CKA_ALWAYS_SENSITIVE is "+p.Attributes["CKA_ALWAYS_SENSITIVE"]+": the key may have been readable in the clear")
	}
	if !k.Sensitive {
		p.Why = append(p.Why, "CKA_SENSITIVE is false: the token hands its value out in the clear")
	}
	if !(k.NeverExtractableKnown && k.NeverExtractable) && !k.Extractable {
		p.Why = append(p.Why, "CKA_EXTRACTABLE is false and CKA_NEVER_EXTRACTABLE is not true: not the policy kmsbridge generates keys with")
	}
	p.Clean = len(p.Why) == 0
	return p
}

// HSMVerdict is the authority's answer about one HSM key.
type HSMVerdict struct {
	// Generated: kmsbridge generated it (provenance clean and the journal
	// or record names it).
	Generated bool
	// Adopted: taken over on purpose with --adopt.
	Adopted bool
	// Evidence says which source named it.
	Evidence   string
	Provenance Provenance
}

// NotOursError is a refusal: what was found and the command that takes it
// over on purpose.
type NotOursError struct {
	What  string // the key, as found
	Found string // what was found: provenance, tags
	Why   string // why it is not proven kmsbridge's
	Fix   string // the one command, or choice, that settles it
	// Kind is the error class for the exit code (hsm.ErrLabelExists for an
	// HSM label, ErrNotOurs alone otherwise).
	Kind error
}

func (e *NotOursError) Error() string {
	msg := e.What + " is not proven to be kmsbridge's: " + e.Why
	if e.Found != "" {
		msg += "; found: " + e.Found
	}
	msg += "; nothing was changed"
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// Unwrap makes errors.Is find ErrNotOurs and the kind.
func (e *NotOursError) Unwrap() []error {
	if e.Kind == nil || e.Kind == ErrNotOurs {
		return []error{ErrNotOurs}
	}
	return []error{ErrNotOurs, e.Kind}
}

// IntentKeyID is the target field of a generation's journal intent that
// names the CKA_ID the key is generated with (chosen before the call,
// kmsimport.GenerateHSMKey). A ceremony record carries it as
// "Target"+IntentKeyID.
const IntentKeyID = "HsmKeyId"

// namedGenerated says whether this host's journal or the ceremony record
// proves that a kmsbridge run generated the HSM key under label on this
// token with CKA_ID idHex. Proof is a CKA_ID the token reads back equal to
// one kmsbridge wrote down for that label: the outcome's (HsmKeyId), or,
// when the process stopped between the call and its outcome, the intent's
// (IntentKeyID, chosen before the call), so an interrupted run is still
// finished by re-running it. An intent that names no CKA_ID (an earlier
// version's), or a record entry without one, proves nothing: the label
// alone is no proof that the key under it is the one that call made.
func (a *Authority) namedGenerated(label, idHex string) (string, bool) {
	if a == nil || idHex == "" {
		return "", false
	}
	if gen, ok := a.Record[label]; ok && gen != "" && gen == idHex {
		return "the ceremony record shows it generated with this CKA_ID", true
	}
	for _, op := range generateOps {
		for _, in := range a.Journal.Intents(op, func(e journal.Entry) bool {
			return e.Target["KeyLabel"] == label && e.Target["TokenSerial"] == a.TokenSerial
		}) {
			out, ok := a.Journal.Outcome(in.Attempt)
			at := in.Time.UTC().Format("2006-01-02T15:04:05Z")
			switch {
			case ok && out.Result == journal.ResultOK && out.Facts["HsmKeyId"] == idHex:
				return fmt.Sprintf("journal attempt %s (%s) generated it", in.Attempt, at), true
			case (!ok || out.Result == journal.ResultUnknown) && in.Target[IntentKeyID] == idHex:
				return fmt.Sprintf("journal attempt %s (%s) intended to generate it with CKA_ID %s, which the token's key carries, and was stopped before its outcome", in.Attempt, at, idHex), true
			}
		}
	}
	return "", false
}

// Stopped is a generation of this host whose intent chose a CKA_ID and
// that has no outcome: the process stopped between the intent and the
// outcome, maybe inside the token.
type Stopped struct {
	Intent journal.Entry
	KeyID  []byte
}

// StoppedGenerations lists this host's generations under label on this
// token that chose a CKA_ID and have no outcome (an unknown one counts as
// none), for GenerateHSMKey to settle before it generates again.
func (a *Authority) StoppedGenerations(label string) []Stopped {
	if a == nil || a.Journal == nil {
		return nil
	}
	var out []Stopped
	for _, op := range generateOps {
		for _, in := range a.Journal.Intents(op, func(e journal.Entry) bool {
			return e.Target["KeyLabel"] == label && e.Target["TokenSerial"] == a.TokenSerial
		}) {
			id, err := hex.DecodeString(in.Target[IntentKeyID])
			if err != nil || len(id) != hsm.KeyIDBytes {
				continue
			}
			if o, ok := a.Journal.Outcome(in.Attempt); !ok || o.Result == journal.ResultUnknown {
				out = append(out, Stopped{Intent: in, KeyID: id})
			}
		}
	}
	return out
}

// Interrupted says whether k, found under label where kmsbridge would
// generate, is what a generation of this host stopped inside the token
// left behind: an unsettled journal intent (no outcome, or an unknown one)
// chose k's CKA_ID for that label on this token, and the token does not
// say k is a key it generated and kept sensitive (provenance not clean),
// and the token says k lacks its material (incomplete: hsm.Token.Incomplete,
// so a forged intent naming another tool's complete key never makes it a
// leftover).
// Such an object was never used: the intent's outcome, which every later
// step waits for, was never written. It is not kmsbridge's key (GeneratedKey
// refuses it), and it is no one else's (its CKA_ID is the one that
// intent chose at random), so the generation may destroy it and start
// again (kmsimport.GenerateHSMKey). It returns the intent.
func (a *Authority) Interrupted(label string, k *hsm.Key, incomplete bool) (journal.Entry, bool) {
	if k == nil || len(k.ID) == 0 || ProvenanceOf(k).Clean || !incomplete {
		return journal.Entry{}, false
	}
	for _, st := range a.StoppedGenerations(label) {
		if bytes.Equal(st.KeyID, k.ID) {
			return st.Intent, true
		}
	}
	return journal.Entry{}, false
}

// InterruptedPair says whether what carries label, where kmsbridge would
// generate and where no key of the kind asked for was found, is what a key
// pair generation of this host stopped inside the token left: the public
// half alone (onlyPublicHalf, hsm.Token.OnlyPublicHalf, answers for a
// CKA_ID), carrying the CKA_ID an unsettled C_GenerateKeyPair intent chose
// for that label on this token. A public key holds nothing secret, and one
// carrying a CKA_ID that intent chose at random is no one else's; it was
// never used (no outcome was written), so the generation may destroy it and
// start again. It returns the intent.
func (a *Authority) InterruptedPair(label string, onlyPublicHalf func(id []byte) (bool, error)) (journal.Entry, bool, error) {
	for _, st := range a.StoppedGenerations(label) {
		if st.Intent.Op != "C_GenerateKeyPair" {
			continue
		}
		ok, err := onlyPublicHalf(st.KeyID)
		if err != nil {
			return journal.Entry{}, false, err
		}
		if ok {
			return st.Intent, true, nil
		}
	}
	return journal.Entry{}, false, nil
}

// unproven says why label's journal or record entries, if any, do not
// prove k: for the refusal, so the operator sees what was found.
func (a *Authority) unproven(label string) string {
	if a == nil {
		return ""
	}
	if gen, ok := a.Record[label]; ok && gen == "" {
		return "the ceremony record shows a generation under this label whose CKA_ID it does not name"
	}
	for _, op := range generateOps {
		for _, in := range a.Journal.Intents(op, func(e journal.Entry) bool {
			return e.Target["KeyLabel"] == label && e.Target["TokenSerial"] == a.TokenSerial
		}) {
			if out, ok := a.Journal.Outcome(in.Attempt); ok && out.Result == journal.ResultOK {
				return fmt.Sprintf("journal attempt %s generated CKA_ID %s under this label, not this key", in.Attempt, out.Facts["HsmKeyId"])
			}
			if in.Target[IntentKeyID] == "" {
				return fmt.Sprintf("journal attempt %s intended to generate under this label but names no CKA_ID (an earlier kmsbridge's journal), so which key it made cannot be proven", in.Attempt)
			}
			return fmt.Sprintf("journal attempt %s intended to generate CKA_ID %s under this label, not this key", in.Attempt, in.Target[IntentKeyID])
		}
	}
	return ""
}

// proven is the one rule that makes an HSM key "generated by kmsbridge":
// the token's provenance clean, this host's journal or record naming the
// CKA_ID the token reads back (namedGenerated), and the key what
// kmsbridge's template makes (templateMismatch ""). GeneratedKey and
// ExistingKey both decide by it, and nothing else does
// (TestNoCodeDecidesOwnershipAroundTheAuthority).
func (a *Authority) proven(p Provenance, named bool, mismatch string) bool {
	return a != nil && p.Clean && named && mismatch == ""
}

// templateMismatch says how k differs from what kmsbridge generates
// (hsm.SecretKeyTemplate, KeyPairTemplates: extractable, by wrapping
// only); "" when it does not.
func templateMismatch(k *hsm.Key) string {
	if !k.Extractable {
		return "CKA_EXTRACTABLE is false, and kmsbridge generates its keys extractable by wrapping"
	}
	return ""
}

// GeneratedKey decides whether k, found under label where kmsbridge would
// generate (import --generate, wrap --generate, a ceremony key with
// generate: true, rotate's next generation), may be taken as the key an
// earlier kmsbridge run generated there. fix says what the operator can
// do instead (another label, or the command with --adopt that takes it
// over on purpose). With Authority.Adopt
// the key is taken, marked adopted (never generated), and the journal
// notes it with its provenance.
func (a *Authority) GeneratedKey(label string, k *hsm.Key, fix string) (HSMVerdict, error) {
	v := HSMVerdict{Provenance: ProvenanceOf(k)}
	evidence, named := a.namedGenerated(label, k.IDHex())
	mismatch := templateMismatch(k)
	if a.proven(v.Provenance, named, mismatch) {
		v.Generated, v.Evidence = true, evidence
		return v, nil
	}
	if a != nil && a.Adopt {
		return v, a.noteAdoptHSM(label, k, v.Provenance)
	}
	why := "this host's journal and ceremony record show no kmsbridge run generating it"
	if u := a.unproven(label); u != "" && !named {
		why = u
	}
	switch {
	case named && !v.Provenance.Clean:
		why = evidence + ", but the token says it was not generated there and never in the clear: " + strings.Join(v.Provenance.Why, "; ")
	case named:
		why = evidence + ", but " + mismatch
	case !v.Provenance.Clean:
		why += ", and " + strings.Join(v.Provenance.Why, "; ")
	}
	return v, a.labelTaken(label, k, v, why, fix)
}

// ExistingKey decides whether k, an HSM key the operator named (by label
// or CKA_ID, without --generate), may be imported: naming it is the
// deliberate choice, so a key generated in the token and never in the
// clear is taken as named; a key whose provenance says otherwise needs
// --adopt, and is then recorded as adopted with its provenance.
func (a *Authority) ExistingKey(k *hsm.Key, adopt string) (HSMVerdict, error) {
	v := HSMVerdict{Provenance: ProvenanceOf(k)}
	if evidence, named := a.namedGenerated(k.Label, k.IDHex()); a.proven(v.Provenance, named, templateMismatch(k)) {
		v.Generated, v.Evidence = true, evidence
	}
	if v.Provenance.Clean {
		return v, nil
	}
	if a != nil && a.Adopt {
		return v, a.noteAdoptHSM(k.Label, k, v.Provenance)
	}
	return v, &NotOursError{
		What:  fmt.Sprintf("HSM key %q (CKA_ID %s) on token serial %s", k.Label, k.IDHex(), a.serial()),
		Found: v.Provenance.String(),
		Why:   "the token does not say it was generated there and never in the clear: " + strings.Join(v.Provenance.Why, "; "),
		Fix:   "generate a new key with --generate, or import this one on purpose (recorded, with its provenance): " + adopt,
		Kind:  hsm.ErrUnsuitableKey,
	}
}

// LinkedKey decides whether k, found under label where kmsbridge would
// generate, may be taken up because a cloud key already holds its
// material: link says which (a key whose tags name k's CKA_ID and this
// token; the caller proves the material before using it, and refuses
// otherwise). That proves where the material went, not who generated it,
// so the verdict is never Generated; and the token must say k was
// generated there, never in the clear, as kmsbridge generates keys, or it
// is refused like any key kmsbridge cannot prove (with --adopt taken over
// on purpose, noted).
func (a *Authority) LinkedKey(label string, k *hsm.Key, link, fix string) (HSMVerdict, error) {
	v := HSMVerdict{Provenance: ProvenanceOf(k), Evidence: link}
	mismatch := templateMismatch(k)
	if v.Provenance.Clean && mismatch == "" {
		return v, nil
	}
	if a != nil && a.Adopt {
		v.Adopted = true
		return v, a.noteAdoptHSM(label, k, v.Provenance)
	}
	why := link + ", but " + mismatch
	if !v.Provenance.Clean {
		why = link + ", but the token says it was not generated there and never in the clear: " + strings.Join(v.Provenance.Why, "; ")
	}
	return v, a.labelTaken(label, k, v, why, fix)
}

func (a *Authority) serial() string {
	if a == nil {
		return "(unknown)"
	}
	return a.TokenSerial
}

func (a *Authority) noteAdoptHSM(label string, k *hsm.Key, p Provenance) error {
	if a.DryRun {
		return nil
	}
	facts := map[string]string{"Kind": "hsm-key", "HsmKeyLabel": label, "HsmKeyId": k.IDHex(), "TokenSerial": a.TokenSerial, "Provenance": p.String()}
	if err := a.Journal.Note(a.command(), NoteAdopt, facts); err != nil {
		return fmt.Errorf("the journal could not record the adoption of HSM key %q, so it was not adopted: %w", label, err)
	}
	return nil
}

func (a *Authority) command() string {
	if a == nil || a.Command == "" {
		return "import"
	}
	return a.Command
}

// labelTaken is the refusal of k, found under label where kmsbridge would
// generate or take a key up, as not proven kmsbridge's.
func (a *Authority) labelTaken(label string, k *hsm.Key, v HSMVerdict, why, fix string) *NotOursError {
	return &NotOursError{
		What:  fmt.Sprintf("HSM key %q (CKA_ID %s) on token serial %s", label, k.IDHex(), a.serial()),
		Found: v.Provenance.String(),
		Why:   why,
		Fix:   fix,
		Kind:  hsm.ErrLabelExists,
	}
}
