package kmsimport

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Field names a value the user gives, in kmsimport's own terms. Each front
// end renders it in its terms: the CLI as a flag (--tag), a ceremony file
// as a field path (keys[2].tags), from the same ValidationError.
type Field string

// The fields KMS's input rules apply to.
const (
	FieldTag                    Field = "tag"
	FieldAlias                  Field = "alias"
	FieldDescription            Field = "description"
	FieldKeyLabel               Field = "key-label"
	FieldKeyMaterialDescription Field = "key-material-description"
)

// ValidationError is one value KMS (or kmsbridge) would refuse, found
// before anything was changed. Field says where, Problem what is wrong and
// Fix what to write instead; Item names the element of a list field (a tag
// key) when there is one, already shortened for display.
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

// Rule is one limit KMS documents for a value, with where it is written;
// docs/kms-input-rules.md cites the API reference for each.
type Rule struct {
	// What the rule is about, in words.
	What string
	// Min and Max bound the length in Unicode characters (Max 0: none).
	Min, Max int
	// Source names the API reference entry the limit comes from.
	Source string
}

// Rules are KMS's input rules kmsbridge checks before its first change.
var Rules = struct {
	TagKey, TagValue, Description, Alias, KeyMaterialDescription Rule
	// TagsPerKey is the most tags one KMS key may carry.
	TagsPerKey int
	// LinkTags is how many tags kmsbridge adds itself: the four link tags
	// (see linkTags) and the CreateKey attempt tag (TagAttempt).
	LinkTags int
}{
	TagKey:                 Rule{What: "tag key", Min: 1, Max: 128, Source: "KMS API Reference, Tag.TagKey"},
	TagValue:               Rule{What: "tag value", Min: 0, Max: 256, Source: "KMS API Reference, Tag.TagValue"},
	Description:            Rule{What: "description", Min: 0, Max: 8192, Source: "KMS API Reference, CreateKey Description"},
	Alias:                  Rule{What: "alias name", Min: 1, Max: 256, Source: "KMS API Reference, CreateAlias AliasName"},
	KeyMaterialDescription: Rule{What: "key material description", Min: 0, Max: 256, Source: "KMS API Reference, ImportKeyMaterial KeyMaterialDescription"},
	TagsPerKey:             50,
	LinkTags:               5,
}

