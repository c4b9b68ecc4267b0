package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// ceremonyKeys are the keys of the test ceremony, in order. The RSA key is
// slow to generate in SoftHSM2, which leaves time to interrupt the run.
var ceremonyKeys = []struct{ label, spec, usage, alg, wks string }{
	{"c-data", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "RSAES_OAEP_SHA_1", "RSA_2048"},
	{"c-mac", "HMAC_256", "GENERATE_VERIFY_MAC", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"},
	{"c-rsa", "RSA_3072", "SIGN_VERIFY", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"},
	{"c-sign", "ECC_NIST_P256", "SIGN_VERIFY", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"},
}

func writeCeremony(t *testing.T, dir, endpoint, recordPath string, tok *softhsm.Token, auditKey bool) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n", tok.Module, tok.Label)
	fmt.Fprintf(&b, "kms:\n  region: us-east-1\n  endpoint: %[1]s\n  allow-endpoint: %[1]s\nrecord: %s\n", endpoint, recordPath)
	if auditKey {
		b.WriteString("audit-key:\n  label: audit\n")
	}
	b.WriteString("operators:\n  - Alice (custodian)\n  - Bob (witness)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n")
	for _, k := range ceremonyKeys {
		fmt.Fprintf(&b, "  - hsm-label: %s\n    generate: true\n    key-spec: %s\n    key-usage: %s\n    alias: alias/%s\n    wrapping-algorithm: %s\n    wrapping-key-spec: %s\n    no-expiry: true\n",
			k.label, k.spec, k.usage, k.label, k.alg, k.wks)
	}
	path := filepath.Join(dir, "ceremony.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCeremonyInterruptedAndRerun kills a ceremony mid-run and runs it
// again: it must complete with exactly one KMS key per HSM key, no key
// generated twice, and a record that verifies end to end.
func TestCeremonyInterruptedAndRerun(t *testing.T) {
	t.Parallel()
	// SoftHSM2 2.6 pads PKCS#8 (software-tokens.md): the asymmetric keys need the lenient emulator.
	emu := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	file := writeCeremony(t, dir, emu.URL, rec, tok, true)

	r := kmsbridge(t, tok, "ceremony", "run", file, "--dry-run")
	if r.Code != 0 || strings.Count(r.Stdout, "will: generate the HSM key") != len(ceremonyKeys) {
		t.Fatalf("dry run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if emu.keyCount(t) != 0 || tokenHasLabel(t, tok, "c-data") {
		t.Fatal("the dry run changed something")
	}

	// Run, and kill it as soon as the second key's KMS key exists.
	cmd := exec.Command(filepath.Join(binDir, "kmsbridge"), "ceremony", "run", file)
	cmd.Env = append(os.Environ(), tok.Environ(), "KMSBRIDGE_PIN="+tok.PIN, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !recordHas(t, rec, `"CeremonyKeyLabel":"c-mac"`, `"Step":"create-kms-key"`) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the ceremony never reached the second key:\n%s", stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if recordHas(t, rec, `"Step":"ceremony-end"`) {
		t.Fatal("the first run finished before it could be interrupted; the test proves nothing")
	}

	// Run again to completion.
	r = kmsbridge(t, tok, "ceremony", "run", file)
	if r.Code != 0 {
		t.Fatalf("re-run: exit %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "head SHA-256") {
		t.Errorf("the re-run does not print the head for the paper script:\n%s", r.Stdout)
	}
	// The audit key's fingerprint goes on the paper script with the count
	// and head, and record verify checks all three.
	fp := paperLine(r.Stdout, "audit key")
	if len(fp) != 64 {
		t.Errorf("the paper script has no audit key fingerprint:\n%s", r.Stdout)
	}
	if v := kmsbridge(t, nil, "record", "verify", "--expect-audit-key", fp, "--expect-head", paperLine(r.Stdout, "head SHA-256"), "--expect-count", paperLine(r.Stdout, "entries"), rec); v.Code != 0 {
		t.Errorf("record verify against the paper script: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
	}
	if n := emu.keyCount(t); n != len(ceremonyKeys) {
		t.Errorf("%d KMS keys after the re-run, want exactly %d (one per HSM key)", n, len(ceremonyKeys))
	}
	for _, k := range ceremonyKeys {
		if n := countRecord(t, rec, `"Step":"generate-hsm-key"`, `"HsmKeyLabel":"`+k.label+`"`, `"Outcome":"ok"`); n != 1 {
			t.Errorf("%s generated %d times, want once", k.label, n)
		}
		out, err := emu.KMS.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/" + k.label)})
		if err != nil || out.KeyMetadata.KeyState != "Enabled" || string(out.KeyMetadata.KeySpec) != k.spec {
			t.Errorf("alias/%s: %v %+v", k.label, err, out)
		}
	}

	// A third run only verifies.
	r = kmsbridge(t, tok, "ceremony", "run", file, "--dry-run")
	if r.Code != 0 || strings.Count(r.Stdout, "already done: verify only") != len(ceremonyKeys) {
		t.Errorf("after completion the plan must be verify only:\n%s%s", r.Stdout, r.Stderr)
	}
	r = kmsbridge(t, nil, "record", "verify", rec, "--public-key", pub)
	if r.Code != 0 || !strings.Contains(r.Stdout, "the record verifies") {
		t.Errorf("record verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestCeremonyFileErrors: a bad file is refused whole, with every problem
// and its line, before the HSM or KMS is touched.
func TestCeremonyFileErrors(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	file := writeCeremony(t, dir, emu.URL, filepath.Join(dir, "r.jsonl"), tok, false)
	b, _ := os.ReadFile(file)
	bad := strings.Replace(string(b), "  pin-source:\n    env: KMSBRIDGE_PIN\n", "  pin-source:\n    env: KMSBRIDGE_PIN\n  pin: \"1234\"\n", 1)
	bad = strings.Replace(bad, "    key-spec: HMAC_256\n", "    key-spec: HMAC_256\n    colour: blue\n", 1)
	bad = strings.Replace(bad, "key-spec: RSA_3072\n    key-usage: SIGN_VERIFY\n    alias: alias/c-rsa\n    wrapping-algorithm: RSA_AES_KEY_WRAP_SHA_1", "key-spec: RSA_3072\n    key-usage: SIGN_VERIFY\n    alias: alias/c-rsa\n    wrapping-algorithm: RSAES_OAEP_SHA_256", 1)
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kmsbridge(t, tok, "ceremony", "run", file)
	if r.Code != 2 {
		t.Errorf("exit %d, want 2", r.Code)
	}
	for _, want := range []string{"ceremony.yaml:7: hsm.pin", "PINs never", "colour", "keys[2].wrapping-algorithm", "too large for RSA-OAEP"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
	if strings.Contains(r.Stderr, "1234") {
		t.Error("the PIN written in the file was echoed")
	}
	if emu.keyCount(t) != 0 || tokenHasLabel(t, tok, "c-data") {
		t.Error("a bad ceremony file changed something")
	}
	if _, err := os.Stat(filepath.Join(dir, "r.jsonl")); err == nil {
		t.Error("a bad ceremony file started a record")
	}
}

func recordHas(t *testing.T, path string, parts ...string) bool {
	return countRecord(t, path, parts...) > 0
}

func countRecord(t *testing.T, path string, parts ...string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		for _, p := range parts {
			if !strings.Contains(sc.Text(), p) {
				continue lines
			}
		}
		n++
	}
	return n
}

// paperLine is the value of a "Write on the paper script" line.
func paperLine(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
