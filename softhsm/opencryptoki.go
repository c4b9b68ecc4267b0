package softhsm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// opencryptoki's soft token (Debian package opencryptoki 3.8) has no
// per-process configuration: the slot daemon pkcsslotd, the configuration
// /etc/opencryptoki/opencryptoki.conf and the token store
// /var/lib/opencryptoki/swtok are machine-wide, at paths compiled in. So a
// throwaway opencryptoki token is the machine's soft token, wiped before and
// after use, with a machine-wide lock so two test processes never share it,
// and with a marker file so a soft token this project did not make is never
// wiped.
const (
	// OCKModule is opencryptoki's PKCS#11 library as Debian installs it on amd64.
	OCKModule = "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so"
	// OCKSlotDaemon is the slot manager every opencryptoki client talks to.
	OCKSlotDaemon = "/usr/sbin/pkcsslotd"
	// OCKSoftSlot is the slot of the soft token (libpkcs11_sw.so) in
	// Debian's default opencryptoki.conf.
	OCKSoftSlot = 3
	// OCKDefaultSOPIN is the SO PIN of an opencryptoki token that was
	// never initialised, as opencryptoki documents it.
	OCKDefaultSOPIN = "87654321"

	ockStore    = "/var/lib/opencryptoki/swtok"
	ockShm      = "/dev/shm/var.lib.opencryptoki.swtok"
	ockPidFile  = "/var/run/pkcsslotd.pid"
	ockSocket   = "/var/run/pkcsslotd.socket"
	ockLockFile = "/run/lock/kmsbridge-opencryptoki.lock"
	ockMarker   = ".kmsbridge-throwaway"
	// ockOurDaemon records the pid of the pkcsslotd a test started, so a
	// later test can stop one left behind by a test process that crashed.
	ockOurDaemon = "/run/lock/kmsbridge-opencryptoki.daemon"
)

// OCKToken is opencryptoki's soft token, initialised for one test, with
// the slot daemon this process started. Release stops the daemon, wipes
// the token and frees the machine-wide lock.
type OCKToken struct {
	Module string
	Label  string
	Serial string
	PIN    string
	SOPIN  string

	lock      *os.File
	daemonPID int
}

// OCKAvailable reports whether opencryptoki and its soft token are
// installed, with a reason when they are not.
func OCKAvailable() (bool, string) {
	for _, p := range []string{OCKModule, OCKSlotDaemon, "/usr/lib/x86_64-linux-gnu/opencryptoki/stdll/libpkcs11_sw.so"} {
		if _, err := os.Stat(p); err != nil {
			return false, fmt.Sprintf("opencryptoki is not installed (%s missing; apt-get install opencryptoki; `make test` does this)", p)
		}
	}
	if os.Geteuid() != 0 {
		return false, "opencryptoki's slot daemon and soft token store are machine-wide; provisioning them needs root"
	}
	return true, ""
}

