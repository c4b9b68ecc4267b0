package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// NSSModule is where Debian's libnss3 package installs NSS softokn, the
// PKCS#11 module of NSS's software token, on amd64. DefaultNSSModule gives
// the path for the architecture this program runs on.
const NSSModule = "/usr/lib/x86_64-linux-gnu/libsoftokn3.so"

// NSSLabel is the token label NSS softokn gives the token that holds a
// database's keys (slot "NSS User Private Key and Certificate Services").
// Its other slot, "NSS Generic Crypto Services", has no persistent storage
// and no login. Both report the serial number "0000000000000000", so the
// token is told apart by label, never by serial.
const NSSLabel = "NSS Certificate DB"

// debianMultiarch maps GOARCH to the Debian multiarch directory under
// /usr/lib where libnss3 puts libsoftokn3.so.
var debianMultiarch = map[string]string{
	"amd64":    "x86_64-linux-gnu",
	"arm64":    "aarch64-linux-gnu",
	"386":      "i386-linux-gnu",
	"arm":      "arm-linux-gnueabihf",
	"ppc64le":  "powerpc64le-linux-gnu",
	"s390x":    "s390x-linux-gnu",
	"riscv64":  "riscv64-linux-gnu",
	"mips64le": "mips64el-linux-gnuabi64",
	"loong64":  "loongarch64-linux-gnu",
}

// DefaultNSSModule returns where Debian installs NSS softokn for the
// architecture this program was built for, or NSSModule for an
// architecture Debian has no multiarch name for.
func DefaultNSSModule() string {
	if triplet, ok := debianMultiarch[runtime.GOARCH]; ok {
		return "/usr/lib/" + triplet + "/libsoftokn3.so"
	}
	return NSSModule
}

// NSSToken is an NSS sql database provisioned as a PKCS#11 token with a
// user PIN. Loading Module with Params (hsm.ModuleConfig{Path: Module,
// Params: Params}) shows the database as the token labelled Label. NSS
// softokn can be initialised only once per process at a time, so one
// process has one NSS token loaded at a time.
type NSSToken struct {
	// Dir holds the database: cert9.db and key4.db.
	Dir string
	// Module is the NSS softokn library.
	Module string
	// Params is the library-parameter string NSS softokn needs as the
	// pReserved argument of C_Initialize; it names Dir as an sql database.
	Params string
	// Label is the token label, NSSLabel.
	Label string
	// PIN is the user PIN, which is also the database password NSS's own
	// tools (certutil -f) ask for.
	PIN string
}

// NSSAvailable reports whether NSS softokn is installed at module, with a
// reason when it is not.
func NSSAvailable(module string) (bool, string) {
	if _, err := os.Stat(module); err != nil {
		return false, fmt.Sprintf("NSS softokn module %s is not installed (apt-get install libnss3; `make test` installs NSS)", module)
	}
	return true, ""
}

// NSSParams returns the C_Initialize library-parameter string that opens
// the sql database in dir read-write. The directory is quoted as NSS's
// parameter parser expects, so a path with spaces, quotes or backslashes
// still names dir. (NSS softokn 3.87 crashes the process with SIGSEGV in
// C_Initialize when given a string with no configdir at all.)
func NSSParams(dir string) string {
	esc := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace("sql:" + dir)
	return "configdir='" + esc + "' certPrefix='' keyPrefix='' secmod='secmod.db' flags="
}

// nssDBFiles are the files whose presence means dir already holds an NSS
// database, in the sql (cert9/key4) or the legacy dbm (cert8/key3) format.
var nssDBFiles = []string{"cert9.db", "key4.db", "cert8.db", "key3.db"}

// NSS vendor-defined return codes (nss/pkcs11n.h), which miekg/pkcs11 has
// no names for.
const (
	ckrNSSCertDBFailed = 0xCE534351
	ckrNSSKeyDBFailed  = 0xCE534352
)

// initError is a failed C_Initialize whose code NSS answers when it cannot
// be set up, with what to do about it. errors.Is matches its code.
type initError struct {
	code   pkcs11.Error
	name   string
	advice string
}

func (e *initError) Error() string {
	return fmt.Sprintf("C_Initialize: %s (%#x): %s", e.name, uint(e.code), e.advice)
}

func (e *initError) Unwrap() error { return e.code }

