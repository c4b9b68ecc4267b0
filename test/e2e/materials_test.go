package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// exitInvalid is the exit code of invalid input (README, Exit codes).
const exitInvalid = 2

// materialImport is one material's ImportState by KeyMaterialId.
func materialImport(t *testing.T, emu *emulator, keyID, materialID string) types.ImportState {
	t.Helper()
	for _, m := range materials(t, emu, keyID) {
		if aws.ToString(m.KeyMaterialId) == materialID {
			return m.ImportState
		}
	}
	t.Fatalf("KMS key %s has no material %s", keyID, materialID)
	return ""
}

// TestEveryGenerationReimportsByItsOwnMaterialId rotates a key twice and
// then imports, deletes and re-imports each generation's HSM key with the
// same command: every answer names that generation's own KeyMaterialId,
// whichever material is current.
func TestEveryGenerationReimportsByItsOwnMaterialId(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--rotation-delay", "1s")
	tok := newToken(t)
	common := lifeArgs(emu, tok)
	first := importJSON(t, tok, append(common, "--key-label", "gen-2026", "--generate", "--no-expiry")...)
	gens := map[string]string{"gen-2026": first.KeyMaterialId}
	for i, label := range []string{"gen-2026-r2", "gen-2026-r3"} {
		args := []string{"rotate", "--kms-key-id", first.KeyId, "--no-expiry", "--output", "json"}
		if i > 0 {
			// A second rotation within a day is asked for on purpose.
			args = append(args, "--new-rotation")
		}
		r := kmsbridge(t, tok, append(args, common...)...)
		var res awskms.RotateResult
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &res) != nil || res.NewHSMKey.KeyLabel != label {
			t.Fatalf("rotate to %s: exit %d\n%s\n%s", label, r.Code, r.Stdout, r.Stderr)
		}
		gens[label] = res.NewKeyMaterialId
	}
	reimport := func(t *testing.T, label string) awskms.Result {
		t.Helper()
		return importJSON(t, tok, append(common, "--kms-key-id", first.KeyId, "--key-label", label, "--no-expiry")...)
	}

	t.Run("re-running import names each generation's own material", func(t *testing.T) {
		for label, id := range gens {
			if res := reimport(t, label); res.KeyMaterialId != id {
				t.Errorf("import of %s reports KeyMaterialId %s, want its own %s", label, res.KeyMaterialId, id)
			}
		}
	})

	t.Run("deleted non-current material imports again with the same command", func(t *testing.T) {
		for _, label := range []string{"gen-2026", "gen-2026-r2", "gen-2026-r3"} {
			id := gens[label]
			if _, err := emu.KMS.DeleteImportedKeyMaterial(context.Background(), &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(first.KeyId), KeyMaterialId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
			if s := keyState(t, emu, first.KeyId); s != types.KeyStatePendingImport {
				t.Fatalf("after deleting %s the key is %s, want PendingImport", label, s)
			}
			res := reimport(t, label)
			if res.KeyMaterialId != id || materialImport(t, emu, first.KeyId, id) != types.ImportStateImported {
				t.Fatalf("re-import of %s: KeyMaterialId %s (want %s), material %s", label, res.KeyMaterialId, id, materialImport(t, emu, first.KeyId, id))
			}
			if s := keyState(t, emu, first.KeyId); s != types.KeyStateEnabled {
				t.Errorf("after re-importing %s the key is %s", label, s)
			}
		}
	})

	t.Run("delete-material deletes one chosen material, also from a PendingImport key", func(t *testing.T) {
		del := func(label string) run {
			return kmsbridge(t, nil, "delete-material", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", first.KeyId, "--key-material-id", gens[label], "--yes", "--output", "json")
		}
		for _, label := range []string{"gen-2026", "gen-2026-r2"} {
			r := del(label)
			var k awskms.MaterialKey
			if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &k) != nil {
				t.Fatalf("delete-material %s: exit %d\n%s\n%s", label, r.Code, r.Stdout, r.Stderr)
			}
			if k.KeyMaterialId != gens[label] || k.ImportState != string(types.ImportStatePendingImport) || k.KeyState != string(types.KeyStatePendingImport) {
				t.Errorf("delete-material %s answered %+v", label, k)
			}
		}
		if materialImport(t, emu, first.KeyId, gens["gen-2026-r3"]) != types.ImportStateImported {
			t.Fatal("delete-material deleted the current material too")
		}
		if r := del("gen-2026"); r.Code != exitInvalid || !strings.Contains(r.Stderr, "already deleted") {
			t.Errorf("deleting deleted material again: exit %d\n%s", r.Code, r.Stderr)
		}
		r := kmsbridge(t, nil, "delete-material", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", first.KeyId, "--key-material-id", strings.Repeat("ab", 32), "--yes")
		if r.Code != exitInvalid || !strings.Contains(r.Stderr, gens["gen-2026-r3"]) {
			t.Errorf("deleting a material the key does not have: exit %d\n%s", r.Code, r.Stderr)
		}
		// gen-2 first: the key stays PendingImport, and the result says
		// which import makes it usable again.
		res := reimport(t, "gen-2026-r2")
		if res.KeyMaterialId != gens["gen-2026-r2"] || res.KeyState != string(types.KeyStatePendingImport) ||
			len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, " "), "--hsm-key-id") {
			t.Errorf("re-import of gen-2026-r2 while gen-2026 is deleted: %s %s %v", res.KeyMaterialId, res.KeyState, res.Warnings)
		}
		if res := reimport(t, "gen-2026"); res.KeyMaterialId != gens["gen-2026"] || res.KeyState != string(types.KeyStateEnabled) {
			t.Errorf("re-import of gen-2026: KeyMaterialId %s, key %s", res.KeyMaterialId, res.KeyState)
		}
		if s := keyState(t, emu, first.KeyId); s != types.KeyStateEnabled {
			t.Errorf("after re-importing both the key is %s", s)
		}
	})

	t.Run("verify names the material of the HSM key it checks", func(t *testing.T) {
		for label, id := range gens {
			r := kmsbridge(t, tok, "verify", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", first.KeyId, "--key-label", label, "--output", "json")
			var out struct{ Result awskms.VerifyResult }
			if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil {
				t.Fatalf("verify %s: exit %d\n%s\n%s", label, r.Code, r.Stdout, r.Stderr)
			}
			if out.Result.KeyMaterialId != id {
				t.Errorf("verify of %s names material %s, want %s", label, out.Result.KeyMaterialId, id)
			}
		}
	})

	t.Run("an HSM key that backs no material of the key is refused before any change", func(t *testing.T) {
		importJSON(t, tok, append(common, "--key-label", "stranger", "--generate", "--no-expiry")...)
		r := kmsbridge(t, tok, append([]string{"import", "--kms-key-id", first.KeyId, "--key-label", "stranger", "--no-expiry"}, common...)...)
		if r.Code == 0 || !strings.Contains(r.Stderr, "gen-2026") {
			t.Errorf("import of an unrelated HSM key: exit %d\n%s", r.Code, r.Stderr)
		}
	})
}
