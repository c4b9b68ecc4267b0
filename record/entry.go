package record

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Format is the Version of every entry this package writes. A change to
// the members or their meaning gets a new value.
//
// In this format an entry's Prev is the SHA-256 of the previous entry's
// signed bytes (its line without the Signature member), not of its whole
// line: the chain fixes every entry's content without waiting for the
// previous entry's signature, so entries are signed in parallel (see the
// package documentation, "Why Prev leaves the signature out").
const Format = "kmsbridge-record/3"

// FormatV2 is the format whose Prev is the SHA-256 of the previous whole
// line, signature included. This package still reads it, so records begun
// by an earlier kmsbridge verify and can be appended to.
const FormatV2 = "kmsbridge-record/2"

// FormatV1 is the format before entries named the build that wrote them
// (no Tool member); its Prev is as FormatV2's. This package still reads it.
const FormatV1 = "kmsbridge-record/1"

// chainsSignedBytes reports whether the entry after one of format version
// is chained to that entry's signed bytes (Format) rather than to its
// whole line (FormatV1, FormatV2).
func chainsSignedBytes(version string) bool { return version == Format }

// TimeFormat is how Time is written: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// AlgorithmECDSAP256SHA256 is the only signature algorithm of Format: ECDSA
// on P-256 over SHA-256 of the signed bytes, DER-encoded.
const AlgorithmECDSAP256SHA256 = "ECDSA_P256_SHA256"

// Outcomes of a step.
const (
	OutcomeOK    = "ok"
	OutcomeError = "error"
)

// GenesisPrev is the Prev of the first entry of a record: 64 zeros.
const GenesisPrev = "0000000000000000000000000000000000000000000000000000000000000000"

// Entry is one line of the record. The JSON member names are part of the
// format and never change within Format; see the package documentation.
// Writer.Append fills Version, Seq, Time, Tool, Prev and Signature.
type Entry struct {
	Version   string            `json:"Version"`
	Tool      *ToolInfo         `json:"Tool,omitempty"`
	Seq       int64             `json:"Seq"`
	Time      string            `json:"Time"`
	Operator  string            `json:"Operator"`
	Host      string            `json:"Host"`
	Command   string            `json:"Command"`
	Step      string            `json:"Step"`
	Inputs    map[string]string `json:"Inputs"`
	Outputs   map[string]string `json:"Outputs"`
	Token     *TokenInfo        `json:"Token"`
	Outcome   string            `json:"Outcome"`
	Error     string            `json:"Error"`
	Prev      string            `json:"Prev"`
	Signature *Signature        `json:"Signature,omitempty"`
}

// TokenInfo is the identity of the HSM token a step used, as the token
// reports it. It has the fields of hsm.TokenIdentity in the same order, so
// record.TokenInfo(tok.Identity()) converts one without this package
// depending on PKCS#11. Slot is written as a decimal string, because slot
// IDs can exceed the integers JSON readers agree on.
type TokenInfo struct {
	Slot         uint   `json:"Slot,string"`
	Label        string `json:"Label"`
	Serial       string `json:"Serial"`
	Manufacturer string `json:"Manufacturer"`
	Model        string `json:"Model"`
	Firmware     string `json:"Firmware"`
}

// ToolInfo names the build of kmsbridge that wrote an entry (see
// internal/buildinfo). Every entry of Format and FormatV2 has one;
// FormatV1 entries have none.
type ToolInfo struct {
	// Version is the release tag (v0.1.0), a Go pseudo-version for an
	// untagged commit, or "(devel)"; "+dirty" when built from a tree with
	// uncommitted changes.
	Version string `json:"Version"`
	// Commit is the full lowercase hex git commit, or "" when the binary
	// was built without VCS information (go install of a module version,
	// which Version then names).
	Commit string `json:"Commit"`
}

// Signature is an audit key's signature over an entry's SignedBytes.
type Signature struct {
	// Algorithm is AlgorithmECDSAP256SHA256.
	Algorithm string `json:"Algorithm"`
	// KeyId is the lowercase hex CKA_ID of the audit key in the HSM.
	KeyId string `json:"KeyId"`
	// PublicKeySha256 is the lowercase hex SHA-256 of the audit public
	// key's DER SubjectPublicKeyInfo.
	PublicKeySha256 string `json:"PublicKeySha256"`
	// Value is the standard base64 of the DER ECDSA signature.
	Value string `json:"Value"`
}

// SignedBytes returns the bytes an audit key signs for e: the canonical
// (RFC 8785) JSON of e without its Signature member. It is the same
// whether or not e is signed.
func (e Entry) SignedBytes() ([]byte, error) {
	e.Signature = nil
	return canonical(e)
}