// initFailed describes a failed C_Initialize; miekg/pkcs11 has no names for
// NSS's vendor codes.
func initFailed(err error) error {
	var code pkcs11.Error
	errors.As(err, &code)
	switch code {
	case pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED:
		return &initError{code, "CKR_CRYPTOKI_ALREADY_INITIALIZED", "NSS softokn is already initialised in this process; close the module before provisioning"}
	case ckrNSSCertDBFailed:
		return &initError{code, "CKR_NSS_CERTDB_FAILED", "NSS cannot create or open cert9.db; check that the directory is writable"}
	case ckrNSSKeyDBFailed:
		return &initError{code, "CKR_NSS_KEYDB_FAILED", "NSS cannot create or open key4.db; check that the directory is writable"}
	}
	return fmt.Errorf("C_Initialize: %w", err)
}

// nssMu serialises provisioning: NSS softokn is initialised once per
// process, so two provisionings cannot overlap.
var nssMu sync.Mutex

// ProvisionNSS creates an NSS sql database in dir (created 0700 if missing;
// it must not already hold a database) and sets its password, which is the
// token's user PIN, to pin. It runs entirely over PKCS#11, as NSS's own
// certutil -N does inside: C_Initialize with NSSParams(dir) makes an empty
// database, then the Security Officer, whose PIN is empty until a password
// is set, logs in and calls C_InitPIN. No command-line tool is needed and
// the PIN appears in no file and no argv. An empty module means
// DefaultNSSModule(). The module must not be initialised elsewhere in this
// process while ProvisionNSS runs.
func ProvisionNSS(module, dir, pin string) (*NSSToken, error) {
	if module == "" {
		module = DefaultNSSModule()
	}
	if pin == "" {
		return nil, errors.New("provision NSS database: the PIN is empty; NSS would leave the database without a password")
	}
	nssMu.Lock()
	defer nssMu.Unlock()
	if ok, why := NSSAvailable(module); !ok {
		return nil, errors.New(why)
	}
	for _, f := range nssDBFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("provision NSS database: %s already holds an NSS database (%s); refusing to touch it", dir, f)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	params := NSSParams(dir)
	if err := initNSSPIN(module, params, pin); err != nil {
		// Leave nothing half-made: a retry must not meet this database.
		for _, f := range nssDBFiles {
			_ = os.Remove(filepath.Join(dir, f))
		}
		return nil, fmt.Errorf("provision NSS database in %s: %w", dir, err)
	}
	return &NSSToken{Dir: dir, Module: module, Params: params, Label: NSSLabel, PIN: pin}, nil
}

// initNSSPIN initialises softokn on the database params names and sets the
// user PIN of its key token, which must not have one yet.
func initNSSPIN(module, params, pin string) error {
	ctx := pkcs11.New(module)
	if ctx == nil {
		return fmt.Errorf("cannot load %s", module)
	}
	defer ctx.Destroy()
	// A NUL-terminated copy that stays alive while C_Initialize reads it.
	cparams := append([]byte(params), 0)
	err := ctx.Initialize(pkcs11.InitializeWithReserved(unsafe.Pointer(&cparams[0])))
	runtime.KeepAlive(cparams)
	if err != nil {
		return initFailed(err)
	}
	defer ctx.Finalize()

	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		if strings.TrimSpace(ti.Label) != NSSLabel {
			continue
		}
		if ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED != 0 {
			return errors.New("the database already has a password")
		}
		sh, err := ctx.OpenSession(s, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("C_OpenSession: %w", err)
		}
		defer ctx.CloseSession(sh)
		// NSS lets the SO in with an empty PIN only while no password is set.
		if err := ctx.Login(sh, pkcs11.CKU_SO, ""); err != nil {
			return fmt.Errorf("C_Login as SO: %w", err)
		}
		defer ctx.Logout(sh)
		if err := ctx.InitPIN(sh, pin); err != nil {
			return fmt.Errorf("C_InitPIN: %w", err)
		}
		after, err := ctx.GetTokenInfo(s)
		if err != nil {
			return fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		if after.Flags&pkcs11.CKF_USER_PIN_INITIALIZED == 0 {
			return errors.New("C_InitPIN succeeded but the token still reports no user PIN")
		}
		return nil
	}
	return fmt.Errorf("no token labelled %q: is %s NSS softokn?", NSSLabel, module)
}
