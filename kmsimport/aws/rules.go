package aws

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Rules are KMS's input rules kmsbridge checks before its first change.
var Rules = struct {
	TagKey, TagValue, Description, Alias, KeyMaterialDescription kmsimport.Rule
	// TagsPerKey is the most tags one KMS key may carry.
	TagsPerKey int
	// LinkTags is how many tags kmsbridge adds itself: the four link tags
	// (see linkTags) and the CreateKey attempt tag (TagAttempt).
	LinkTags int
}{
	TagKey:                 kmsimport.Rule{What: "tag key", Min: 1, Max: 128, Source: "KMS API Reference, Tag.TagKey"},
	TagValue:               kmsimport.Rule{What: "tag value", Min: 0, Max: 256, Source: "KMS API Reference, Tag.TagValue"},
	Description:            kmsimport.Rule{What: "description", Min: 0, Max: 8192, Source: "KMS API Reference, CreateKey Description"},
	Alias:                  kmsimport.Rule{What: "alias name", Min: 1, Max: 256, Source: "KMS API Reference, CreateAlias AliasName"},
	KeyMaterialDescription: kmsimport.Rule{What: "key material description", Min: 0, Max: 256, Source: "KMS API Reference, ImportKeyMaterial KeyMaterialDescription"},
	TagsPerKey:             50,
	LinkTags:               5,
}

// aliasChars are the characters of an alias name after alias/.
var aliasChars = lazyre.New(`^alias/[a-zA-Z0-9/_-]+$`)

// CheckTag checks one user tag against KMS's rules and kmsbridge's own.
func CheckTag(key, value string) error {
	item := kmsimport.Excerpt(key)
	bad := func(problem, fix string) error {
		return &kmsimport.ValidationError{Field: kmsimport.FieldTag, Item: item, Problem: problem, Fix: fix}
	}
	if p, ok := Rules.TagKey.Length(key); !ok {
		return bad(p, "write tags as KEY=VALUE with a key of 1 to 128 characters")
	}
	if !utf8.ValidString(key) || kmsimport.HasControl(key) || !kmsimport.TagChars.MatchString(key) {
		return bad("the tag key has a character KMS does not allow in tags", "use letters, digits, spaces and _ . : / = + - @ only")
	}
	if strings.HasPrefix(strings.ToLower(key), "aws:") {
		return bad("tag keys beginning aws: are reserved for AWS", "choose a key without the aws: prefix")
	}
	if strings.HasPrefix(key, "kmsbridge:") {
		return bad("tag keys beginning kmsbridge: are set by kmsbridge itself", "choose a key without the kmsbridge: prefix")
	}
	if p, ok := Rules.TagValue.Length(value); !ok {
		return bad(p, "shorten the value to at most 256 characters")
	}
	if !utf8.ValidString(value) || kmsimport.HasControl(value) || !kmsimport.TagChars.MatchString(value) {
		return bad("the tag value has a character KMS does not allow in tags", "use letters, digits, spaces and _ . : / = + - @ only")
	}
	return nil
}

// TagsOf is the KMS tags of m, in the order of their keys.
func TagsOf(m map[string]string) []types.Tag {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var tags []types.Tag
	for _, name := range names {
		tags = append(tags, types.Tag{TagKey: aws.String(name), TagValue: aws.String(m[name])})
	}
	return tags
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
			return &kmsimport.ValidationError{Field: kmsimport.FieldTag, Item: kmsimport.Excerpt(k), Problem: "the tag key is given twice", Fix: "give each tag key once"}
		}
		seen[k] = true
	}
	if max := Rules.TagsPerKey - Rules.LinkTags; len(tags) > max {
		return &kmsimport.ValidationError{Field: kmsimport.FieldTag,
			Problem: fmt.Sprintf("%d tags given; a KMS key holds at most %d and kmsbridge adds %d tags of its own (links and attempt)", len(tags), Rules.TagsPerKey, Rules.LinkTags),
			Fix:     fmt.Sprintf("give at most %d tags", max)}
	}
	return nil
}

// CheckAlias checks an alias name against KMS's rules.
func CheckAlias(alias string) error {
	bad := func(problem, fix string) error {
		return &kmsimport.ValidationError{Field: kmsimport.FieldAlias, Item: kmsimport.Excerpt(alias), Problem: problem, Fix: fix}
	}
	if p, ok := Rules.Alias.Length(alias); !ok {
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
	if p, ok := Rules.Description.Length(d); !ok {
		return &kmsimport.ValidationError{Field: kmsimport.FieldDescription, Problem: p, Fix: "shorten the description"}
	}
	if !utf8.ValidString(d) {
		return &kmsimport.ValidationError{Field: kmsimport.FieldDescription, Problem: "the description is not valid UTF-8", Fix: "write it as UTF-8 text"}
	}
	return nil
}

// CheckKeyMaterialDescription checks the description ImportKeyMaterial
// may carry for one import.
func CheckKeyMaterialDescription(d string) error {
	if p, ok := Rules.KeyMaterialDescription.Length(d); !ok {
		return &kmsimport.ValidationError{Field: kmsimport.FieldKeyMaterialDescription, Problem: p, Fix: "shorten the description"}
	}
	if kmsimport.HasControl(d) || !utf8.ValidString(d) {
		return &kmsimport.ValidationError{Field: kmsimport.FieldKeyMaterialDescription, Problem: "the description has a control character or is not UTF-8", Fix: "write one line of text"}
	}
	if d != "" && !keyMaterialDescriptionChars.MatchString(d) {
		return &kmsimport.ValidationError{Field: kmsimport.FieldKeyMaterialDescription, Item: kmsimport.Excerpt(d), Problem: "KMS accepts only letters, digits, spaces and : / _ . - in a key material description", Fix: "drop the other characters"}
	}
	return nil
}

// keyMaterialDescriptionChars is ImportKeyMaterial's pattern for
// KeyMaterialDescription (docs/kms-input-rules.md).
var keyMaterialDescriptionChars = lazyre.New(`^[a-zA-Z0-9:/_\s.-]+$`)
