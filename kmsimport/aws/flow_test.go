package aws

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

var now = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

func TestRequestValidate(t *testing.T) {
	ok := func() Request {
		return Request{KeyLabel: "k", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa4096, Expiry: Expiry{NoExpiry: true}}
	}
	tests := []struct {
		name    string
		mod     func(*Request)
		wantErr string
	}{
		{"ok generate no expiry", func(*Request) {}, ""},
		{"ok existing by id with valid-to", func(r *Request) {
			r.Generate, r.KeyLabel, r.KeyID = false, "", []byte{1}
			r.Expiry = Expiry{ValidTo: now.Add(24 * time.Hour)}
		}, ""},
		{"ok valid-to exactly 365 days", func(r *Request) { r.Expiry = Expiry{ValidTo: now.Add(MaxValidity)} }, ""},
		{"fail generate without label", func(r *Request) { r.KeyLabel = "" }, "--generate needs --key-label"},
		{"fail generate with id", func(r *Request) { r.KeyID = []byte{1} }, "drop --hsm-key-id"},
		{"fail no key", func(r *Request) { r.Generate, r.KeyLabel = false, "" }, "no HSM key chosen"},
		{"fail label and id", func(r *Request) { r.Generate, r.KeyID = false, []byte{1} }, "not both"},
		{"fail both expiry", func(r *Request) { r.Expiry.ValidTo = now.Add(time.Hour) }, "both --valid-to and --no-expiry"},
		{"fail neither expiry", func(r *Request) { r.Expiry = Expiry{} }, "no expiry chosen"},
		{"fail valid-to past", func(r *Request) { r.Expiry = Expiry{ValidTo: now.Add(-time.Second)} }, "is in the past"},
		{"fail valid-to beyond 365 days", func(r *Request) { r.Expiry = Expiry{ValidTo: now.Add(MaxValidity + time.Second)} }, "more than 365 days ahead"},
		{"fail pkcs1", func(r *Request) { r.WrappingAlgorithm = "RSAES_PKCS1_V1_5" }, "stopped accepting PKCS#1 v1.5"},
		{"fail unknown algorithm", func(r *Request) { r.WrappingAlgorithm = "ROT13" }, "unknown wrapping algorithm"},
		{"fail wrapping key spec", func(r *Request) { r.WrappingKeySpec = "RSA_1024" }, "unknown wrapping key spec"},
		{"fail alias without prefix", func(r *Request) { r.Alias = "payments" }, "must start with alias/"},
		{"fail reserved alias", func(r *Request) { r.Alias = "alias/aws/s3" }, "reserved"},
		{"fail kmsbridge tag", func(r *Request) {
			r.Tags = []types.Tag{{TagKey: aws.String("kmsbridge:hsm-key-id"), TagValue: aws.String("x")}}
		}, "set by kmsbridge itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.mod(&r)
			err := r.Validate(now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, kmsimport.ErrInvalidInput) {
				t.Errorf("error is not ErrInvalidInput, so it would not exit 2: %v", err)
			}
		})
	}
}

func TestParseWrappingAlgorithm(t *testing.T) {
	for in, want := range map[string]hsm.OAEPHash{"RSAES_OAEP_SHA_256": hsm.OAEPSHA256, "rsaes_oaep_sha_1": hsm.OAEPSHA1} {
		w, err := ParseWrappingAlgorithm(in)
		if err != nil || w.OAEP != want {
			t.Errorf("ParseWrappingAlgorithm(%q) = %v, %v; want OAEP %v", in, w, err, want)
		}
	}
}

func TestExplainGivesAdvicePerException(t *testing.T) {
	tests := []struct {
		code, want string
		transient  bool
	}{
		{"InvalidCiphertextException", "wrapped under another public key", false},
		{"IncorrectKeyMaterialException", "only ever accepts the same material", false},
		{"ExpiredImportTokenException", "older than 24 hours", false},
		{"InvalidImportTokenException", "another KMS key", false},
		{"KMSInvalidStateException", "PendingImport or Enabled", false},
		{"UnsupportedOperationException", "origin must be EXTERNAL", false},
		{"NotFoundException", "check --kms-key-id", false},
		{"ThrottlingException", "try again", true},
		{"KMSInternalException", "transient", true},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			err := explain("ImportKeyMaterial", &smithy.GenericAPIError{Code: tt.code, Message: "kms says"})
			var ke *kmsimport.KMSError
			if !errors.As(err, &ke) {
				t.Fatalf("not a *KMSError: %v", err)
			}
			if ke.Code != tt.code || ke.Transient != tt.transient || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "kms says") {
				t.Errorf("%q (transient %v)", err, ke.Transient)
			}
		})
	}
}

func noAliases(*kms.ListAliasesInput) (*kms.ListAliasesOutput, error) {
	return &kms.ListAliasesOutput{}, nil
}

