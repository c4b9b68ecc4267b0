package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// The PKCS#11 stacks Debian's p11-kit package installs: its proxy module,
// which loads every module its configuration names and shows their tokens
// as its own, and its RPC client, which reaches a token another process
// (`p11-kit server`) serves on a Unix socket, as a token on another host or
// in another container is reached.
const (
	p11KitProxy  = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so"
	p11KitClient = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
)

// needFile fails the test (under CI) or skips it with the reason when a
// stack's file is not installed; `make deps` installs them.
func needFile(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		why := fmt.Sprintf("%s is not installed (apt-get install %s; `make deps` does this)", path, pkg)
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
}

// p11KitProxyEnv is the environment under which p11-kit-proxy.so shows the
// SoftHSM2 token tok, and only SoftHSM2's tokens: a module configuration
// of its own in a throwaway XDG_CONFIG_HOME (p11-kit reads
// $XDG_CONFIG_HOME/pkcs11/modules), whose softhsm2.module stands in for the
// system's file of that name.
func p11KitProxyEnv(t *testing.T, tok *softhsm.Token) []string {
	t.Helper()
	needFile(t, p11KitProxy, "p11-kit-modules")
	cfg := t.TempDir()
	dir := filepath.Join(cfg, "pkcs11", "modules")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "softhsm2.module"), []byte("module: "+softhsm.DefaultModule+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"XDG_CONFIG_HOME=" + cfg, tok.Environ(), "KMSBRIDGE_PKCS11_MODULE=" + p11KitProxy, "KMSBRIDGE_PIN=" + tok.PIN}
}

// p11KitServer is a `p11-kit server` this test started, serving one token
// on a Unix socket.
type p11KitServer struct {
	cmd  *exec.Cmd
	sock string
	tok  *softhsm.Token
}

// startP11KitServer serves the SoftHSM2 token tok with `p11-kit server` on
// a Unix socket in a temporary directory; the server is stopped when the
// test ends.
func startP11KitServer(t *testing.T, tok *softhsm.Token) *p11KitServer {
	t.Helper()
	needFile(t, p11KitClient, "p11-kit-modules")
	if _, err := exec.LookPath("p11-kit"); err != nil {
		needFile(t, "/usr/bin/p11-kit", "p11-kit")
	}
	s := &p11KitServer{sock: filepath.Join(socketDir(t), "p11kit.sock"), tok: tok}
	s.start(t)
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *p11KitServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command("p11-kit", "server", "-f", "-n", s.sock, "--provider", softhsm.DefaultModule, "pkcs11:token="+s.tok.Label)
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(), s.tok.Environ()}
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	// A process group of its own: the server serves each connection in a
	// child process, which stop and kill must end too.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if fi, err := os.Stat(s.sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("p11-kit server did not create %s", s.sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the server and waits for it; stopping twice is harmless.
func (s *p11KitServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	s.cmd = nil
	_ = os.Remove(s.sock)
}

// env is the environment under which p11-kit-client.so reaches the server.
func (s *p11KitServer) env() []string {
	return []string{"P11_KIT_SERVER_ADDRESS=unix:path=" + s.sock, "KMSBRIDGE_PKCS11_MODULE=" + p11KitClient, "KMSBRIDGE_PIN=" + s.tok.PIN}
}

// doctorJSON runs doctor -o json under env and returns its report.
func doctorJSON(t *testing.T, env []string, label string) awskms.DoctorReport {
	t.Helper()
	r := runBinary(t, env, "doctor", "--token-label", label, "--output", "json")
	if r.Code != 0 {
		t.Fatalf("doctor: exit %d\nstderr:\n%s", r.Code, r.Stderr)
	}
	var res struct{ Report awskms.DoctorReport }
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("doctor -o json: %v\n%s", err, r.Stdout)
	}
	return res.Report
}

// rowOf returns doctor's row for one cell of the matrix.
func rowOf(t *testing.T, rep awskms.DoctorReport, spec, alg, wks string) awskms.DoctorRow {
	t.Helper()
	for _, row := range rep.Rows {
		if row.KeySpec == spec && row.WrappingAlgorithm == alg && row.WrappingKeySpec == wks {
			return row
		}
	}
	t.Fatalf("doctor has no row %s %s %s", spec, alg, wks)
	return awskms.DoctorRow{}
}

