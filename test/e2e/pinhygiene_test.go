package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// pinSentinel is a PIN value no message could contain by chance.
const pinSentinel = "Qv7PinSentinel31415"

// TestPINValueInAURIIsRefusedInAnyFormAndNeverEchoed: a pin-value attribute
// in a PKCS#11 URI, in any case or percent-encoding, on --token or --key
// or in a ceremony file, is refused as invalid input (exit 2) and its
// value appears in no output, even at debug log level.
func TestPINValueInAURIIsRefusedInAnyFormAndNeverEchoed(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	dir := t.TempDir()
	forms := []string{
		"pkcs11:token=ceremony?pin-value=" + pinSentinel,
		"pkcs11:token=ceremony?PIN-VALUE=" + pinSentinel,
		"pkcs11:token=ceremony?Pin-Value=" + pinSentinel,
		"pkcs11:token=ceremony?pin%2dvalue=" + pinSentinel,
		"pkcs11:token=ceremony?pin%2Dvalue=" + pinSentinel,
		"pkcs11:token=ceremony?%70in-value=" + pinSentinel,
		"pkcs11:token=ceremony?pin%252dvalue=" + pinSentinel,
		"pkcs11:token=ceremony;pin-value=" + pinSentinel,
		"PKCS11:token=ceremony?pin-value=" + pinSentinel,
		"pkcs11:token=ceremony?module-path=/nonexistent.so&pin-value=" + pinSentinel,
		"token=ceremony?pin-value=" + pinSentinel,
	}
	for i, uri := range forms {
		for _, args := range [][]string{
			{"import", "--log-level", "debug", "--endpoint-url", "http://127.0.0.1:9", "--no-expiry", "--key-label", "k", "--token", uri},
			{"import", "--log-level", "debug", "--endpoint-url", "http://127.0.0.1:9", "--no-expiry", "--token-label", tok.Label, "--key", uri + ";object=k"},
			{"doctor", "--log-level", "debug", "--token", uri},
			{"doctor", "-o", "json", "--token", uri},
		} {
			t.Run(fmt.Sprintf("%d-%s-%s", i, args[0], args[len(args)-2]), func(t *testing.T) {
				r := kmsbridge(t, tok, args...)
				if r.Code != 2 {
					t.Errorf("exit %d, want 2\n%s", r.Code, r.Stderr)
				}
				if strings.Contains(r.Stdout+r.Stderr, pinSentinel) {
					t.Errorf("the PIN from the URI was echoed:\n%s%s", r.Stdout, r.Stderr)
				}
				if !strings.Contains(r.Stderr, "pin-value") {
					t.Errorf("the error does not name pin-value:\n%s", r.Stderr)
				}
			})
		}
	}

	// In a ceremony file, too.
	yaml := filepath.Join(dir, "c.yaml")
	os.WriteFile(yaml, []byte(fmt.Sprintf(`hsm:
  module: %s
  token:
    uri: "pkcs11:token=ceremony?PIN%%2DVALUE=%s"
  pin-source:
    env: KMSBRIDGE_PIN
kms:
  region: us-east-1
record: %s
keys:
  - hsm-label: k
    generate: true
    key-spec: SYMMETRIC_DEFAULT
    no-expiry: true
`, softhsm.DefaultModule, pinSentinel, filepath.Join(dir, "r.jsonl"))), 0o600)
	r := kmsbridge(t, tok, "ceremony", "run", "--dry-run", yaml)
	if r.Code != 2 || strings.Contains(r.Stdout+r.Stderr, pinSentinel) || !strings.Contains(r.Stderr, "pin-value") {
		t.Errorf("ceremony file with a pin-value: exit %d, want 2 naming pin-value without its value:\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestProcessWritesNoCore: a running kmsbridge has a core
// file size limit of 0 (soft and hard), so no core file can hold its PIN.
// The process is held in a KMS request to a listener that never answers
// while its limits are read from /proc. (That it is not dumpable is
// TestHardenProcess in cmd/kmsbridge: PR_GET_DUMPABLE is readable only by
// the process itself.)
func TestProcessWritesNoCore(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	cmd := exec.Command(filepath.Join(binDir, "kmsbridge"), "delete-material", "--endpoint-url", "http://"+ln.Addr().String(), "--allow-endpoint", "http://"+ln.Addr().String(), "--kms-key-id", "1234abcd-12ab-34cd-56ef-1234567890ab", "--yes", "--kms-timeout", "60s")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("kmsbridge never called the endpoint")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Max core file size") {
			if fields := strings.Fields(sc.Text()); fields[4] != "0" || fields[5] != "0" {
				t.Errorf("core file size limit is %s/%s, want 0/0: %q", fields[4], fields[5], sc.Text())
			}
			return
		}
	}
	t.Fatal("no core file size line in /proc/PID/limits")
}
