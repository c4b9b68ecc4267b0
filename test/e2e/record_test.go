package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRecordVerifyFindsTampering writes a signed record through real
// commands, then tampers with copies of it in each way and checks record
// verify names the entry that fails and exits 5.
func TestRecordVerifyFindsTampering(t *testing.T) {
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
