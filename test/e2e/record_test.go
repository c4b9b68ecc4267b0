package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/record"
)

// TestRecordVerifyFindsTampering writes a signed record through real
// commands, then tampers with copies of it in each way and checks record
// verify names the entry that fails and exits 5.
func TestRecordVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	if r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "k", "--generate",
		"--no-expiry", "--wrapping-key-spec", "RSA_2048", "--record", rec, "--audit-key", "audit", "--operator", "Alice"); r.Code != 0 {
		t.Fatalf("import: %s", r.Stderr)
	}
	r := kmsbridge(t, nil, "record", "verify", "--public-key", pub, rec)
	if r.Code != 0 || !strings.Contains(r.Stdout, "the record verifies") {
		t.Fatalf("the untouched record: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	head := lastField(r.Stdout, "head ")
	orig, _ := os.ReadFile(rec)
	lines := strings.SplitAfter(string(orig), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	if len(lines) < 6 {
		t.Fatalf("only %d entries", len(lines))
	}
	if !strings.Contains(lines[2], `"Operator":"Alice"`) {
		t.Errorf("the operator is not recorded: %s", lines[2])
	}
	swap := append([]string{}, lines...)
	swap[2], swap[3] = swap[3], swap[2]
	sig := func(l string) string { i := strings.Index(l, `"Value":"`); return l[i : i+40] }

	tests := []struct {
		name    string
		content string
		args    []string
		want    string
	}{
		{"fail edit", strings.Join(lines[:2], "") + strings.Replace(lines[2], `"Alice"`, `"Mallory"`, 1) + strings.Join(lines[3:], ""), nil, "entry 3: FAILED"},
		{"fail delete", strings.Join(lines[:2], "") + strings.Join(lines[3:], ""), nil, "entry 3: FAILED"},
		{"fail reorder", strings.Join(swap, ""), nil, "entry 3: FAILED"},
		{"fail cut mid-line", string(orig[:len(orig)-20]), nil, "truncated"},
		{"fail entries cut off the end", strings.Join(lines[:len(lines)-2], ""), []string{"--expect-head", head, "--expect-count", strconv.Itoa(len(lines))}, "head"},
		{"fail bad signature", strings.Join(lines[:4], "") + strings.Replace(lines[4], sig(lines[4]), sig(lines[5]), 1) + strings.Join(lines[5:], ""), nil, "entry 5: FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tampered.jsonl")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"record", "verify", "--public-key", pub}, tt.args...)
			r := kmsbridge(t, nil, append(args, p)...)
			if r.Code != 5 {
				t.Errorf("exit %d, want 5", r.Code)
			}
			if !strings.Contains(r.Stdout+r.Stderr, tt.want) {
				t.Errorf("output lacks %q:\n%s%s", tt.want, r.Stdout, r.Stderr)
			}
		})
	}
}

func lastField(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, prefix); i >= 0 && strings.Contains(l, "entries, head") {
			return strings.TrimSpace(l[i+len(prefix):])
		}
	}
	return ""
}

