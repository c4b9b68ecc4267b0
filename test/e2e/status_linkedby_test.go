package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestStatusSaysALinkIsByTagsUntilVerified: status finds a KMS key's HSM
// key by its kmsbridge tags, which whoever may tag the key can write. It
// says so: LinkedBy "tags" (JSON, LINKED BY column) unless --verify
// confirmed KMS holds the HSM key's material (an HMAC key's GenerateMac),
// "verified"; an AES key, whose material KMS cannot confirm, stays "tags"
// even when it round-trips Encrypt/Decrypt.
func TestStatusSaysALinkIsByTagsUntilVerified(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	common := ownArgs(emu, tok, state)
	mac := importJSON(t, tok, append(common, "--key-label", "mac", "--generate", "--key-spec", "HMAC_256", "--no-expiry")...)
	aes := importJSON(t, tok, append(common, "--key-label", "aes", "--generate", "--no-expiry")...)
	status := func(extra ...string) awskms.Status {
		t.Helper()
		r := kmsbridge(t, tok, append([]string{"status", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--state-dir", state, "-o", "json"}, extra...)...)
		var st awskms.Status
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Fatalf("status %v: exit %d, no JSON: %v\n%s", extra, r.Code, err, r.Stderr)
		}
		return st
	}
	linked := func(st awskms.Status) map[string]string {
		out := map[string]string{}
		for _, k := range st.KMSKeys {
			out[k.KeyId] = k.LinkedBy
		}
		return out
	}
	got := linked(status())
	if got[mac.KeyId] != kmsimport.LinkedByTags || got[aes.KeyId] != kmsimport.LinkedByTags {
		t.Errorf("without --verify: %v, want both %q", got, kmsimport.LinkedByTags)
	}
	got = linked(status("--verify"))
	if got[mac.KeyId] != kmsimport.LinkedByVerified || got[aes.KeyId] != kmsimport.LinkedByTags {
		t.Errorf("with --verify: %v, want the HMAC key %q and the AES key %q", got, kmsimport.LinkedByVerified, kmsimport.LinkedByTags)
	}
	r := kmsbridge(t, tok, "status", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--state-dir", state, "--verify", "--columns", "hsm-key,linked-by")
	if !strings.Contains(r.Stdout, "LINKED BY") || !strings.Contains(strings.Join(strings.Fields(r.Stdout), " "), "mac verified") || !strings.Contains(strings.Join(strings.Fields(r.Stdout), " "), "aes tags") {
		t.Errorf("table:\n%s", r.Stdout)
	}
}
