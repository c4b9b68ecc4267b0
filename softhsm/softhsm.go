// Package softhsm provisions throwaway SoftHSM2 tokens for tests and the
// demo: a token store in a directory of its own, its own softhsm2.conf, and
// one initialised token with a user PIN, made through C_InitToken and
// C_InitPIN with no command-line tool.
package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// DefaultModule is where Debian's softhsm2 package installs the library.
const DefaultModule = "/usr/lib/softhsm/libsofthsm2.so"

// ConfEnv is the variable SoftHSM2 reads its configuration path from when
// the library is initialised.
const ConfEnv = "SOFTHSM2_CONF"

// Token is a provisioned SoftHSM2 token and the store it lives in.
type Token struct {
	// Dir holds softhsm2.conf and the tokens/ directory.
	Dir string
	// Conf is the path of softhsm2.conf; SOFTHSM2_CONF must point at it
	// before a process loads the module.
	Conf   string
	Module string
	Label  string
	Serial string
	PIN    string
	SOPIN  string
}

// Environ is the environment entry a child process needs to see this token.
func (t *Token) Environ() string { return ConfEnv + "=" + t.Conf }

// Remove deletes the token store.
func (t *Token) Remove() error { return os.RemoveAll(t.Dir) }

// mu serialises provisioning and every other in-process use of the
// module: SOFTHSM2_CONF is process-wide, SoftHSM2 reads it at
// C_Initialize, and the library is loaded once per process, so two
// goroutines initialising it at once fail (CKR_CRYPTOKI_ALREADY_INITIALIZED)
// or crash.
var mu sync.Mutex

// InProcess points this process's SoftHSM2 at t's configuration and holds
// the lock Provision takes until done is called, restoring SOFTHSM2_CONF:
// for tests that load the module in-process while other tests, in
// parallel, provision tokens or do the same.
func (t *Token) InProcess() (done func()) {
	mu.Lock()
	old, had := os.LookupEnv(ConfEnv)
	os.Setenv(ConfEnv, t.Conf)
	return func() {
		if had {
			os.Setenv(ConfEnv, old)
		} else {
			os.Unsetenv(ConfEnv)
		}
		mu.Unlock()
	}
}

// Available reports whether the SoftHSM2 module is installed at module,
// with a reason when it is not.
func Available(module string) (bool, string) {
	if _, err := os.Stat(module); err != nil {
		return false, fmt.Sprintf("SoftHSM2 module %s is not installed (apt-get install softhsm2; `make test` does this)", module)
	}
	return true, ""
}

// Provision creates dir (which must not exist or be empty), writes a
// softhsm2.conf there, and initialises one token with label, SO PIN and user
// PIN. It leaves SOFTHSM2_CONF set to the new configuration in this process,
// so a module loaded afterwards in this process sees the token.
func Provision(module, dir, label, pin, soPIN string) (*Token, error) {
	mu.Lock()
	defer mu.Unlock()
	if ok, why := Available(module); !ok {
		return nil, errors.New(why)
	}
	tokdir := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokdir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokdir)
	f, err := os.OpenFile(conf, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Setenv(ConfEnv, conf); err != nil {
		return nil, err
	}
	serial, err := initToken(module, label, pin, soPIN)
	if err != nil {
		// Leave nothing half-made: a retry must not meet this store.
		_ = os.Remove(conf)
		_ = os.RemoveAll(tokdir)
		return nil, fmt.Errorf("provision SoftHSM2 token %q in %s: %w", label, dir, err)
	}
	return &Token{Dir: dir, Conf: conf, Module: module, Label: label, Serial: serial, PIN: pin, SOPIN: soPIN}, nil
}

// initToken runs C_InitToken on the free slot and C_InitPIN as the SO, and
// returns the new token's serial number.
func initToken(module, label, pin, soPIN string) (string, error) {
	ctx := pkcs11.New(module)
	if ctx == nil {
		return "", fmt.Errorf("cannot load %s", module)
	}
	defer ctx.Destroy()
	if err := ctx.Initialize(); err != nil {
		return "", fmt.Errorf("C_Initialize: %w", err)
	}
	defer ctx.Finalize()

	slots, err := ctx.GetSlotList(false)
	if err != nil {
		return "", fmt.Errorf("C_GetSlotList: %w", err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return "", fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		return "", errors.New("no free slot to initialise")
	}
	if err := ctx.InitToken(free, soPIN, label); err != nil {
		return "", fmt.Errorf("C_InitToken: %w", err)
	}
	// SoftHSM2 gives the initialised token a new slot ID: find it by label.
	slots, err = ctx.GetSlotList(true)
	if err != nil {
		return "", fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			return "", fmt.Errorf("C_GetTokenInfo: %w", err)
		}
		if strings.TrimSpace(ti.Label) != label || ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED != 0 {
			continue
		}
		sh, err := ctx.OpenSession(s, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return "", fmt.Errorf("C_OpenSession: %w", err)
		}
		defer ctx.CloseSession(sh)
		if err := ctx.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
			return "", fmt.Errorf("C_Login as SO: %w", err)
		}
		defer ctx.Logout(sh)
		if err := ctx.InitPIN(sh, pin); err != nil {
			return "", fmt.Errorf("C_InitPIN: %w", err)
		}
		return strings.TrimSpace(ti.SerialNumber), nil
	}
	return "", fmt.Errorf("token %q not found after C_InitToken", label)
}
