package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// tpm2-pkcs11 (Debian libtpm2-pkcs11-1) over a software TPM (swtpm): a
// token whose keys live in a TPM, which lists no mechanism with CKF_WRAP
// and so can export nothing. The TPM is reached through tpm2-abrmd, the
// TPM2 access broker and resource manager: straight to swtpm, each
// tpm2-tools process leaves its transient objects loaded and tpm2_ptool's
// token set-up fails with "out of memory for object contexts" (docs/tokens.md).
const (
	tpm2Module  = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
	tpm2Label   = "kbtpm"
	tpm2UserPIN = "12345678"
	tpm2SOPIN   = "87654321"
)

// tpm2Stack is a software TPM, a D-Bus session bus and tpm2-abrmd this
// test started, and a tpm2-pkcs11 store with one token, tpm2Label.
type tpm2Stack struct {
	env []string // what tpm2-pkcs11 and tpm2-tools need to reach the TPM
}

// startTPM2Stack starts swtpm on two free loopback ports, a private session
// bus, tpm2-abrmd on that bus in front of swtpm, and initialises a
// tpm2-pkcs11 store and token with tpm2_ptool. Everything it starts is
// stopped when the test ends, failed or not.
func startTPM2Stack(t *testing.T) *tpm2Stack {
	t.Helper()
	needFile(t, tpm2Module, "libtpm2-pkcs11-1")
	needFile(t, "/usr/bin/tpm2_ptool", "libtpm2-pkcs11-tools")
	needFile(t, "/usr/bin/swtpm", "swtpm")
	needFile(t, "/usr/sbin/tpm2-abrmd", "tpm2-abrmd")
	needFile(t, "/usr/bin/dbus-daemon", "dbus-daemon")
	needFile(t, "/usr/bin/tpm2_getcap", "tpm2-tools")

	dir := t.TempDir()
	state, store := filepath.Join(dir, "state"), filepath.Join(dir, "store")
	for _, d := range []string{state, store} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	port := freePortPair(t)
	startDaemon(t, "swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state,
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
		"--flags", "not-need-init,startup-clear")

	bus := filepath.Join(socketDir(t), "bus")
	startDaemon(t, "dbus-daemon", "--session", "--nofork", "--address=unix:path="+bus)
	waitFor(t, "dbus-daemon's socket "+bus, func() bool { _, err := os.Stat(bus); return err == nil })

	busEnv := "DBUS_SESSION_BUS_ADDRESS=unix:path=" + bus
	abrmd := []string{"--session", "--flush-all", fmt.Sprintf("--tcti=swtpm:host=127.0.0.1,port=%d", port)}
	if os.Geteuid() == 0 {
		abrmd = append(abrmd, "--allow-root")
	}
	startDaemon(t, "tpm2-abrmd", append([]string{busEnv}, abrmd...)...)

	s := &tpm2Stack{env: []string{busEnv, "TPM2TOOLS_TCTI=tabrmd:bus_type=session",
		"TPM2_PKCS11_TCTI=tabrmd:bus_type=session", "TPM2_PKCS11_STORE=" + store}}
	waitFor(t, "tpm2-abrmd to answer", func() bool {
		return s.tool(t, "tpm2_getcap", "handles-transient") == nil
	})
	if err := s.tool(t, "tpm2_ptool", "init", "--path", store); err != nil {
		t.Fatalf("tpm2_ptool init: %v", err)
	}
	if err := s.tool(t, "tpm2_ptool", "addtoken", "--pid=1", "--sopin="+tpm2SOPIN, "--userpin="+tpm2UserPIN,
		"--label="+tpm2Label, "--path", store); err != nil {
		t.Fatalf("tpm2_ptool addtoken: %v", err)
	}
	return s
}