var (
	// tagChars are the characters AWS allows in tag keys and values:
	// Unicode letters, digits, white space, and _ . : / = + - @.
	tagChars = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$`)
	// aliasChars are the characters of an alias name after alias/.
	aliasChars = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)
)

// excerptLen is the most of a bad value an error quotes.
const excerptLen = 40

// Excerpt shortens s for an error message: at most excerptLen characters,
// control characters escaped, and the full length said when cut.
func Excerpt(s string) string {
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	if utf8.RuneCountInString(q) <= excerptLen {
		return q
	}
	r := []rune(q)
	return fmt.Sprintf("%s... (%d characters)", string(r[:excerptLen]), utf8.RuneCountInString(s))
}

// length checks s against r's bounds.
func (r Rule) length(s string) (problem string, ok bool) {
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

// hasControl reports whether s holds a control character, which would
// forge a log line or a tag.
func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// CheckTag checks one user tag against KMS's rules and kmsbridge's own.
func CheckTag(key, value string) error {
	item := Excerpt(key)
	bad := func(problem, fix string) error {
		return &ValidationError{Field: FieldTag, Item: item, Problem: problem, Fix: fix}
	}
	if p, ok := Rules.TagKey.length(key); !ok {
		return bad(p, "write tags as KEY=VALUE with a key of 1 to 128 characters")
	}
	if !utf8.ValidString(key) || hasControl(key) || !tagChars.MatchString(key) {
		return bad("the tag key has a character KMS does not allow in tags", "use letters, digits, spaces and _ . : / = + - @ only")
	}
	if strings.HasPrefix(strings.ToLower(key), "aws:") {
		return bad("tag keys beginning aws: are reserved for AWS", "choose a key without the aws: prefix")
	}
	if strings.HasPrefix(key, "kmsbridge:") {
		return bad("tag keys beginning kmsbridge: are set by kmsbridge itself", "choose a key without the kmsbridge: prefix")
	}
	if p, ok := Rules.TagValue.length(value); !ok {
		return bad(p, "shorten the value to at most 256 characters")
	}
	if !utf8.ValidString(value) || hasControl(value) || !tagChars.MatchString(value) {
		return bad("the tag value has a character KMS does not allow in tags", "use letters, digits, spaces and _ . : / = + - @ only")
	}
	return nil
}

// CheckTags checks the user's tags for a KMS key: each one, no key twice,
// and few enough that kmsbridge's own link tags still fit under KMS's
// limit of tags per key.
func CheckTags(tags []types.Tag) error {
	seen := map[string]bool{}
	for _, t := range tags {
		k, v := aws.ToString(t.TagKey), aws.ToString(t.TagValue)
		if err := CheckTag(k, v); err != nil {
			return err
		}
		if seen[k] {
			return &ValidationError{Field: FieldTag, Item: Excerpt(k), Problem: "the tag key is given twice", Fix: "give each tag key once"}
		}
		seen[k] = true
	}
	if max := Rules.TagsPerKey - Rules.LinkTags; len(tags) > max {
		return &ValidationError{Field: FieldTag,
			Problem: fmt.Sprintf("%d tags given; a KMS key holds at most %d and kmsbridge adds %d tags of its own (links and attempt)", len(tags), Rules.TagsPerKey, Rules.LinkTags),
			Fix:     fmt.Sprintf("give at most %d tags", max)}
	}
	return nil
}

// CheckAlias checks an alias name against KMS's rules.
func CheckAlias(alias string) error {
	bad := func(problem, fix string) error {
		return &ValidationError{Field: FieldAlias, Item: Excerpt(alias), Problem: problem, Fix: fix}
	}
	if p, ok := Rules.Alias.length(alias); !ok {
		return bad(p, "write alias/NAME, at most 256 characters in all")
	}
	if !aliasChars.MatchString(alias) {
		return bad("this is not a KMS alias name", "it must start with alias/ and use only letters, digits, / _ -")
	}
	if strings.HasPrefix(alias, "alias/aws/") {
		return bad("names under alias/aws/ are reserved for AWS managed keys", "choose a name outside alias/aws/")
	}
	return nil
}

// CheckDescription checks a KMS key description.
func CheckDescription(d string) error {
	if p, ok := Rules.Description.length(d); !ok {
		return &ValidationError{Field: FieldDescription, Problem: p, Fix: "shorten the description"}
	}
	if !utf8.ValidString(d) {
		return &ValidationError{Field: FieldDescription, Problem: "the description is not valid UTF-8", Fix: "write it as UTF-8 text"}
	}
	return nil
}

// CheckKeyMaterialDescription checks the description ImportKeyMaterial
// may carry for one import.
func CheckKeyMaterialDescription(d string) error {
	if p, ok := Rules.KeyMaterialDescription.length(d); !ok {
		return &ValidationError{Field: FieldKeyMaterialDescription, Problem: p, Fix: "shorten the description"}
	}
	if hasControl(d) || !utf8.ValidString(d) {
		return &ValidationError{Field: FieldKeyMaterialDescription, Problem: "the description has a control character or is not UTF-8", Fix: "write one line of text"}
	}
	if d != "" && !keyMaterialDescriptionChars.MatchString(d) {
		return &ValidationError{Field: FieldKeyMaterialDescription, Item: Excerpt(d), Problem: "KMS accepts only letters, digits, spaces and : / _ . - in a key material description", Fix: "drop the other characters"}
	}
	return nil
}

// keyMaterialDescriptionChars is ImportKeyMaterial's pattern for
// KeyMaterialDescription (docs/kms-input-rules.md).
var keyMaterialDescriptionChars = regexp.MustCompile(`^[a-zA-Z0-9:/_\s.-]+$`)

// CheckKeyLabel checks an HSM key label: kmsbridge writes it into the
// kmsbridge:hsm-key-label tag and into logs and the record, so it must be
// a valid tag value and hold no control character (a newline would forge a
// log line).
func CheckKeyLabel(label string) error {
	bad := func(problem, fix string) error {
		return &ValidationError{Field: FieldKeyLabel, Item: Excerpt(label), Problem: problem, Fix: fix}
	}
	if !utf8.ValidString(label) || hasControl(label) {
		return bad("the key label has a control character (a newline, tab, escape) or is not UTF-8", "choose a label of printable characters")
	}
	if p, ok := Rules.TagValue.length(label); !ok {
		return bad("the label must fit the kmsbridge:hsm-key-label tag: "+p, "choose a label of at most 256 characters")
	}
	if !tagChars.MatchString(label) {
		return bad("the label must fit the kmsbridge:hsm-key-label tag, and has a character KMS does not allow in tags", "use letters, digits, spaces and _ . : / = + - @ only")
	}
	return nil
}
