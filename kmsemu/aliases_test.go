package kmsemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

func (e *env) aliasNames(t *testing.T, keyID *string) []string {
	t.Helper()
	out, err := e.kms.ListAliases(ctx, &kms.ListAliasesInput{KeyId: keyID})
	if err != nil {
		t.Fatalf("ListAliases: %v", err)
	}
	var names []string
	for _, a := range out.Aliases {
		names = append(names, aws.ToString(a.AliasName))
		if aws.ToString(a.AliasArn) != e.srv.aliasARN(aws.ToString(a.AliasName)) || a.CreationDate == nil || a.LastUpdatedDate == nil {
			t.Errorf("alias entry %+v", a)
		}
	}
	return names
}

func TestAliases(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	a, b := e.externalKey(t), e.externalKey(t)
	create := func(name, target string) error {
		_, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(target)})
		return err
	}

	t.Run("ok create by key ID and by key ARN", func(t *testing.T) {
		if err := create("alias/kmsbridge/one", a); err != nil {
			t.Fatal(err)
		}
		if err := create("alias/kmsbridge/two", e.srv.keyARN(a)); err != nil {
			t.Fatal(err)
		}
		if err := create("alias/other", b); err != nil {
			t.Fatal(err)
		}
		if got := e.aliasNames(t, aws.String(a)); !slices.Equal(got, []string{"alias/kmsbridge/one", "alias/kmsbridge/two"}) {
			t.Errorf("aliases of a = %v", got)
		}
		if got := e.aliasNames(t, nil); len(got) != 3 {
			t.Errorf("all aliases = %v", got)
		}
	})
	t.Run("ok update moves the alias", func(t *testing.T) {
		if _, err := e.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/kmsbridge/two"), TargetKeyId: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(e.describe(t, "alias/kmsbridge/two").KeyId); got != b {
			t.Errorf("alias/kmsbridge/two -> %s, want %s", got, b)
		}
	})
	t.Run("ok delete", func(t *testing.T) {
		if _, err := e.kms.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/other")}); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(e.aliasNames(t, nil), "alias/other") {
			t.Error("deleted alias still listed")
		}
	})

	fails := []struct {
		name string
		run  func() error
		code string
		msg  string
	}{
		{"fail alias that exists", func() error { return create("alias/kmsbridge/one", b) }, "AlreadyExistsException", "already exists"},
		{"fail reserved alias/aws/ prefix", func() error { return create("alias/aws/kms", a) }, "InvalidAliasNameException", "reserved"},
		{"fail name without alias/ prefix", func() error { return create("kmsbridge", a) }, "ValidationException", "alias/"},
		{"fail bare alias/", func() error { return create("alias/", a) }, "ValidationException", ""},
		{"fail forbidden character", func() error { return create("alias/with space", a) }, "ValidationException", "aliasName"},
		{"fail name of 257 characters", func() error { return create("alias/"+strings.Repeat("x", 251), a) }, "ValidationException", "256"},
		{"fail target given as an alias", func() error { return create("alias/new", "alias/kmsbridge/one") }, "NotFoundException", ""},
		{"fail unknown target", func() error { return create("alias/new", unknownKey(t)) }, "NotFoundException", ""},
		{"fail target pending deletion", func() error { return create("alias/new", e.pendingDeletionKey(t)) }, "KMSInvalidStateException", "pending deletion"},
		{"fail update an unknown alias", func() error {
			_, err := e.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/nope"), TargetKeyId: aws.String(a)})
			return err
		}, "NotFoundException", ""},
		{"fail delete an unknown alias", func() error {
			_, err := e.kms.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/nope")})
			return err
		}, "NotFoundException", ""},
		{"fail list aliases of an unknown key", func() error {
			_, err := e.kms.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String(unknownKey(t))})
			return err
		}, "NotFoundException", ""},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.run(), tt.code, tt.msg)
		})
	}
}
