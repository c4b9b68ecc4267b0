package aws

import (
	"errors"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestRules checks every input rule at and just past its limit, and that
// each refusal is a ValidationError naming its field and saying what to do.
func TestRules(t *testing.T) {
	tests := []struct {
		name      string
		check     func() error
		wantField kmsimport.Field
		want      string // "" means the value passes
	}{
		{"ok tag key 128", func() error { return CheckTag(strings.Repeat("k", 128), "v") }, "", ""},
		{"fail tag key 129", func() error { return CheckTag(strings.Repeat("k", 129), "v") }, kmsimport.FieldTag, "129 characters; KMS allows at most 128"},
		{"fail tag key empty", func() error { return CheckTag("", "v") }, kmsimport.FieldTag, "the tag key is empty"},
		{"ok tag value 256", func() error { return CheckTag("k", strings.Repeat("v", 256)) }, "", ""},
		{"ok tag value empty", func() error { return CheckTag("k", "") }, "", ""},
		{"ok tag value unicode 256", func() error { return CheckTag("k", strings.Repeat("é", 256)) }, "", ""},
		{"fail tag value 257", func() error { return CheckTag("k", strings.Repeat("v", 257)) }, kmsimport.FieldTag, "257 characters; KMS allows at most 256"},
		{"fail tag key aws:", func() error { return CheckTag("aws:owner", "me") }, kmsimport.FieldTag, "reserved for AWS"},
		{"fail tag key AWS:", func() error { return CheckTag("AWS:owner", "me") }, kmsimport.FieldTag, "reserved for AWS"},
		{"fail tag key kmsbridge:", func() error { return CheckTag("kmsbridge:hsm-key-id", "01") }, kmsimport.FieldTag, "set by kmsbridge itself"},
		{"fail tag key newline", func() error { return CheckTag("a\nb", "v") }, kmsimport.FieldTag, "character KMS does not allow"},
		{"fail tag key star", func() error { return CheckTag("a*b", "v") }, kmsimport.FieldTag, "character KMS does not allow"},
		{"fail tag value newline", func() error { return CheckTag("k", "a\nb") }, kmsimport.FieldTag, "character KMS does not allow"},
		{"fail tag value not utf8", func() error { return CheckTag("k", "\xff") }, kmsimport.FieldTag, "character KMS does not allow"},
		{"ok tag allowed punctuation", func() error { return CheckTag("team:a/b_c.d=e+f-g@h i", "x:y/z") }, "", ""},
		{"ok 45 tags", func() error { return CheckTags(manyTags(45)) }, "", ""},
		{"fail 46 tags", func() error { return CheckTags(manyTags(46)) }, kmsimport.FieldTag, "46 tags given; a KMS key holds at most 50 and kmsbridge adds 5"},
		{"fail duplicate tag", func() error { return CheckTags(tagList("team", "a", "team", "b")) }, kmsimport.FieldTag, "given twice"},
		{"ok alias", func() error { return CheckAlias("alias/payments-2026") }, "", ""},
		{"ok alias 256", func() error { return CheckAlias("alias/" + strings.Repeat("a", 250)) }, "", ""},
		{"fail alias 257", func() error { return CheckAlias("alias/" + strings.Repeat("a", 251)) }, kmsimport.FieldAlias, "KMS allows at most 256"},
		{"fail alias without prefix", func() error { return CheckAlias("payments") }, kmsimport.FieldAlias, "not a KMS alias name"},
		{"fail alias bare prefix", func() error { return CheckAlias("alias/") }, kmsimport.FieldAlias, "not a KMS alias name"},
		{"fail alias aws", func() error { return CheckAlias("alias/aws/s3") }, kmsimport.FieldAlias, "reserved for AWS managed keys"},
		{"fail alias space", func() error { return CheckAlias("alias/a b") }, kmsimport.FieldAlias, "not a KMS alias name"},
		{"ok description 8192", func() error { return CheckDescription(strings.Repeat("d", 8192)) }, "", ""},
		{"fail description 8193", func() error { return CheckDescription(strings.Repeat("d", 8193)) }, kmsimport.FieldDescription, "8193 characters; KMS allows at most 8192"},
		{"fail description not utf8", func() error { return CheckDescription("\xff") }, kmsimport.FieldDescription, "not valid UTF-8"},
		{"ok key material description", func() error { return CheckKeyMaterialDescription("from the HSM") }, "", ""},
		{"fail key material description 257", func() error { return CheckKeyMaterialDescription(strings.Repeat("d", 257)) }, kmsimport.FieldKeyMaterialDescription, "at most 256"},
		{"fail key material description newline", func() error { return CheckKeyMaterialDescription("a\nb") }, kmsimport.FieldKeyMaterialDescription, "control character"},
		{"ok label", func() error { return kmsimport.CheckKeyLabel("signer-2026") }, "", ""},
		{"ok label 256", func() error { return kmsimport.CheckKeyLabel(strings.Repeat("l", 256)) }, "", ""},
		{"fail label 257", func() error { return kmsimport.CheckKeyLabel(strings.Repeat("l", 257)) }, kmsimport.FieldKeyLabel, "must fit the kmsbridge:hsm-key-label tag"},
		{"fail label newline", func() error { return kmsimport.CheckKeyLabel("k\nlevel=ERROR msg=forged") }, kmsimport.FieldKeyLabel, "control character"},
		{"fail label escape", func() error { return kmsimport.CheckKeyLabel("k\x1b[31m") }, kmsimport.FieldKeyLabel, "control character"},
		{"fail label star", func() error { return kmsimport.CheckKeyLabel("k*") }, kmsimport.FieldKeyLabel, "character KMS does not allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *kmsimport.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a *kmsimport.ValidationError", err)
			}
			if ve.Field != tt.wantField || !strings.Contains(ve.Problem, tt.want) || ve.Fix == "" {
				t.Errorf("got field %q problem %q fix %q; want field %q and problem with %q", ve.Field, ve.Problem, ve.Fix, tt.wantField, tt.want)
			}
			if !errors.Is(err, kmsimport.ErrInvalidInput) {
				t.Error("a kmsimport.ValidationError must match kmsimport.ErrInvalidInput (exit 2)")
			}
			if !strings.HasPrefix(err.Error(), "--"+string(tt.wantField)) {
				t.Errorf("Error() %q does not name the flag --%s", err, tt.wantField)
			}
		})
	}
}

// TestExcerpt checks that errors quote at most a short, escaped excerpt.
func TestExcerpt(t *testing.T) {
	// 1 MB, 4000 times the longest value KMS takes: what is checked is that
	// the excerpt stays short, which any size past the limit shows (100 MB
	// cost minutes under -race on a loaded machine).
	long := strings.Repeat("x", 1<<20)
	if got := kmsimport.Excerpt(long); len(got) > 80 || !strings.Contains(got, "(1048576 characters)") {
		t.Errorf("kmsimport.Excerpt of 1 MB is %d bytes: %.100q", len(got), got)
	}
	if got := kmsimport.Excerpt("a\nb"); got != `a\nb` {
		t.Errorf("kmsimport.Excerpt(a newline b) = %q, want the newline escaped", got)
	}
	err := CheckTag("k", long)
	if len(err.Error()) > 300 {
		t.Errorf("error for a 1 MB tag value is %d bytes long", len(err.Error()))
	}
}
