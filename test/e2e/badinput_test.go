package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestBadInput runs every kind of bad input against one emulator and one
// token, and checks each gets its message and exit code and leaves no KMS
// key and no HSM key behind.
func TestBadInput(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	base := func(extra ...string) []string {
		return append([]string{"import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048"}, extra...)
	}
	// An existing HSM key, and a KMS key that is not EXTERNAL.
	existing := importJSON(t, tok, base("--key-label", "existing", "--generate", "--no-expiry")[1:]...)
	awsKey, err := emu.KMS.CreateKey(context.Background(), &kms.CreateKeyInput{Origin: types.OriginTypeAwsKms})
	if err != nil {
		t.Fatal(err)
	}
	awsKeyID := aws.ToString(awsKey.KeyMetadata.KeyId)

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"fail wrong PIN", append([]string{"KMSBRIDGE_PIN=0000"}, base("--key-label", "new", "--generate", "--no-expiry")...),
			3, []string{"C_Login: CKR_PIN_INCORRECT (0xa0)", "the PIN is wrong"}},
		{"fail empty PIN", append([]string{"KMSBRIDGE_PIN="}, base("--key-label", "new", "--generate", "--no-expiry")...),
			3, []string{"KMSBRIDGE_PIN is set but empty"}},
		{"fail unknown token", []string{"import", "--token-label", "nosuch", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "new", "--generate", "--no-expiry"},
			3, []string{`no token with label "nosuch"`, `label "ceremony"`}},
		{"fail unknown module", append([]string{"KMSBRIDGE_PKCS11_MODULE=/usr/lib/nosuch/libpkcs11.so"}, base("--key-label", "new", "--generate", "--no-expiry")...),
			3, []string{"/usr/lib/nosuch/libpkcs11.so does not exist", "--module"}},
		{"fail no token chosen", []string{"import", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "new", "--generate", "--no-expiry"},
			2, []string{"give exactly one of --token-label, --token-serial or --slot"}},
		{"fail label exists with generate", base("--key-label", "existing", "--generate", "--no-expiry"),
			3, []string{`already has an object labelled "existing"`, "drop --generate"}},
		{"fail label missing without generate", base("--key-label", "new", "--no-expiry"),
			3, []string{`no secret or private key with label "new"`, "--generate"}},
		{"fail both expiries", base("--key-label", "new", "--generate", "--no-expiry", "--valid-to", validTo(time.Hour)),
			2, []string{"both --valid-to and --no-expiry"}},
		{"fail no expiry", base("--key-label", "new", "--generate"),
			2, []string{"no expiry chosen", "--no-expiry"}},
		{"fail valid-to in the past", base("--key-label", "new", "--generate", "--valid-to", "2020-01-01T00:00:00Z"),
			2, []string{"is in the past"}},
		{"fail valid-to beyond 365 days", base("--key-label", "new", "--generate", "--valid-to", validTo(400*24*time.Hour)),
			2, []string{"more than 365 days ahead"}},
		{"fail valid-to not a time", base("--key-label", "new", "--generate", "--valid-to", "next tuesday"),
			2, []string{"is not a time", "RFC 3339"}},
		{"fail kms key not external", base("--key-label", "new", "--generate", "--no-expiry", "--kms-key-id", awsKeyID),
			2, []string{"origin AWS_KMS, not EXTERNAL"}},
		{"fail unknown kms key", base("--key-label", "existing", "--no-expiry", "--kms-key-id", "11111111-2222-3333-4444-555555555555"),
			4, []string{"NotFoundException", "check --kms-key-id"}},
		{"fail pkcs1 v1.5", base("--key-label", "new", "--generate", "--no-expiry", "--wrapping-algorithm", "RSAES_PKCS1_V1_5"),
			2, []string{"RSAES_PKCS1_V1_5 is refused", "2023"}},
		{"fail sha-256 on softhsm", base("--key-label", "new", "--generate", "--no-expiry", "--wrapping-algorithm", "RSAES_OAEP_SHA_256"),
			2, []string{"cannot wrap with RSA-OAEP SHA-256", "CKR_ARGUMENTS_BAD", "RSAES_OAEP_SHA_1"}},
		{"fail new key into a linked kms key", base("--key-label", "new", "--generate", "--no-expiry", "--kms-key-id", existing.KeyId),
			2, []string{"already holds material from HSM key CKA_ID " + existing.HSM.KeyID}},
		{"fail pin on argv", base("--pin", "1234", "--key-label", "new", "--generate", "--no-expiry"),
			2, []string{"flag provided but not defined: -pin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := emu.keyCount(t)
			r := kmsbridge(t, tok, tt.args...)
			if r.Code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstderr: %s", r.Code, tt.wantCode, r.Stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
				}
			}
			if after := emu.keyCount(t); after != before {
				t.Errorf("KMS keys: %d before, %d after: a failed run must create none", before, after)
			}
			if tokenHasLabel(t, tok, "new") {
				t.Error(`HSM key "new" exists after a failed run`)
			}
		})
	}
}

// TestExpiredParametersLeaveARecord makes the import parameters expire
// between GetParametersForImport and ImportKeyMaterial. The KMS key and
// HSM key already exist then; the error must say so and how to finish, and
// the KMS key must carry the tags that link it to the HSM key.
func TestExpiredParametersLeaveARecord(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--import-parameters-ttl", "1ms")
	tok := newToken(t)
	r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--wrapping-key-spec", "RSA_2048", "--key-label", "k", "--generate", "--no-expiry")
	if r.Code != 4 {
		t.Fatalf("exit %d, want 4 (KMS)\n%s", r.Code, r.Stderr)
	}
	for _, w := range []string{"ExpiredImportTokenException", "older than 24 hours", "What exists now", "To finish", "--hsm-key-id"} {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
		}
	}
	if !tokenHasLabel(t, tok, "k") {
		t.Error("the HSM key was lost")
	}
	keys, err := emu.KMS.ListKeys(context.Background(), &kms.ListKeysInput{})
	if err != nil || len(keys.Keys) != 1 {
		t.Fatalf("want exactly one KMS key, got %v %v", keys, err)
	}
	tags, err := emu.KMS.ListResourceTags(context.Background(), &kms.ListResourceTagsInput{KeyId: keys.Keys[0].KeyId})
	if err != nil {
		t.Fatal(err)
	}
	linked := false
	for _, tg := range tags.Tags {
		linked = linked || aws.ToString(tg.TagKey) == awskms.TagHSMKeyID && strings.Contains(r.Stderr, aws.ToString(tg.TagValue))
	}
	if !linked {
		t.Errorf("the KMS key is not tagged with the HSM key id named in the error: %v", tags.Tags)
	}
}
