package kmsemu

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func TestTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	out, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, Tags: []types.Tag{
		{TagKey: aws.String("project"), TagValue: aws.String("kmsbridge")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	keyID := aws.ToString(out.KeyMetadata.KeyId)
	tags := func(t *testing.T) map[string]string {
		t.Helper()
		out, err := e.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(keyID)})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, tg := range out.Tags {
			m[aws.ToString(tg.TagKey)] = aws.ToString(tg.TagValue)
		}
		return m
	}
	tag := func(k, v string) types.Tag { return types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)} }

	t.Run("ok tags from CreateKey", func(t *testing.T) {
		if got := tags(t); len(got) != 1 || got["project"] != "kmsbridge" {
			t.Errorf("tags = %v", got)
		}
	})
	t.Run("ok TagResource adds and overwrites", func(t *testing.T) {
		if _, err := e.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(keyID), Tags: []types.Tag{tag("project", "kb"), tag("env", "")}}); err != nil {
			t.Fatal(err)
		}
		if got := tags(t); len(got) != 2 || got["project"] != "kb" || got["env"] != "" {
			t.Errorf("tags = %v", got)
		}
	})
	t.Run("ok UntagResource removes, ignoring absent keys", func(t *testing.T) {
		if _, err := e.kms.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(e.srv.keyARN(keyID)), TagKeys: []string{"env", "absent"}}); err != nil {
			t.Fatal(err)
		}
		if got := tags(t); len(got) != 1 || got["project"] != "kb" {
			t.Errorf("tags = %v", got)
		}
	})
	t.Run("fail reserved aws: prefix", func(t *testing.T) {
		_, err := e.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(keyID), Tags: []types.Tag{tag("AWS:x", "y")}})
		wantErr(t, err, "TagException")
	})
	t.Run("fail tag key over 128 characters", func(t *testing.T) {
		_, err := e.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(keyID), Tags: []types.Tag{tag(strings.Repeat("k", 129), "y")}})
		wantErr(t, err, "ValidationException", "tagKey")
	})
	t.Run("fail more than 50 tags", func(t *testing.T) {
		var many []types.Tag
		for i := range 50 {
			many = append(many, tag("t"+strings.Repeat("x", i), "v"))
		}
		_, err := e.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(keyID), Tags: many})
		wantErr(t, err, "TagException", "50")
	})
	t.Run("fail tag a key pending deletion", func(t *testing.T) {
		_, err := e.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(e.pendingDeletionKey(t)), Tags: []types.Tag{tag("a", "b")}})
		wantErr(t, err, "KMSInvalidStateException")
	})
	t.Run("fail tag by alias", func(t *testing.T) {
		_, err := e.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(e.aliasedKey(t)), Tags: []types.Tag{tag("a", "b")}})
		wantErr(t, err, "NotFoundException")
	})
}
