package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestJournalOfAnEarlierVersionIsAdopted: the journal is scoped by the
// Region, the endpoint and the account STS names (the emulator's
// 111122223333), and a journal an earlier kmsbridge kept under the old
// scope (no account) is taken over once: a re-run of the same import
// finds its key there (the ownership authority proves it ours) and makes
// no second KMS key; the old file stays as <name>.adopted.
func TestJournalOfAnEarlierVersionIsAdopted(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	common := ownArgs(emu, tok, state)
	args := append(common, "--key-label", "legacy", "--generate", "--no-expiry")
	first := importJSON(t, tok, args...)
	files, _ := filepath.Glob(filepath.Join(state, "*.journal"))
	if len(files) != 1 || !strings.HasSuffix(files[0], "@111122223333.journal") || !strings.HasPrefix(filepath.Base(files[0]), first.HSM.Token.Serial+"@") {
		t.Fatalf("journals %q, want one named <serial>@<region>@<endpoint>@111122223333.journal", files)
	}
	// What an earlier version named the same journal.
	legacy := strings.TrimSuffix(files[0], "@111122223333.journal") + ".journal"
	if err := os.Rename(files[0], legacy); err != nil {
		t.Fatal(err)
	}
	before := emu.keyCount(t)

	r := kmsbridge(t, tok, append([]string{"import"}, args...)...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "took over the journal "+legacy) {
		t.Fatalf("re-run with an old-named journal: exit %d, want 0 saying it took the journal over:\n%s", r.Code, r.Stderr)
	}
	if n := emu.keyCount(t); n != before {
		t.Errorf("the re-run made %d KMS keys, want %d", n, before)
	}
	if _, err := os.Stat(legacy + ".adopted"); err != nil {
		t.Errorf("the old journal is not kept as .adopted: %v", err)
	}
	if !journalHas(t, state, `"op":"adopted-journal"`) {
		t.Error("the journal does not note the adoption")
	}
	// Once: a third run adopts nothing.
	r = kmsbridge(t, tok, append([]string{"import"}, args...)...)
	if r.Code != 0 || strings.Contains(r.Stderr, "took over") {
		t.Fatalf("third run: exit %d, want 0 with no adoption:\n%s", r.Code, r.Stderr)
	}
}

// TestStatusAndVerifyNameTheEndpoint: status and verify say, in JSON and
// text, the endpoint their KMS requests went to, as import does.
func TestStatusAndVerifyNameTheEndpoint(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	common := ownArgs(emu, tok, t.TempDir())
	res := importJSON(t, tok, append(common, "--key-label", "named", "--generate", "--no-expiry")...)
	ep := []string{"--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL}

	r := kmsbridge(t, tok, append(append([]string{"verify"}, ep...), "--kms-key-id", res.KeyId, "--output", "json")...)
	var v struct {
		Result awskms.VerifyResult
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v.Result.KMSEndpoint == nil || v.Result.KMSEndpoint.URL != emu.URL || v.Result.KMSEndpoint.AllowedAs != kmsimport.AllowedOptIn {
		t.Fatalf("verify JSON: exit %d, endpoint %+v, want %s (opt-in):\n%s%s", r.Code, v.Result.KMSEndpoint, emu.URL, r.Stdout, r.Stderr)
	}
	r = kmsbridge(t, tok, append(append([]string{"verify"}, ep...), "--kms-key-id", res.KeyId)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "endpoint") || !strings.Contains(r.Stdout, emu.URL+" (NOT AWS") {
		t.Fatalf("verify text: exit %d, want the endpoint row:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	r = kmsbridge(t, tok, append(append([]string{"status"}, ep...), "--output", "json")...)
	var st awskms.Status
	if json.Unmarshal([]byte(r.Stdout), &st) != nil || len(st.KMSEndpoints) != 1 || st.KMSEndpoints[0].URL != emu.URL || st.KMSEndpoints[0].Region == "" {
		t.Fatalf("status JSON: exit %d, endpoints %+v, want one for %s:\n%s%s", r.Code, st.KMSEndpoints, emu.URL, r.Stdout, r.Stderr)
	}
	r = kmsbridge(t, tok, append([]string{"status"}, ep...)...)
	if !strings.Contains(r.Stdout, "KMS endpoint ("+st.KMSEndpoints[0].Region+"): "+emu.URL) {
		t.Fatalf("status text: exit %d, want the endpoint line:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
