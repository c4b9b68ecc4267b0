package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// unitExec reads a unit file from docs/systemd and returns its ExecStart
// command line, continuation lines joined.
func unitExec(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("%s has no ExecStart", name)
	}
	return m[1]
}

// The shipped systemd units are valid units, and the command each runs
// works as written: the PIN from the systemd credential (%d), the status
// textfile written, renew recorded. Only the binary's path, the
// credential and state directories, and the emulator's endpoint differ
// from the file.
func TestSystemdUnitsRunAsShipped(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: the unit files cannot be checked here")
	}
	dir := t.TempDir()
	for _, u := range []string{"kmsbridge-status.service", "kmsbridge-status.timer", "kmsbridge-renew.service", "kmsbridge-renew.timer"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", "systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		// systemd-analyze checks that the binary exists: point it at ours.
		text := strings.ReplaceAll(string(b), "/usr/bin/kmsbridge", filepath.Join(binDir, "kmsbridge"))
		if err := os.WriteFile(filepath.Join(dir, u), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"kmsbridge-status.service", "kmsbridge-renew.service"} {
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", filepath.Join(dir, u)).CombinedOutput()
		// A unit's User= need not exist on this machine; anything else is
		// a mistake in the unit.
		var problems []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.Contains(l, "kmsbridge") || strings.Contains(l, "Unknown") || strings.Contains(l, "ignoring") {
				problems = append(problems, l)
			}
		}
		if err != nil || len(problems) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}

	emu := startEmulator(t)
	tok := softhsm.NewTestToken(t, "ceremony")
	prom := filepath.Join(dir, "node-exporter")
	state := filepath.Join(dir, "state")
	for _, d := range []string{prom, state} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The import uses the state directory the renew unit names: its
	// journal is what proves the key is kmsbridge's.
	importJSON(t, tok, "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--region", "eu-west-1", "--wrapping-key-spec", "RSA_2048", "--key-label", "k", "--generate", "--valid-to", validTo(5*24*time.Hour), "--state-dir", state)
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "kmsbridge-pin"), []byte(softhsm.TestPIN+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	// status first (it sees the material expiring: exit 6), then renew.
	for _, u := range []struct {
		unit string
		want int
	}{{"kmsbridge-status.service", 6}, {"kmsbridge-renew.service", 0}} {
		unit, want := u.unit, u.want
		line := unitExec(t, unit)
		line = strings.ReplaceAll(line, "%d", creds)
		line = strings.ReplaceAll(line, "/var/lib/prometheus/node-exporter", prom)
		line = strings.ReplaceAll(line, "/var/lib/kmsbridge", state)
		line = strings.Replace(line, "/usr/bin/kmsbridge", "kmsbridge", 1)
		line += " --endpoint-url " + emu.URL + " --allow-endpoint " + emu.URL
		// The unit gives the PIN by file: no KMSBRIDGE_PIN here.
		r := runCmd(t, append(cleanEnv(t, []string{"KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule, tok.Environ()}),
			"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH")), "bash", "-c", line)
		if r.Code != want {
			t.Errorf("%s's command %q: exit %d, want %d\n%s", unit, line, r.Code, want, r.Stderr)
		}
	}
	fam := textfile(t, filepath.Join(prom, "kmsbridge-ceremony.prom"))
	if gauge(fam, "kmsbridge_status_up", "") != 1 || gauge(fam, "kmsbridge_problems", "expiring") != 1 {
		t.Errorf("the status unit's textfile: %v", fam)
	}
	if _, err := os.Stat(filepath.Join(state, "renew-record.jsonl")); err != nil {
		t.Errorf("the renew unit wrote no record: %v", err)
	}
}