// TestRecordVerifyWithoutAPublicKey: without --public-key, record verify
// checks the record against its own audit key and names it by
// fingerprint (--expect-audit-key compares it with the paper script); an
// unsigned record fails, and --chain-only checks its chain without ever
// saying "the record verifies".
func TestRecordVerifyWithoutAPublicKey(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec, "-o", "json")
	if r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	fp := jsonField(t, r.Stdout, "AuditPublicKeySha256")
	if r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "k", "--generate",
		"--no-expiry", "--wrapping-key-spec", "RSA_2048", "--record", rec, "--audit-key", "audit"); r.Code != 0 {
		t.Fatalf("import: %s", r.Stderr)
	}
	r = kmsbridge(t, nil, "record", "verify", rec)
	if r.Code != 0 || !strings.Contains(r.Stdout, "record's own audit key") || !strings.Contains(r.Stdout, fp) {
		t.Fatalf("signed record without --public-key: exit %d, want 0 naming the record's own key %s\n%s%s", r.Code, fp, r.Stdout, r.Stderr)
	}
	if r := kmsbridge(t, nil, "record", "verify", "--expect-audit-key", fp, rec); r.Code != 0 {
		t.Errorf("--expect-audit-key with the right key: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = kmsbridge(t, nil, "record", "verify", "--expect-audit-key", strings.Repeat("ab", 32), rec)
	if r.Code != 5 || strings.Contains(r.Stdout, "the record verifies") || !strings.Contains(r.Stdout+r.Stderr, "audit-key") {
		t.Errorf("--expect-audit-key with another key: exit %d, want 5\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	// A record no audit key signed.
	unsigned := filepath.Join(dir, "unsigned.jsonl")
	if r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "k2", "--generate",
		"--no-expiry", "--wrapping-key-spec", "RSA_2048", "--record", unsigned); r.Code != 0 {
		t.Fatalf("import: %s", r.Stderr)
	}
	r = kmsbridge(t, nil, "record", "verify", unsigned)
	if r.Code != 5 || strings.Contains(r.Stdout, "the record verifies") || !strings.Contains(r.Stdout+r.Stderr, "--chain-only") {
		t.Errorf("unsigned record without a key: exit %d, want 5 pointing to --public-key or --chain-only\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = kmsbridge(t, nil, "record", "verify", "--chain-only", unsigned)
	if r.Code != 0 || strings.Contains(r.Stdout, "the record verifies") || !strings.Contains(r.Stdout, "no signature was checked") {
		t.Errorf("--chain-only: exit %d, want 0 saying no signature was checked\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := kmsbridge(t, nil, "record", "verify", "--chain-only", "--public-key", pub, unsigned); r.Code != 2 {
		t.Errorf("--chain-only with --public-key: exit %d, want 2", r.Code)
	}
}

// TestAllowUnsignedCannotHideARechainedTail: the signed tail of a real
// record is cut and replaced by unsigned entries, re-chained so the hash
// chain is intact. --allow-unsigned without the head written down is
// refused (exit 2); with it, the re-chained tail is found (exit 5); and an
// unsigned entry of a command that held the token (import) is refused
// even when the head given is the forged record's own.
func TestAllowUnsignedCannotHideARechainedTail(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	if r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--key-label", "k", "--generate",
		"--no-expiry", "--wrapping-key-spec", "RSA_2048", "--record", rec, "--audit-key", "audit"); r.Code != 0 {
		t.Fatalf("import: %s", r.Stderr)
	}
	r := kmsbridge(t, nil, "record", "verify", "--public-key", pub, rec)
	if r.Code != 0 {
		t.Fatalf("untouched: exit %d\n%s", r.Code, r.Stdout)
	}
	head, count := lastField(r.Stdout, "head "), strings.Count(mustRead(t, rec), "\n")

	forge := func(name, command string) (string, string) {
		orig := strings.SplitAfter(mustRead(t, rec), "\n")
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(orig[:count-3], "")), 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := record.Open(p, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if _, err := w.Append(record.Entry{Command: command, Step: "import", Inputs: map[string]string{}, Outputs: map[string]string{"KmsKeyId": "forged"}, Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
		forgedHead := w.Head()
		w.Close()
		return p, forgedHead
	}
	forged, forgedHead := forge("forged.jsonl", "upload")
	if r := kmsbridge(t, nil, "record", "verify", "--public-key", pub, "--allow-unsigned", forged); r.Code != 2 || !strings.Contains(r.Stderr, "--expect-head") {
		t.Errorf("--allow-unsigned without --expect-head: exit %d, want 2 asking for it\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	r = kmsbridge(t, nil, "record", "verify", "--public-key", pub, "--allow-unsigned", "--expect-head", head, "--expect-count", strconv.Itoa(count), forged)
	if r.Code != 5 || strings.Contains(r.Stdout, "the record verifies") {
		t.Errorf("re-chained unsigned tail with the paper head: exit %d, want 5\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	// The same forgery with the record's own key, no --public-key.
	r = kmsbridge(t, nil, "record", "verify", "--allow-unsigned", "--expect-head", head, forged)
	if r.Code != 5 {
		t.Errorf("re-chained unsigned tail against the record's own key: exit %d, want 5\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	forged2, forgedHead2 := forge("forged-import.jsonl", "import")
	r = kmsbridge(t, nil, "record", "verify", "--public-key", pub, "--allow-unsigned", "--expect-head", forgedHead2, forged2)
	if r.Code != 5 || !strings.Contains(r.Stdout, "holds the HSM token") {
		t.Errorf("unsigned import entries with --allow-unsigned: exit %d, want 5 naming the token-holding command\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	_ = forgedHead
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonField(t *testing.T, s, field string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	v, _ := m[field].(string)
	return v
}
