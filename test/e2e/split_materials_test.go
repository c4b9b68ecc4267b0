package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestSplitReimportsAnyGeneration rotates a key, deletes each generation's
// material in turn, and imports it again through the air-gapped split
// (prepare, wrap of the existing HSM key, upload): upload names the
// generation's own KeyMaterialId (EXISTING_KEY_MATERIAL), as import does,
// and the link tags keep naming the first generation.
func TestSplitReimportsAnyGeneration(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--rotation-delay", "1s")
	tok := newToken(t)
	common := lifeArgs(emu, tok)
	first := importJSON(t, tok, append(common, "--key-label", "split-gen", "--generate", "--no-expiry")...)
	r := kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", first.KeyId, "--no-expiry", "--output", "json"}, common...)...)
	var rot awskms.RotateResult
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rot) != nil {
		t.Fatalf("rotate: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	gens := []struct{ label, id string }{{"split-gen", first.KeyMaterialId}, {rot.NewHSMKey.KeyLabel, rot.NewKeyMaterialId}}
	emuArgs := []string{"--endpoint-url", emu.URL, "--allow-endpoint", emu.URL}

	deleteMaterial := func(t *testing.T, id string) {
		t.Helper()
		if _, err := emu.KMS.DeleteImportedKeyMaterial(context.Background(), &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(first.KeyId), KeyMaterialId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	// upload prepares, wraps and uploads HSM key label, and returns the result.
	upload := func(t *testing.T, label string) (awskms.Result, []string) {
		t.Helper()
		dir := t.TempDir()
		bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
		if r := kmsbridge(t, nil, append([]string{"prepare", "--kms-key-id", first.KeyId, "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", bundle}, emuArgs...)...); r.Code != 0 {
			t.Fatalf("prepare: exit %d\n%s", r.Code, r.Stderr)
		}
		var b kmsimport.Bundle
		readJSON(t, bundle, &b)
		if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
			"--expect-fingerprint", awskms.FormatFingerprint(b.PublicKeySha256), "--key-label", label, "--out", wrapped); r.Code != 0 {
			t.Fatalf("wrap of %s: exit %d\n%s", label, r.Code, r.Stderr)
		}
		args := append([]string{"upload", "--wrapped", wrapped, "--bundle", bundle, "--no-expiry", "--allow-unsigned"}, emuArgs...)
		return importJSONArgs(t, nil, args...), args
	}

	t.Run("both generations deleted: each uploads again, the first leaves the key PendingImport and says why", func(t *testing.T) {
		deleteMaterial(t, gens[0].id)
		deleteMaterial(t, gens[1].id)
		res, _ := upload(t, gens[1].label)
		if res.KeyMaterialId != gens[1].id || res.KeyState != string(types.KeyStatePendingImport) || len(res.Warnings) == 0 ||
			!strings.Contains(strings.Join(res.Warnings, " "), shortMaterialID(gens[0].id)) {
			t.Errorf("upload of %s while %s is deleted: KeyMaterialId %s, key %s, warnings %v", gens[1].label, gens[0].label, res.KeyMaterialId, res.KeyState, res.Warnings)
		}
		if res, _ := upload(t, gens[0].label); res.KeyMaterialId != gens[0].id || res.KeyState != string(types.KeyStateEnabled) || !res.Verification.EncryptDecrypt {
			t.Errorf("upload of %s: KeyMaterialId %s, key %s, verification %+v", gens[0].label, res.KeyMaterialId, res.KeyState, res.Verification)
		}
	})

	for _, g := range gens {
		t.Run(g.label, func(t *testing.T) {
			deleteMaterial(t, g.id)
			dir := t.TempDir()
			bundle, wrapped := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json")
			if r := kmsbridge(t, nil, append([]string{"prepare", "--kms-key-id", first.KeyId, "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--out", bundle}, emuArgs...)...); r.Code != 0 {
				t.Fatalf("prepare for a key whose material %s was deleted: exit %d\n%s", g.id, r.Code, r.Stderr)
			}
			var b kmsimport.Bundle
			readJSON(t, bundle, &b)
			if r := kmsbridge(t, tok, "wrap", "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--bundle", bundle,
				"--expect-fingerprint", awskms.FormatFingerprint(b.PublicKeySha256), "--key-label", g.label, "--out", wrapped); r.Code != 0 {
				t.Fatalf("wrap of %s: exit %d\n%s", g.label, r.Code, r.Stderr)
			}
			res := importJSONArgs(t, nil, append([]string{"upload", "--wrapped", wrapped, "--bundle", bundle, "--no-expiry", "--allow-unsigned"}, emuArgs...)...)
			if res.KeyMaterialId != g.id {
				t.Errorf("upload of %s names KeyMaterialId %s, want its own %s", g.label, res.KeyMaterialId, g.id)
			}
			if s := materialImport(t, emu, first.KeyId, g.id); s != types.ImportStateImported {
				t.Errorf("material %s of %s is %s after the upload", g.id, g.label, s)
			}
			if s := keyState(t, emu, first.KeyId); s != types.KeyStateEnabled {
				t.Errorf("after the upload of %s the key is %s", g.label, s)
			}
			tags, err := emu.KMS.ListResourceTags(context.Background(), &kms.ListResourceTagsInput{KeyId: aws.String(first.KeyId)})
			if err != nil {
				t.Fatal(err)
			}
			for _, tg := range tags.Tags {
				if aws.ToString(tg.TagKey) == awskms.TagHSMKeyLabel && aws.ToString(tg.TagValue) != "split-gen" {
					t.Errorf("after the upload of %s the link tag %s names %q, want the first generation", g.label, awskms.TagHSMKeyLabel, aws.ToString(tg.TagValue))
				}
			}
			// The same upload again changes nothing and says so.
			again := importJSONArgs(t, nil, append([]string{"upload", "--wrapped", wrapped, "--bundle", bundle, "--no-expiry", "--allow-unsigned"}, emuArgs...)...)
			if again.KeyMaterialId != g.id {
				t.Errorf("re-run of the upload of %s names %s", g.label, again.KeyMaterialId)
			}
		})
	}
}

// shortMaterialID is how messages shorten a KeyMaterialId.
func shortMaterialID(id string) string { return id[:16] }