// ProvisionOCK takes the machine-wide opencryptoki lock (waiting for
// another test process to release it), wipes the soft token store if this
// project made what is in it, starts pkcsslotd, and initialises the soft
// token with label, SO PIN soPIN (from the default SO PIN) and user PIN
// pin. It refuses to run while a pkcsslotd it did not start is running, or
// when the store holds a token this project did not make. The caller must
// call Release.
func ProvisionOCK(label, pin, soPIN string) (*OCKToken, error) {
	if ok, why := OCKAvailable(); !ok {
		return nil, errors.New(why)
	}
	lock, err := os.OpenFile(ockLockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opencryptoki lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("opencryptoki lock: %w", err)
	}
	tok := &OCKToken{Module: OCKModule, Label: label, PIN: pin, SOPIN: soPIN, lock: lock}
	fail := func(err error) (*OCKToken, error) {
		tok.Release()
		return nil, fmt.Errorf("provision opencryptoki soft token %q: %w", label, err)
	}
	if pid, running := ockDaemonRunning(); running && ockLeftByUs(pid) {
		ockStopDaemon(pid)
	}
	if pid, running := ockDaemonRunning(); running {
		return fail(fmt.Errorf("pkcsslotd (pid %d) is already running and was not started by this test; stop it first (systemctl stop pkcsslotd)", pid))
	}
	if err := ockWipe(); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(ockStore, ockMarker), []byte("made by kmsbridge tests; wiped by them\n"), 0o600); err != nil {
		return fail(err)
	}
	for _, d := range []string{"/var/lock/opencryptoki/swtok", "/var/log/opencryptoki"} {
		if err := os.MkdirAll(d, 0o770); err != nil {
			return fail(err)
		}
	}
	out, err := exec.Command(OCKSlotDaemon).CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("start pkcsslotd: %v: %s", err, strings.TrimSpace(string(out))))
	}
	// pkcsslotd forks into the background; its child writes the pid file
	// and opens the socket shortly after the parent returns.
	pid, running := ockDaemonRunning()
	for i := 0; i < 100 && (!running || !ockSocketReady()); i++ {
		time.Sleep(50 * time.Millisecond)
		pid, running = ockDaemonRunning()
	}
	if !running {
		return fail(errors.New("pkcsslotd started but wrote no pid file"))
	}
	tok.daemonPID = pid
	if err := os.WriteFile(ockOurDaemon, []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return fail(err)
	}
	if !ockSocketReady() {
		return fail(errors.New("pkcsslotd started but opened no socket"))
	}
	serial, err := ockInitInChild(label, pin, soPIN)
	if err != nil {
		return fail(err)
	}
	tok.Serial = serial
	return tok, nil
}

// Release stops the daemon this process started, wipes the soft token and
// frees the lock. Every hsm.Module loaded on the token must be closed first.
func (t *OCKToken) Release() {
	if t.daemonPID > 0 {
		ockStopDaemon(t.daemonPID)
		_ = os.Remove(ockOurDaemon)
		t.daemonPID = 0
	}
	if t.lock != nil {
		_ = ockWipe()
		_ = syscall.Flock(int(t.lock.Fd()), syscall.LOCK_UN)
		t.lock.Close()
		t.lock = nil
	}
}

// ockDaemonRunning reads pkcsslotd's pid file and checks that process lives.
func ockDaemonRunning() (int, bool) {
	b, err := safefile.Read("pkcsslotd pid file", ockPidFile, 64)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return 0, false
	}
	stat, err := safefile.Read("process status", fmt.Sprintf("/proc/%d/stat", pid), 4<<10)
	// "PID (pkcsslotd) S ...": the name, and a state that is not a zombie.
	if err != nil || !strings.Contains(string(stat), "(pkcsslotd) ") || strings.Contains(string(stat), "(pkcsslotd) Z") {
		return 0, false
	}
	return pid, true
}

// ockLeftByUs reports whether pid is the pkcsslotd a test started and,
// having crashed, never stopped.
func ockLeftByUs(pid int) bool {
	b, err := safefile.Read("pid file", ockOurDaemon, 64)
	return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid)
}

// ockSocketReady reports whether the daemon's socket exists.
func ockSocketReady() bool {
	_, err := os.Stat(ockSocket)
	return err == nil
}

// ockStopDaemon sends SIGTERM to the daemon this process started and waits
// for it to go.
func ockStopDaemon(pid int) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(ockPidFile)
	_ = os.Remove(ockSocket)
}

