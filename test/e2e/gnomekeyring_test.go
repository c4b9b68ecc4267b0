package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// gnome-keyring 42 (Debian gnome-keyring, gnome-keyring-pkcs11): its
// PKCS#11 module reaches gnome-keyring-daemon's pkcs11 component on
// $XDG_RUNTIME_DIR/keyring/pkcs11 and shows four tokens (SSH Keys, Secret
// Store, Gnome2 Key Storage, User Key Storage) that list RSA, DSA and
// ECDSA signing and DH key pair generation: no wrap, no key generation.
const gnomeKeyringModule = "/usr/lib/x86_64-linux-gnu/pkcs11/gnome-keyring-pkcs11.so"

// startGnomeKeyring runs a D-Bus session bus and gnome-keyring-daemon
// (pkcs11 component only) in a throwaway HOME and XDG_RUNTIME_DIR, both
// stopped when the test ends, and returns what kmsbridge needs.
func startGnomeKeyring(t *testing.T) []string {
	t.Helper()
	needFile(t, gnomeKeyringModule, "gnome-keyring-pkcs11")
	needFile(t, "/usr/bin/gnome-keyring-daemon", "gnome-keyring")
	needFile(t, "/usr/bin/dbus-daemon", "dbus-daemon")
	dir := t.TempDir()
	home, runtime := filepath.Join(dir, "home"), filepath.Join(socketDir(t), "run")
	for _, d := range []string{home, runtime} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bus := filepath.Join(socketDir(t), "bus")
	startDaemon(t, "dbus-daemon", "--session", "--nofork", "--address=unix:path="+bus)
	waitFor(t, "dbus-daemon's socket "+bus, func() bool { _, err := os.Stat(bus); return err == nil })
	env := []string{"DBUS_SESSION_BUS_ADDRESS=unix:path=" + bus, "HOME=" + home, "XDG_RUNTIME_DIR=" + runtime,
		"XDG_DATA_HOME=" + filepath.Join(home, "data")}
	startDaemon(t, "gnome-keyring-daemon", append(env, "--foreground", "--components=pkcs11")...)
	sock := filepath.Join(runtime, "keyring", "pkcs11")
	waitFor(t, "gnome-keyring-daemon's socket "+sock, func() bool { _, err := os.Stat(sock); return err == nil })
	return append(env, "KMSBRIDGE_PKCS11_MODULE="+gnomeKeyringModule, "KMSBRIDGE_PIN=kmsbridge-test")
}

// TestGnomeKeyringDoctorAndRefusal: doctor classifies gnome-keyring's
// token (no wrap, no generation, each named in the token's terms, no
// row imports) and import refuses with exit 3 before any change, naming
// the missing CKF_WRAP.
func TestGnomeKeyringDoctorAndRefusal(t *testing.T) {
	env := startGnomeKeyring(t)
	const label = "Gnome2 Key Storage"

	rep := doctorJSON(t, env, label)
	if rep.Token.Label != label || rep.Token.Manufacturer != "Gnome Keyring" || rep.Token.Model != "1.0" {
		t.Errorf("token identity %+v, want %q by Gnome Keyring, model 1.0, unpadded", rep.Token, label)
	}
	if !strings.HasPrefix(rep.Wraps, "no: ") || !strings.Contains(rep.Wraps, "none of the mechanisms it lists has CKF_WRAP") {
		t.Errorf("doctor Wraps = %q, want a no naming CKF_WRAP", rep.Wraps)
	}
	if !strings.HasPrefix(rep.Generates, "no: ") || !strings.Contains(rep.Generates, "does not list CKM_AES_KEY_GEN") {
		t.Errorf("doctor Generates = %q, want a no naming the missing CKM_AES_KEY_GEN", rep.Generates)
	}
	for spec, proof := range rep.Proof {
		if !strings.HasPrefix(proof, "none") {
			t.Errorf("doctor claims a proof of import for %s on a token that can neither generate nor wrap: %q", spec, proof)
		}
	}
	for _, row := range rep.Rows {
		if row.Imports {
			t.Errorf("doctor row %+v imports on a token that cannot wrap", row)
		}
	}

	emu := startEmulator(t)
	r := runBinary(t, env, "import", "--output", "json", "--token-label", label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--key-label", "gk", "--generate", "--no-expiry")
	if r.Code != 3 {
		t.Fatalf("import on gnome-keyring: exit %d, want 3\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	var res struct {
		Error   string
		Partial awskms.Result
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("import -o json: %v\n%s", err, r.Stdout)
	}
	if !strings.Contains(res.Error, "cannot do any key wrapping") || !strings.Contains(res.Error, "Nothing was changed in the HSM or in KMS") {
		t.Errorf("import refusal %q, want it to name the missing wrap and say nothing changed", res.Error)
	}
	if res.Partial.CreatedKMSKey || res.Partial.HSM.Generated {
		t.Errorf("import refused but its partial result says something was made: %+v", res.Partial)
	}
	if n := emu.keyCount(t); n != 0 {
		t.Errorf("KMS holds %d keys after a refused import, want 0", n)
	}
}