// importThrough generates and imports an AES key under env and checks the
// emulator holds material whose check value is the token's.
func importThrough(t *testing.T, env []string, emu *emulator, label, key string, extra ...string) awskms.Result {
	t.Helper()
	args := append([]string{"import", "--output", "json", "--token-label", label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--key-label", key, "--generate", "--no-expiry"}, extra...)
	r := runBinary(t, env, args...)
	if r.Code != 0 {
		t.Fatalf("import: exit %d\nstderr:\n%s", r.Code, r.Stderr)
	}
	var res awskms.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("import -o json: %v\n%s", err, r.Stdout)
	}
	if res.KeyId == "" || res.HSM.KeyCheckValue == "" || !strings.EqualFold(emu.checkValue(t, res.KeyId), res.HSM.KeyCheckValue) {
		t.Fatalf("import through %v: key %q, token check value %q, emulator's %q", env, res.KeyId, res.HSM.KeyCheckValue, emu.checkValue(t, res.KeyId))
	}
	return res
}

// TestP11KitProxyDoctorAndImport runs doctor and an import through
// p11-kit-proxy.so, which hands out a fresh, uninitialised function list on
// every C_GetFunctionList (kmsbridge once refused to load it).
func TestP11KitProxyDoctorAndImport(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	env := p11KitProxyEnv(t, tok)
	rep := doctorJSON(t, env, tok.Label)
	// What SoftHSM2 does directly, it does through the proxy.
	if row := rowOf(t, rep, "SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSA_2048"); !row.Imports {
		t.Errorf("AES by RSA-OAEP SHA-1 through the proxy: %+v, want imports", row)
	}
	if row := rowOf(t, rep, "ECC_NIST_P256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"); !row.Imports {
		t.Errorf("P-256 by RSA-AES SHA-1 through the proxy: %+v, want imports", row)
	}
	emu := startEmulator(t)
	importThrough(t, env, emu, tok.Label, "through-proxy")
}

// TestP11KitRemoteDoctorAndImport runs doctor and an import through
// p11-kit-client.so against a `p11-kit server` serving a SoftHSM2 token on
// a Unix socket: a token reached over p11-kit's RPC, as on another host.
func TestP11KitRemoteDoctorAndImport(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	srv := startP11KitServer(t, tok)
	rep := doctorJSON(t, srv.env(), tok.Label)
	if row := rowOf(t, rep, "SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSA_2048"); !row.Imports {
		t.Errorf("AES by RSA-OAEP SHA-1 over p11-kit RPC: %+v, want imports", row)
	}
	// p11-kit's RPC forwards no RFC 5649 wrap and no HMAC-SHA-224
	// (docs/tokens.md): doctor says so in the token's terms and claims
	// no HMAC-224 proof.
	if row := rowOf(t, rep, "SYMMETRIC_DEFAULT", "RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"); row.Imports || !strings.Contains(row.Reason, "lists no AES key wrap with padding") {
		t.Errorf("RSA-AES over p11-kit RPC: %+v, want refused for the missing RFC 5649 mechanism", row)
	}
	if p := rep.Proof["HMAC_224"]; !strings.HasPrefix(p, "none") || !strings.Contains(p, "CKM_SHA224_HMAC") {
		t.Errorf("HMAC_224 proof over p11-kit RPC: %q, want none, naming CKM_SHA224_HMAC", p)
	}
	// KMS's refusal of RSA_2048 by RSA-OAEP advises nothing this token cannot do.
	if row := rowOf(t, rep, "RSA_2048", "RSAES_OAEP_SHA_1", "RSA_4096"); row.RefusedBy != "KMS" || strings.Contains(row.Reason, "use --wrapping-algorithm RSA_AES") {
		t.Errorf("RSA_2048 by RSA-OAEP over p11-kit RPC: %+v, want KMS's refusal without RSA-AES advice", row)
	}
	emu := startEmulator(t)
	importThrough(t, srv.env(), emu, tok.Label, "through-rpc")
}

// TestPKCS11SpyDoctor runs doctor through OpenSC's pkcs11-spy, which logs
// every call and passes it to the module PKCS11SPY names, and checks the
// calls went through it.
func TestPKCS11SpyDoctor(t *testing.T) {
	t.Parallel()
	const spy = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so"
	needFile(t, spy, "opensc-pkcs11")
	tok := newToken(t)
	log := filepath.Join(t.TempDir(), "spy.log")
	env := []string{tok.Environ(), "PKCS11SPY=" + softhsm.DefaultModule, "PKCS11SPY_OUTPUT=" + log,
		"KMSBRIDGE_PKCS11_MODULE=" + spy, "KMSBRIDGE_PIN=" + tok.PIN}
	rep := doctorJSON(t, env, tok.Label)
	if row := rowOf(t, rep, "SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSA_2048"); !row.Imports {
		t.Errorf("AES by RSA-OAEP SHA-1 through pkcs11-spy: %+v, want imports", row)
	}
	b, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(b), "C_WrapKey") {
		t.Errorf("pkcs11-spy logged no C_WrapKey (%v): doctor's calls did not go through it", err)
	}
}

// kill ends the server at once, as a crash or a lost host would.
func (s *p11KitServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
	_ = os.Remove(s.sock)
}

// signal sends sig to the server's process group (the server and the
// child serving each connection).
func (s *p11KitServer) signal(sig syscall.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	}
}