// line is the canonical JSON of e as it is written, without the newline.
func (e Entry) line() ([]byte, error) { return canonical(e) }

// stepMember is where the Step member of an entry's canonical JSON
// starts. Members are in UTF-16 order, so Signature goes right before it
// (after Seq). It is the last such text: every member after Step (Time,
// Token, Tool, Version) holds only strings of fixed names, and a string
// cannot hold an unescaped quote.
var stepMember = []byte(`,"Step":`)

// chained returns an entry's signed bytes from its draft (draft's): the
// same bytes with seq, t and prev in place of the draft's placeholders
// (Seq 0, Time draftTime, Prev GenesisPrev). Each member is found as the
// last of its text, which is the entry's own member for the reason
// stepMember gives (Prev and Seq come after Inputs and Outputs; nothing
// after Time holds a member of that name). t and prev are strings that
// need no escaping (the format's time, hex).
func chained(draft []byte, seq int64, t, prev string) ([]byte, error) {
	prevAt := bytes.LastIndex(draft, []byte(`,"Prev":"`+GenesisPrev+`"`))
	seqAt := bytes.LastIndex(draft, []byte(`,"Seq":0,`))
	timeAt := bytes.LastIndex(draft, []byte(`,"Time":"`+draftTime+`"`))
	if prevAt < 0 || seqAt < prevAt || timeAt < seqAt || len(t) != len(draftTime) || len(prev) != len(GenesisPrev) {
		return nil, errors.New("the entry's draft is not the canonical JSON of an entry")
	}
	out := make([]byte, 0, len(draft)+20)
	out = append(out, draft[:seqAt+len(`,"Seq":`)]...)
	out = strconv.AppendInt(out, seq, 10)
	out = append(out, draft[seqAt+len(`,"Seq":0`):]...)
	prevAt += len(`,"Prev":"`)
	copy(out[prevAt:], prev)
	timeAt += len(out) - len(draft) + len(`,"Time":"`)
	copy(out[timeAt:], t)
	return out, nil
}

// withSignature returns the canonical JSON of an entry whose signed bytes
// (its canonical JSON without Signature) are signed, with sig as its
// Signature: signed with the Signature member put in its place, the same
// bytes as the line() of the signed entry (TestWithSignatureIsTheLine).
func withSignature(signed []byte, sig *Signature) ([]byte, error) {
	i := bytes.LastIndex(signed, stepMember)
	if i < 0 {
		return nil, errors.New("the entry's canonical JSON has no Step member")
	}
	cs, err := canonical(sig)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(signed)+len(`,"Signature":`)+len(cs))
	out = append(out, signed[:i]...)
	out = append(out, `,"Signature":`...)
	out = append(out, cs...)
	return append(out, signed[i:]...), nil
}

// forbiddenWords are words that name a secret; an Inputs or Outputs name
// containing one is refused unless its last word says it holds only an
// identity or digest (allowedLastWords). "token" is the AWS import token.
var forbiddenWords = []string{"pin", "pins", "password", "passwd", "passphrase", "secret", "secrets", "material", "plaintext", "token"}

var allowedLastWords = []string{"sha256", "digest", "fingerprint", "hash", "id", "label", "serial", "kcv"}

// CheckName returns an error unless name may be an Inputs or Outputs name:
// a name with a word that names a secret (pin, password, passphrase,
// secret, material, plaintext, token; words split at case changes and
// punctuation) is refused unless its last word is sha256, digest,
// fingerprint, hash, id, label, serial or kcv. So "ImportTokenSha256" and
// "TokenLabel" pass and "Pin", "PINFile", "KeyMaterial" and "ImportToken"
// do not.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("an empty name")
	}
	ws := words(name)
	if len(ws) > 0 && slices.Contains(allowedLastWords, ws[len(ws)-1]) {
		return nil
	}
	for _, w := range ws {
		if slices.Contains(forbiddenWords, w) {
			return fmt.Errorf("%q names a secret (%q): a record holds no PINs, passwords, key material, plaintext or import tokens, only their digests or identities; record one under a name ending in Sha256, Digest, Fingerprint, Id, Label or Serial", name, w)
		}
	}
	return nil
}

// words splits a name into lower-case words at punctuation, at a change
// from lower case or digit to upper case, and before the last capital of
// an acronym followed by lower case ("PINFile" is "pin", "file").
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
			continue
		case unicode.IsUpper(r) && i > 0:
			prev := rs[i-1]
			if unicode.IsLower(prev) || unicode.IsDigit(prev) ||
				unicode.IsUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1]) {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	return out
}