// tool runs a tpm2-tools or tpm2_ptool command against the stack.
func (s *tpm2Stack) tool(t *testing.T, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(cleanEnv(t, nil), s.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// kmsbridgeEnv is what kmsbridge needs to use the token.
func (s *tpm2Stack) kmsbridgeEnv() []string {
	return append([]string{"KMSBRIDGE_PKCS11_MODULE=" + tpm2Module, "KMSBRIDGE_PIN=" + tpm2UserPIN}, s.env...)
}

// startDaemon runs a daemon in the foreground in a process group of its
// own, stopped (and its group with it) when the test ends. Leading "K=V"
// arguments are added to its environment.
func startDaemon(t *testing.T, name string, args ...string) {
	t.Helper()
	env := cleanEnv(t, nil)
	for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "-") {
		env = append(env, args[0])
		args = args[1:]
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	select {
	case <-done:
		t.Fatalf("%s %s exited at once", name, strings.Join(args, " "))
	case <-time.After(50 * time.Millisecond):
	}
}

// freePortPair finds p such that 127.0.0.1:p and :p+1 are free (swtpm's
// server and control ports; the swtpm TCTI takes the control port to be
// the next one).
func freePortPair(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free ports on 127.0.0.1")
	return 0
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestTPM2PKCS11DoctorAndRefusal runs doctor and an import on tpm2-pkcs11
// over swtpm. The token lists no mechanism with CKF_WRAP (and its
// C_GenerateKey is not implemented), so doctor must say it cannot wrap and
// refuse every cell naming that, and import must refuse with exit 3 (an
// HSM limitation) before any change: no KMS key, no HSM object. Its model
// is the TPM's vendor strings ("SW   TPM"), padded by the module: the text
// and JSON must carry it trimmed, and a model= URI must match it.
func TestTPM2PKCS11DoctorAndRefusal(t *testing.T) {
	s := startTPM2Stack(t)
	env := s.kmsbridgeEnv()

	rep := doctorJSON(t, env, tpm2Label)
	if rep.Token.Label != tpm2Label || rep.Token.Manufacturer != "IBM" || rep.Token.Model != "SW   TPM" {
		t.Errorf("token identity %+v, want label %q, manufacturer IBM, model \"SW   TPM\" with no padding", rep.Token, tpm2Label)
	}
	for _, m := range rep.Mechanisms {
		if m.Flags&0x20000 != 0 { // CKF_WRAP
			t.Errorf("tpm2-pkcs11 lists %+v with a wrap flag; docs/tokens.md says it lists none", m)
		}
	}
	if !strings.HasPrefix(rep.Wraps, "no: ") || !strings.Contains(rep.Wraps, "none of the mechanisms it lists has CKF_WRAP") {
		t.Errorf("doctor Wraps = %q, want a no naming CKF_WRAP", rep.Wraps)
	}
	if !strings.HasPrefix(rep.Generates, "no: ") || !strings.Contains(rep.Generates, "CKR_FUNCTION_NOT_SUPPORTED") {
		t.Errorf("doctor Generates = %q, want a no naming C_GenerateKey's CKR_FUNCTION_NOT_SUPPORTED", rep.Generates)
	}
	for _, row := range rep.Rows {
		if row.Imports {
			t.Errorf("doctor row %+v imports on a token that cannot wrap", row)
		} else if row.RefusedBy == "token" && !strings.Contains(row.Reason, "CKF_WRAP") {
			t.Errorf("doctor row %+v refused by the token without naming the missing CKF_WRAP", row)
		}
	}
	objects := rep.Scale.Objects

	// Text and JSON carry no NUL and no padding.
	txt := runBinary(t, env, "doctor", "--token-label", tpm2Label)
	js := runBinary(t, env, "doctor", "--token-label", tpm2Label, "--output", "json")
	for _, r := range []run{txt, js} {
		if r.Code != 0 {
			t.Fatalf("doctor: exit %d\n%s", r.Code, r.Stderr)
		}
		if strings.ContainsRune(r.Stdout, 0) || strings.Contains(r.Stdout, `\u0000`) || strings.Contains(r.Stdout, "SW   TPM ") {
			t.Errorf("doctor output carries NUL or padding after the model:\n%q", r.Stdout)
		}
	}
	if !strings.Contains(txt.Stdout, `token "kbtpm" serial 0000000000000000 (IBM SW   TPM, firmware 25.35)`) {
		t.Errorf("doctor text does not name the token as expected:\n%s", txt.Stdout)
	}

	// model= in a token URI matches the trimmed model, and only it.
	uri := "pkcs11:token=" + tpm2Label + ";manufacturer=IBM;model=SW%20%20%20TPM"
	if r := runBinary(t, env, "doctor", "--token", uri, "--output", "json"); r.Code != 0 {
		t.Errorf("doctor --token %s: exit %d, want the token found\n%s", uri, r.Code, r.Stderr)
	}
	if r := runBinary(t, env, "doctor", "--token", "pkcs11:token="+tpm2Label+";model=SW", "--output", "json"); r.Code == 0 || r.Code == 1 {
		t.Errorf("doctor with model=SW: exit %d, want a clean refusal: no token has that model\n%s", r.Code, r.Stderr)
	}

	// import refuses before any change, naming the token's limitation.
	emu := startEmulator(t)
	for _, spec := range []string{"SYMMETRIC_DEFAULT", "HMAC_256", "ECC_NIST_P256"} {
		r := runBinary(t, env, "import", "--output", "json", "--token", uri, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
			"--key-label", "tpm-"+strings.ToLower(spec), "--generate", "--key-spec", spec, "--no-expiry")
		if r.Code != 3 {
			t.Fatalf("import %s on tpm2-pkcs11: exit %d, want 3 (the HSM cannot)\nstdout:\n%s\nstderr:\n%s", spec, r.Code, r.Stdout, r.Stderr)
		}
		var res struct {
			Error    string
			ExitCode int
			Partial  awskms.Result
		}
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			t.Fatalf("import -o json: %v\n%s", err, r.Stdout)
		}
		if !strings.Contains(res.Error, "cannot do any key wrapping") || !strings.Contains(res.Error, "CKF_WRAP") ||
			!strings.Contains(res.Error, "Nothing was changed in the HSM or in KMS") {
			t.Errorf("import %s refusal %q, want it to name the missing CKF_WRAP and say nothing changed", spec, res.Error)
		}
		if res.Partial.CreatedKMSKey || res.Partial.KeyId != "" || res.Partial.HSM.Generated {
			t.Errorf("import %s refused but partial result says something was made: %+v", spec, res.Partial)
		}
	}
	if n := emu.keyCount(t); n != 0 {
		t.Errorf("KMS holds %d keys after refused imports, want 0", n)
	}
	if after := doctorJSON(t, env, tpm2Label).Scale.Objects; after != objects {
		t.Errorf("token holds %d objects after refused imports, %d before", after, objects)
	}
}