// TestHungTokenIsBoundedByPKCS11Timeout stops (SIGSTOP) the p11-kit
// server behind a token while an import runs, so the next PKCS#11 call
// hangs: --pkcs11-timeout ends the run with exit 3, naming the call and
// what is known of its effect; once the server runs again, the same
// command finishes the job with one KMS key and one HSM key.
func TestHungTokenIsBoundedByPKCS11Timeout(t *testing.T) {
	tok := newToken(t)
	srv := startP11KitServer(t, tok)
	t.Cleanup(func() { srv.signal(syscall.SIGCONT) })
	emu := startEmulator(t, "--latency", "1500ms")
	run := importCutOff(t, emu, tok, srv.env(), "through-a-hung-server", func() { srv.signal(syscall.SIGSTOP) }, "--pkcs11-timeout", "3s")
	srv.signal(syscall.SIGCONT)
	if !strings.Contains(run.stderr, "did not return within 3s (--pkcs11-timeout)") || !strings.Contains(run.stderr, "run the same command again") {
		t.Errorf("the message does not say which call hung and what to do:\n%s", run.stderr)
	}
	run.again(t, emu)
	srv.stop()
	wantOneHSMKey(t, tok, "through-a-hung-server")
	// The bound is checked like every flag: zero and negative are refused.
	for _, d := range []string{"0s", "-1s"} {
		r := runBinary(t, srv.env(), "doctor", "--token-label", tok.Label, "--pkcs11-timeout", d)
		if r.Code != 2 || !strings.Contains(r.Stderr, "give a duration from 1s") {
			t.Errorf("--pkcs11-timeout %s: exit %d, %s", d, r.Code, r.Stderr)
		}
	}
}

// TestP11KitServerKilledMidImportRecoversExactlyOnce kills the `p11-kit
// server` behind a token while an import runs (after the KMS key is
// created, while KMS answers slowly): the import stops with an honest
// message and exit 3, and the same command, once the server is back,
// finishes the job with one KMS key and one HSM key.
func TestP11KitServerKilledMidImportRecoversExactlyOnce(t *testing.T) {
	tok := newToken(t)
	srv := startP11KitServer(t, tok)
	emu := startEmulator(t, "--latency", "1500ms")
	run := importCutOff(t, emu, tok, srv.env(), "through-a-dying-server", srv.kill)
	if !strings.Contains(run.stderr, "stopped answering") && !strings.Contains(run.stderr, "did not return within") {
		t.Errorf("the message does not say the token stopped answering:\n%s", run.stderr)
	}
	// The same command, home and journal, once the server is back.
	srv.start(t)
	run.again(t, emu)
	srv.stop()
	wantOneHSMKey(t, tok, "through-a-dying-server")
}

// cutImport is an import that lost its token after its KMS key was
// created (importCutOff), and how to run the same command again.
type cutImport struct {
	args, env []string
	stderr    string
}

// importCutOff starts an import of a generated key named key, through the
// token env reaches, against emu (started with a --latency, so that the
// import is still running once its KMS key exists); once that key exists
// it calls cut (the token's server killed or stopped, its link cut), and
// the run must then end with exit 3.
func importCutOff(t *testing.T, emu *emulator, tok *softhsm.Token, env []string, key string, cut func(), extra ...string) cutImport {
	t.Helper()
	args := append([]string{"import", "--output", "json", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--key-label", key, "--generate", "--no-expiry"}, extra...)
	env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
	}, env...)
	cmd := exec.Command(filepath.Join(binDir, "kmsbridge"), args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for emu.keyCount(t) == 0 {
		select {
		case err := <-exited:
			t.Fatalf("import ended (%v) before the KMS key was created:\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cut()
	var err error
	select {
	case err = <-exited:
	case <-time.After(2 * time.Minute): // only ends a run that never ends
		_ = cmd.Process.Kill()
		t.Fatalf("import did not end within 2 minutes of losing the token:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("import that lost its token: %v, want exit 3\n%s", err, stderr.String())
	}
	t.Logf("the run that lost its token said:\n%s", stderr.String())
	return cutImport{args: args, env: env, stderr: stderr.String()}
}

// again runs the same import once the token is back: it must finish with
// exactly one KMS key, holding the HSM key's material.
func (c cutImport) again(t *testing.T, emu *emulator) {
	t.Helper()
	again := exec.Command(filepath.Join(binDir, "kmsbridge"), c.args...)
	again.Env = c.env
	var out, errOut strings.Builder
	again.Stdout, again.Stderr = &out, &errOut
	if err := again.Run(); err != nil {
		t.Fatalf("re-run: %v\n%s", err, errOut.String())
	}
	var res awskms.Result
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("re-run printed no result: %v\n%s", err, out.String())
	}
	if n := emu.keyCount(t); n != 1 {
		t.Errorf("%d KMS keys after the re-run, want exactly 1", n)
	}
	if !strings.EqualFold(emu.checkValue(t, res.KeyId), res.HSM.KeyCheckValue) {
		t.Errorf("the KMS key's material is not the HSM key's")
	}
}

// wantOneHSMKey checks that tok holds exactly one object labelled label.
func wantOneHSMKey(t *testing.T, tok *softhsm.Token, label string) {
	t.Helper()
	labels, err := openInProcess(t, tok).Labels()
	if err != nil {
		t.Fatal(err)
	}
	if labels[label] != 1 {
		t.Errorf("%d HSM objects labelled %s, want exactly 1", labels[label], label)
	}
}