// ockWipe empties the soft token store, which must hold either nothing
// initialised or a token this project made (the marker file).
func ockWipe() error {
	if _, err := os.Stat(filepath.Join(ockStore, ockMarker)); err != nil {
		// Not ours: only an uninitialised store (no user PIN, no objects) may be wiped.
		if _, err := os.Stat(filepath.Join(ockStore, "MK_USER")); err == nil {
			return fmt.Errorf("%s holds a soft token with a user PIN that kmsbridge's tests did not make; refusing to wipe it", ockStore)
		}
		if ents, _ := os.ReadDir(filepath.Join(ockStore, "TOK_OBJ")); len(ents) > 0 {
			return fmt.Errorf("%s holds token objects that kmsbridge's tests did not make; refusing to wipe it", ockStore)
		}
	}
	for _, f := range []string{"NVTOK.DAT", "MK_SO", "MK_USER", ockMarker} {
		if err := os.Remove(filepath.Join(ockStore, f)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	objs, _ := os.ReadDir(filepath.Join(ockStore, "TOK_OBJ"))
	for _, e := range objs {
		if err := os.Remove(filepath.Join(ockStore, "TOK_OBJ", e.Name())); err != nil {
			return err
		}
	}
	if err := os.Remove(ockShm); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// Environment of the child process that initialises the token.
const (
	ockHelperEnv = "KMSBRIDGE_OCK_INIT_LABEL"
	ockPINEnv    = "KMSBRIDGE_OCK_INIT_PIN"
	ockSOPINEnv  = "KMSBRIDGE_OCK_INIT_SO_PIN"
	ockSerialOut = "kmsbridge-ock-serial="
)

// RunOCKHelper makes this process the child ProvisionOCK starts to
// initialise the token, when it was started as one: it initialises the
// token, prints its serial and exits. Otherwise it returns at once. A test
// binary that uses NewOCKTestToken calls it first thing in TestMain.
//
// The token is initialised in a child because opencryptoki 3.8.1's
// C_Initialize crashes a process into which SoftHSM2 2.6 was loaded before
// (docs/tokens.md), and a test process may well have loaded SoftHSM2.
func RunOCKHelper() {
	label := os.Getenv(ockHelperEnv)
	if label == "" {
		return
	}
	serial, err := ockInit(label, os.Getenv(ockPINEnv), os.Getenv(ockSOPINEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ockSerialOut + serial)
	os.Exit(0)
}

// ockInitInChild runs ockInit in a child copy of this executable (see
// RunOCKHelper), PINs passed in its environment, never on its command line.
func ockInitInChild(label, pin, soPIN string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	// -test.run=^$: a test binary that does not call RunOCKHelper runs no
	// tests, and the missing serial says what is wrong.
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), ockHelperEnv+"="+label, ockPINEnv+"="+pin, ockSOPINEnv+"="+soPIN)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("initialising the token in a child process: %v: %s", err, strings.TrimSpace(string(out)))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, ockSerialOut); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("the child process did not initialise the token: call softhsm.RunOCKHelper() first thing in TestMain of this test binary")
}

// ockInit initialises the soft token: C_InitToken with the default SO
// PIN, the SO PIN changed to soPIN, the user PIN set and changed once so
// the token does not flag it as still to be changed.
func ockInit(label, pin, soPIN string) (string, error) {
	ctx := pkcs11.New(OCKModule)
	if ctx == nil {
		return "", fmt.Errorf("cannot load %s", OCKModule)
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		return "", fmt.Errorf("C_Initialize: %w", err)
	}
	defer ctx.Finalize()
	if err := ctx.InitToken(OCKSoftSlot, OCKDefaultSOPIN, label); err != nil {
		return "", fmt.Errorf("C_InitToken: %w", err)
	}
	sh, err := ctx.OpenSession(OCKSoftSlot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return "", fmt.Errorf("C_OpenSession: %w", err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, pkcs11.CKU_SO, OCKDefaultSOPIN); err != nil {
		return "", fmt.Errorf("C_Login as SO: %w", err)
	}
	if err := ctx.SetPIN(sh, OCKDefaultSOPIN, soPIN); err != nil {
		return "", fmt.Errorf("C_SetPIN (SO): %w", err)
	}
	if err := ctx.InitPIN(sh, pin); err != nil {
		return "", fmt.Errorf("C_InitPIN: %w", err)
	}
	if err := ctx.Logout(sh); err != nil {
		return "", fmt.Errorf("C_Logout: %w", err)
	}
	ti, err := ctx.GetTokenInfo(OCKSoftSlot)
	if err != nil {
		return "", fmt.Errorf("C_GetTokenInfo: %w", err)
	}
	if ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED == 0 {
		return "", errors.New("C_InitPIN succeeded but the token reports no user PIN")
	}
	return strings.TrimSpace(ti.SerialNumber), nil
}