func TestRunRefusesANonExternalKeyBeforeChangingAnything(t *testing.T) {
	api := &fakeKMS{
		listAliases: noAliases,
		describeKey: func(*kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error) {
			return &kms.DescribeKeyOutput{KeyMetadata: &types.KeyMetadata{KeyId: aws.String("k1"), Origin: types.OriginTypeAwsKms, KeySpec: types.KeySpecSymmetricDefault, KeyState: types.KeyStateEnabled}}, nil
		},
	}
	tok := &fakeToken{}
	_, err := (&Importer{KMS: api, Token: tok, Now: func() time.Time { return now }}).Run(context.Background(), Request{
		KeyLabel: "new", Generate: true, KMSKeyID: "k1", Expiry: Expiry{NoExpiry: true},
	})
	if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "not EXTERNAL") {
		t.Fatalf("got %v, want a not-EXTERNAL refusal", err)
	}
	if !strings.Contains(err.Error(), "Nothing was changed") {
		t.Errorf("error does not say nothing changed: %v", err)
	}
	if len(tok.generated) != 0 {
		t.Errorf("HSM key generated before the KMS check: %v", tok.generated)
	}
	if slices.Contains(api.calls, "CreateKey") || slices.Contains(api.calls, "GetParametersForImport") {
		t.Errorf("KMS changed: calls %v", api.calls)
	}
}

func TestRunPicksTheStrongestAlgorithmTheTokenCanDo(t *testing.T) {
	for _, tc := range []struct {
		sha256 bool
		want   types.AlgorithmSpec
	}{{true, types.AlgorithmSpecRsaesOaepSha256}, {false, types.AlgorithmSpecRsaesOaepSha1}} {
		var asked types.AlgorithmSpec
		api := &fakeKMS{
			listAliases: noAliases,
			createKey: func(*kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
				return &kms.CreateKeyOutput{KeyMetadata: &types.KeyMetadata{KeyId: aws.String("k1")}}, nil
			},
			getParametersForImport: func(in *kms.GetParametersForImportInput) (*kms.GetParametersForImportOutput, error) {
				asked = in.WrappingAlgorithm
				return nil, &smithy.GenericAPIError{Code: "KMSInternalException"}
			},
		}
		tok := &fakeToken{sha256: tc.sha256}
		res, _ := (&Importer{KMS: api, Token: tok}).Run(context.Background(), Request{KeyLabel: "k", Generate: true, Expiry: Expiry{NoExpiry: true}})
		if asked != tc.want || res.WrappingAlgorithm != string(tc.want) {
			t.Errorf("sha256=%v: asked KMS for %s (result %s), want %s", tc.sha256, asked, res.WrappingAlgorithm, tc.want)
		}
		if !tc.sha256 && len(res.Warnings) == 0 {
			t.Errorf("falling back to SHA-1 gave no warning")
		}
	}
}

func TestRunFailureAfterCreationSaysWhatExistsAndHowToFinish(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	var tags []types.Tag
	api := &fakeKMS{
		listAliases: noAliases,
		createKey: func(in *kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
			tags = in.Tags
			if in.Origin != types.OriginTypeExternal {
				t.Errorf("CreateKey origin %s", in.Origin)
			}
			return &kms.CreateKeyOutput{KeyMetadata: &types.KeyMetadata{KeyId: aws.String("k1")}}, nil
		},
		getParametersForImport: func(*kms.GetParametersForImportInput) (*kms.GetParametersForImportOutput, error) {
			return &kms.GetParametersForImportOutput{PublicKey: der, ImportToken: []byte("t")}, nil
		},
	}
	tok := &fakeToken{wrapErr: &hsm.Error{Call: "C_WrapKey", Code: 0x69}}
	_, err = (&Importer{KMS: api, Token: tok}).Run(context.Background(), Request{
		KeyLabel: "k", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true},
	})
	var se *kmsimport.StepError
	if !errors.As(err, &se) || se.Step != StepWrap {
		t.Fatalf("got %v, want a StepError at %s", err, StepWrap)
	}
	msg := err.Error()
	id := fmt.Sprintf("%x", tok.generatedIDs[0])
	for _, want := range []string{`HSM key "k" (CKA_ID ` + id + `)`, "KMS key k1 was created", "run the same kmsbridge import command again", "--hsm-key-id " + id} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	got := map[string]string{}
	for _, tg := range tags {
		got[*tg.TagKey] = *tg.TagValue
	}
	if got[TagHSMKeyID] != id || got[TagHSMKeyLabel] != "k" || got[TagTokenSerial] != "0001" {
		t.Errorf("link tags at CreateKey: %v", got)
	}
	if slices.Contains(api.calls, "ImportKeyMaterial") {
		t.Error("ImportKeyMaterial called after a failed wrap")
	}
}

func TestRunRefusesAKeyLinkedToAnotherHSMKey(t *testing.T) {
	api := &fakeKMS{
		listAliases: noAliases,
		describeKey: func(*kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error) {
			return &kms.DescribeKeyOutput{KeyMetadata: &types.KeyMetadata{KeyId: aws.String("k1"), Origin: types.OriginTypeExternal, KeySpec: types.KeySpecSymmetricDefault, KeyState: types.KeyStatePendingImport}}, nil
		},
		listResourceTags: func(*kms.ListResourceTagsInput) (*kms.ListResourceTagsOutput, error) {
			return &kms.ListResourceTagsOutput{Tags: []types.Tag{{TagKey: aws.String(TagHSMKeyID), TagValue: aws.String("ff")}}}, nil
		},
		listKeyRotations: func(*kms.ListKeyRotationsInput) (*kms.ListKeyRotationsOutput, error) {
			return &kms.ListKeyRotationsOutput{}, nil
		},
	}
	_, err := (&Importer{KMS: api, Token: &fakeToken{labels: map[string]bool{"k": true}}}).Run(context.Background(), Request{
		KeyLabel: "k", KMSKeyID: "k1", Expiry: Expiry{NoExpiry: true},
	})
	if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "choose --hsm-key-id ff") {
		t.Fatalf("got %v, want a refusal naming the linked HSM key", err)
	}
}
