package aws

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestRequestValidateUsesRules checks the request's own validation applies
// the rules (so every command and the ceremony file do) before any change.
func TestRequestValidateUsesRules(t *testing.T) {
	r := Request{KeyLabel: "k\nforged", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa4096, Expiry: Expiry{NoExpiry: true}}
	var ve *kmsimport.ValidationError
	if err := r.Validate(time.Now()); !errors.As(err, &ve) || ve.Field != kmsimport.FieldKeyLabel {
		t.Errorf("label with newline: %v", err)
	}
	r.KeyLabel, r.Tags = "k", manyTags(47)
	if err := r.Validate(time.Now()); !errors.As(err, &ve) || ve.Field != kmsimport.FieldTag {
		t.Errorf("47 tags: %v", err)
	}
	r.Tags, r.Description = nil, strings.Repeat("d", 9000)
	if err := r.Validate(time.Now()); !errors.As(err, &ve) || ve.Field != kmsimport.FieldDescription {
		t.Errorf("long description: %v", err)
	}
}

func tagList(kv ...string) []types.Tag {
	var out []types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, types.Tag{TagKey: aws.String(kv[i]), TagValue: aws.String(kv[i+1])})
	}
	return out
}

func manyTags(n int) []types.Tag {
	var kv []string
	for i := 0; i < n; i++ {
		kv = append(kv, fmt.Sprintf("k%d", i), "v")
	}
	return tagList(kv...)
}
