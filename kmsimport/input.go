package kmsimport

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
)

// The cloud-neutral part of the input rules: how a refused value is
// reported (ValidationError, Excerpt) and the rule for an HSM key label,
// which every cloud's flow writes into the record, logs and (on AWS) the
// kmsbridge:hsm-key-label tag. Each cloud's own limits (AWS's tags,
// aliases and descriptions: kmsimport/aws/rules.go) live with its adapter.

// Field names a value the user gives, in kmsimport's own terms. Each front
// end renders it in its terms: the CLI as a flag (--tag), a ceremony file
// as a field path (keys[2].tags), from the same ValidationError.
type Field string

// The fields the input rules apply to.
const (
	FieldTag                    Field = "tag"
	FieldAlias                  Field = "alias"
	FieldDescription            Field = "description"
	FieldKeyLabel               Field = "key-label"
	FieldKeyMaterialDescription Field = "key-material-description"
)

// ValidationError is one value the cloud (or kmsbridge) would refuse,
// found before anything was changed. Field says where, Problem what is
// wrong and Fix what to write instead; Item names the element of a list
// field (a tag key) when there is one, already shortened for display.
type ValidationError struct {
	Field   Field
	Item    string
	Problem string
	Fix     string
}

// Error renders the problem in the CLI's terms: the flag, then problem and fix.
func (e *ValidationError) Error() string {
	where := "--" + string(e.Field)
	if e.Item != "" {
		where += ` "` + e.Item + `"`
	}
	return fmt.Sprintf("%s: %s; %s", where, e.Problem, e.Fix)
}

// Message is the problem and its fix without the field, for front ends
// that name the field themselves.
func (e *ValidationError) Message() string { return e.Problem + "; " + e.Fix }

// Unwrap makes every ValidationError match ErrInvalidInput: exit code 2,
// nothing changed.
func (e *ValidationError) Unwrap() error { return ErrInvalidInput }

// Rule is one documented limit for a value, with where it is written;
// docs/kms-input-rules.md cites the API reference for each.
type Rule struct {
	// What the rule is about, in words.
	What string
	// Min and Max bound the length in Unicode characters (Max 0: none).
	Min, Max int
	// Source names the API reference entry the limit comes from.
	Source string
}

// Length checks s against r's bounds: the problem, or ok.
func (r Rule) Length(s string) (problem string, ok bool) {
	n := utf8.RuneCountInString(s)
	switch {
	case n < r.Min && r.Min == 1:
		return fmt.Sprintf("the %s is empty", r.What), false
	case n < r.Min:
		return fmt.Sprintf("the %s has %d characters, fewer than the %d KMS requires", r.What, n, r.Min), false
	case r.Max > 0 && n > r.Max:
		return fmt.Sprintf("the %s has %d characters; KMS allows at most %d", r.What, n, r.Max), false
	}
	return "", true
}

// TagChars are the characters AWS allows in tag keys and values: Unicode
// letters, digits, white space, and _ . : / = + - @. An HSM key label is
// held to them too (CheckKeyLabel).
var TagChars = lazyre.New(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)

// keyLabelRule bounds an HSM key label: it must fit the
// kmsbridge:hsm-key-label tag's value (KMS API Reference, Tag.TagValue).
var keyLabelRule = Rule{What: "tag value", Min: 0, Max: 256, Source: "KMS API Reference, Tag.TagValue"}

// excerptLen is the most of a bad value an error quotes.
const excerptLen = 40

// Excerpt shortens s for an error message: at most excerptLen characters,
// control characters escaped, and the full length said when cut.
func Excerpt(s string) string {
	// Quote no more of s than the excerpt can show (each rune quotes to at
	// least one character), so a huge input costs no copy of itself.
	head, n := s, 0
	for i := range s {
		if n == excerptLen+1 {
			head = s[:i]
			break
		}
		n++
	}
	q := strconv.QuoteToASCII(head)
	q = q[1 : len(q)-1]
	if head == s && utf8.RuneCountInString(q) <= excerptLen {
		return q
	}
	r := []rune(q)
	if len(r) > excerptLen {
		r = r[:excerptLen]
	}
	return fmt.Sprintf("%s... (%d characters)", string(r), utf8.RuneCountInString(s))
}

// HasControl reports whether s holds a control character, which would
// forge a log line or a tag.
func HasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// CheckKeyLabel checks an HSM key label: kmsbridge writes it into the
// kmsbridge:hsm-key-label tag and into logs and the record, so it must be
// a valid tag value and hold no control character (a newline would forge a
// log line).
func CheckKeyLabel(label string) error {
	bad := func(problem, fix string) error {
		return &ValidationError{Field: FieldKeyLabel, Item: Excerpt(label), Problem: problem, Fix: fix}
	}
	if !utf8.ValidString(label) || HasControl(label) {
		return bad("the key label has a control character (a newline, tab, escape) or is not UTF-8", "choose a label of printable characters")
	}
	if p, ok := keyLabelRule.Length(label); !ok {
		return bad("the label must fit the kmsbridge:hsm-key-label tag: "+p, "choose a label of at most 256 characters")
	}
	if !TagChars.MatchString(label) {
		return bad("the label must fit the kmsbridge:hsm-key-label tag, and has a character KMS does not allow in tags", "use letters, digits, spaces and _ . : / = + - @ only")
	}
	return nil
}