// checkContent returns an error naming the first member of e's
// caller-supplied content that the format does not allow.
func (e *Entry) checkContent() error {
	if e.Command == "" {
		return fmt.Errorf("Command is empty")
	}
	switch e.Outcome {
	case OutcomeOK:
		if e.Error != "" {
			return fmt.Errorf("Outcome is %q but Error is set", OutcomeOK)
		}
	case OutcomeError:
		if e.Error == "" {
			return fmt.Errorf("Outcome is %q but Error is empty: say what went wrong", OutcomeError)
		}
	default:
		return fmt.Errorf("Outcome is %q, want %q or %q", e.Outcome, OutcomeOK, OutcomeError)
	}
	for member, s := range map[string]string{"Operator": e.Operator, "Host": e.Host, "Command": e.Command, "Step": e.Step, "Error": e.Error} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%s is not valid UTF-8", member)
		}
	}
	for member, m := range map[string]map[string]string{"Inputs": e.Inputs, "Outputs": e.Outputs} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !utf8.ValidString(k) || !utf8.ValidString(m[k]) {
				return fmt.Errorf("%s[%q] is not valid UTF-8", member, k)
			}
			if err := CheckName(k); err != nil {
				return fmt.Errorf("%s: %w", member, err)
			}
		}
	}
	if t := e.Token; t != nil {
		for _, s := range []string{t.Label, t.Serial, t.Manufacturer, t.Model, t.Firmware} {
			if !utf8.ValidString(s) {
				return fmt.Errorf("Token is not valid UTF-8")
			}
		}
	}
	return nil
}

// check returns an error naming the first member of a complete entry that
// the format does not allow. It does not check Version, Seq continuity,
// Prev's value or the signature itself.
func (e *Entry) check() error {
	if err := e.checkChain(); err != nil {
		return err
	}
	if e.Inputs == nil || e.Outputs == nil {
		return fmt.Errorf("Inputs and Outputs must be objects, not null")
	}
	switch t := e.Tool; {
	case e.Version == FormatV1 && t != nil:
		return fmt.Errorf("Tool is set, but %s entries have none", FormatV1)
	case e.Version == FormatV1:
	case t == nil:
		return fmt.Errorf("Tool is missing: an entry of %s names the kmsbridge build that wrote it", e.Version)
	case t.Version == "" || !utf8.ValidString(t.Version):
		return fmt.Errorf("Tool.Version is empty or not UTF-8")
	case t.Commit != "" && !isHex(t.Commit, 20) && !isHex(t.Commit, 32):
		return fmt.Errorf("Tool.Commit %q is not a lowercase hex git commit (40 or 64 digits) or empty", t.Commit)
	}
	if err := e.checkContent(); err != nil {
		return err
	}
	return e.checkSignature()
}

// checkSigned is check for an entry whose content checkContent has
// passed already (Writer.draft): what the chain and the signature added.
func (e *Entry) checkSigned() error {
	if err := e.checkChain(); err != nil {
		return err
	}
	return e.checkSignature()
}

// checkChain checks the form of what the writer fixes under its lock:
// Seq, Time and Prev.
func (e *Entry) checkChain() error {
	if e.Seq < 1 {
		return fmt.Errorf("Seq is %d, want 1 or more", e.Seq)
	}
	if t, err := time.Parse(TimeFormat, e.Time); err != nil || t.Format(TimeFormat) != e.Time {
		return fmt.Errorf("Time %q is not an RFC 3339 time in UTC with milliseconds (%s)", e.Time, TimeFormat)
	}
	if !isHex(e.Prev, 32) {
		return fmt.Errorf("Prev %q is not 64 lowercase hex digits", e.Prev)
	}
	return nil
}

// checkSignature checks the form of e's Signature, when it has one.
func (e *Entry) checkSignature() error {
	if s := e.Signature; s != nil {
		if s.Algorithm != AlgorithmECDSAP256SHA256 {
			return fmt.Errorf("Signature.Algorithm is %q; this format knows only %q", s.Algorithm, AlgorithmECDSAP256SHA256)
		}
		if !isHex(s.KeyId, -1) {
			return fmt.Errorf("Signature.KeyId %q is not lowercase hex", s.KeyId)
		}
		if !isHex(s.PublicKeySha256, 32) {
			return fmt.Errorf("Signature.PublicKeySha256 %q is not 64 lowercase hex digits", s.PublicKeySha256)
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(s.Value); err != nil || s.Value == "" {
			return fmt.Errorf("Signature.Value is not standard base64")
		}
	}
	return nil
}

// isHex reports whether s is non-empty lowercase hex of n bytes (any
// length when n < 0).
func isHex(s string, n int) bool {
	if s == "" || s != strings.ToLower(s) {
		return false
	}
	b, err := hex.DecodeString(s)
	return err == nil && (n < 0 || len(b) == n)
}
