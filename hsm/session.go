package hsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// ModuleConfig says which PKCS#11 library to load and how to initialise it.
type ModuleConfig struct {
	// Path is the shared library, e.g. /usr/lib/softhsm/libsofthsm2.so.
	Path string
	// Params, when set, is passed to C_Initialize as the pReserved library
	// parameter string. NSS softokn needs it (configdir='sql:DIR' ...);
	// other modules ignore it or must not be given one.
	Params string
}

// Module is a loaded and initialised PKCS#11 library. Close it when done.
type Module struct {
	ctx  *pkcs11.Ctx
	raw  *rawModule
	path string
	// params is kept alive for as long as the module may read it.
	params []byte
}

// LoadModule loads and initialises the library. Errors wrap ErrModule and
// say how to fix the path.
func LoadModule(cfg ModuleConfig) (*Module, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: no module path: give --module PATH or set KMSBRIDGE_PKCS11_MODULE to your HSM vendor's PKCS#11 library (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)", ErrModule)
	}
	// NSS softokn 3.87 dereferences a missing configdir and kills the
	// process (SIGSEGV) instead of returning an error.
	if strings.HasPrefix(filepath.Base(cfg.Path), "libsoftokn3") && !strings.Contains(cfg.Params, "configdir=") {
		return nil, fmt.Errorf("%w: %s is NSS softokn, which needs library parameters naming its database: give --module-params \"configdir='sql:/path/to/nssdb' certPrefix='' keyPrefix='' secmod='secmod.db' flags=\" (or KMSBRIDGE_PKCS11_MODULE_PARAMS)", ErrModule, cfg.Path)
	}
	st, err := os.Stat(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not exist: check --module (SoftHSM2 is at /usr/lib/softhsm/libsofthsm2.so after apt-get install softhsm2)", ErrModule, cfg.Path)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory: --module takes the path of the PKCS#11 shared library (.so) itself", ErrModule, cfg.Path)
	}
	ctx := pkcs11.New(cfg.Path)
	if ctx == nil {
		return nil, fmt.Errorf("%w: %s could not be loaded as a PKCS#11 library (dlopen or C_GetFunctionList failed): check that it is the vendor's PKCS#11 module for this architecture", ErrModule, cfg.Path)
	}
	m := &Module{ctx: ctx, path: cfg.Path}
	var opts []pkcs11.InitializeOption
	if cfg.Params != "" {
		// A NUL-terminated copy the C side may read during C_Initialize.
		m.params = append([]byte(cfg.Params), 0)
		opts = append(opts, pkcs11.InitializeWithReserved(unsafe.Pointer(&m.params[0])))
	}
	if err := ctx.Initialize(opts...); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: %s: %v", ErrModule, cfg.Path, newError("C_Initialize", err))
	}
	raw, err := openRawModule(cfg.Path)
	if err != nil {
		m.Close()
		return nil, err
	}
	m.raw = raw
	return m, nil
}

// Close finalises and unloads the library.
func (m *Module) Close() {
	if m == nil || m.ctx == nil {
		return
	}
	m.raw.close()
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
	m.ctx = nil
}

// TokenSelector picks one token. Exactly one field must be set.
type TokenSelector struct {
	Label  string
	Serial string
	// Slot is a slot ID as the module numbers them; nil when not used.
	Slot *uint
	// Manufacturer and Model, when set, must match too (PKCS#11 URIs).
	Manufacturer, Model string
	// fromURI: the selection comes from a PKCS#11 URI, where several
	// attributes may be given and all must match.
	fromURI bool
}

// Validate reports an error unless exactly one way of choosing is set.
func (s TokenSelector) Validate() error {
	n := 0
	if s.Label != "" {
		n++
	}
	if s.Serial != "" {
		n++
	}
	if s.Slot != nil {
		n++
	}
	switch {
	case n == 1, n > 1 && s.fromURI:
		return nil
	case n == 0:
		return errors.New("no token chosen: give exactly one of --token-label, --token-serial or --slot")
	default:
		return errors.New("more than one way of choosing the token: give exactly one of --token-label, --token-serial or --slot")
	}
}

func (s TokenSelector) String() string {
	if s.fromURI {
		var parts []string
		if s.Label != "" {
			parts = append(parts, fmt.Sprintf("label %q", s.Label))
		}
		if s.Serial != "" {
			parts = append(parts, fmt.Sprintf("serial %q", s.Serial))
		}
		if s.Slot != nil {
			parts = append(parts, fmt.Sprintf("slot %d", *s.Slot))
		}
		if s.Manufacturer != "" {
			parts = append(parts, fmt.Sprintf("manufacturer %q", s.Manufacturer))
		}
		if s.Model != "" {
			parts = append(parts, fmt.Sprintf("model %q", s.Model))
		}
		return strings.Join(parts, ", ")
	}
	switch {
	case s.Label != "":
		return fmt.Sprintf("label %q", s.Label)
	case s.Serial != "":
		return fmt.Sprintf("serial %q", s.Serial)
	case s.Slot != nil:
		return fmt.Sprintf("slot %d", *s.Slot)
	}
	return "(none)"
}

// matches reports whether the token in slot, described by id, meets every
// criterion of the selection.
func (s TokenSelector) matches(slot uint, id TokenIdentity) bool {
	return (s.Slot == nil || *s.Slot == slot) &&
		(s.Label == "" || s.Label == id.Label) &&
		(s.Serial == "" || s.Serial == id.Serial) &&
		(s.Manufacturer == "" || s.Manufacturer == id.Manufacturer) &&
		(s.Model == "" || s.Model == id.Model)
}

// TokenIdentity is what the token says about itself; it goes into records
// and KMS tags so each side can be found from the other.
type TokenIdentity struct {
	Slot         uint   `json:"Slot"`
	Label        string `json:"Label"`
	Serial       string `json:"Serial"`
	Manufacturer string `json:"Manufacturer"`
	Model        string `json:"Model"`
	// Firmware is the token's firmware version, "major.minor".
	Firmware string `json:"Firmware"`
}

func identityOf(slot uint, ti pkcs11.TokenInfo) TokenIdentity {
	return TokenIdentity{
		Slot:         slot,
		Label:        strings.TrimSpace(ti.Label),
		Serial:       strings.TrimSpace(ti.SerialNumber),
		Manufacturer: strings.TrimSpace(ti.ManufacturerID),
		Model:        strings.TrimSpace(ti.Model),
		Firmware:     fmt.Sprintf("%d.%d", ti.FirmwareVersion.Major, ti.FirmwareVersion.Minor),
	}
}

// Token is an open read-write session on one token. All key operations run
// in this session. Close it when done; closing also logs out.
type Token struct {
	p        PKCS11
	slot     uint
	session  pkcs11.SessionHandle
	id       TokenIdentity
	loggedIn bool
	// native caches NativeRSAAES per OAEP hash.
	native map[OAEPHash]nativeCheck
	// caps is what the token can do, read and probed once per session.
	caps *Capabilities
}

// OpenToken finds the one token sel names and opens a read-write session on
// it. When no token matches, the error lists the tokens that are present.
func (m *Module) OpenToken(sel TokenSelector) (*Token, error) {
	return openToken(moduleCtx{m.ctx, m.raw}, sel)
}

// moduleCtx is the PKCS11 of a loaded module: miekg/pkcs11's context, plus
// the one call it cannot make the way some tokens need.
type moduleCtx struct {
	*pkcs11.Ctx
	raw *rawModule
}

// WrapKeyOneCall wraps with a parameterless mechanism in one C_WrapKey
// whose buffer is sized from the RFC 5649 formula and the token's size
// query, for tokens whose size query under-reports (NSS softokn's KWP).
func (c moduleCtx) WrapKeyOneCall(sh pkcs11.SessionHandle, mech uint, wrappingKey, key pkcs11.ObjectHandle) ([]byte, error) {
	n, err := c.raw.wrapKeyLen(sh, mech, wrappingKey, key)
	if err != nil {
		return nil, err
	}
	return c.raw.wrapKeySized(sh, mech, wrappingKey, key, kwpOutputLen(n))
}

func openToken(p PKCS11, sel TokenSelector) (*Token, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		return nil, newError("C_GetSlotList", err)
	}
	var (
		found   []TokenIdentity
		present []string
	)
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil {
			return nil, newError("C_GetTokenInfo", err)
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			present = append(present, fmt.Sprintf("slot %d has an uninitialised token", slot))
			continue
		}
		id := identityOf(slot, ti)
		present = append(present, fmt.Sprintf("slot %d label %q serial %q", slot, id.Label, id.Serial))
		if sel.matches(slot, id) {
			found = append(found, id)
		}
	}
	if len(found) == 0 {
		have := "no token is present"
		if len(present) > 0 {
			have = "tokens present: " + strings.Join(present, "; ")
		}
		return nil, fmt.Errorf("%w: no token with %s (%s): check the token selection, or initialise the token first", ErrTokenNotFound, sel, have)
	}
	if len(found) > 1 {
		other := "--token-serial or --slot"
		if sel.Serial != "" {
			other = "--token-label or --slot"
		}
		return nil, fmt.Errorf("%w: %d tokens have %s: choose one by %s", ErrKeyAmbiguous, len(found), sel, other)
	}
	id := found[0]
	sh, err := p.OpenSession(id.Slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, newError("C_OpenSession", err)
	}
	return &Token{p: p, slot: id.Slot, session: sh, id: id}, nil
}

// Identity returns the token's label, serial, manufacturer and model.
func (t *Token) Identity() TokenIdentity { return t.id }

// Login logs the normal user in. It is never retried: a wrong PIN counts
// against the token's lockout limit.
func (t *Token) Login(pin string) error {
	if pin == "" {
		return fmt.Errorf("%w: the PIN is empty: set KMSBRIDGE_PIN, or give --pin-file FILE, or run on a terminal to be prompted", ErrNoPIN)
	}
	err := t.p.Login(t.session, pkcs11.CKU_USER, pin)
	if errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		err = nil
	}
	if err != nil {
		return newError("C_Login", err)
	}
	t.loggedIn = true
	return nil
}

// Close logs out and closes the session.
func (t *Token) Close() error {
	if t == nil || t.p == nil {
		return nil
	}
	if t.loggedIn {
		_ = t.p.Logout(t.session)
	}
	err := t.p.CloseSession(t.session)
	t.p = nil
	return newError("C_CloseSession", err)
}

// HasMechanism reports whether the token lists mech.
func (t *Token) HasMechanism(mech uint) (bool, error) {
	mechs, err := t.p.GetMechanismList(t.slot)
	if err != nil {
		return false, newError("C_GetMechanismList", err)
	}
	for _, m := range mechs {
		if m.Mechanism == mech {
			return true, nil
		}
	}
	return false, nil
}

// SlotInfo is one slot of a module and the token in it, if any.
type SlotInfo struct {
	Slot uint `json:"Slot"`
	// Token is the token's identity; nil when the slot is empty or its
	// token is not initialised.
	Token *TokenIdentity `json:"Token,omitempty"`
	// State says "token present", "uninitialised token" or why it could
	// not be read.
	State string `json:"State"`
}

// Slots lists the module's slots with a token present, and the tokens in
// them. It changes nothing.
func (m *Module) Slots() ([]SlotInfo, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return nil, newError("C_GetSlotList", err)
	}
	var out []SlotInfo
	for _, s := range slots {
		ti, err := m.ctx.GetTokenInfo(s)
		switch {
		case err != nil:
			out = append(out, SlotInfo{Slot: s, State: newError("C_GetTokenInfo", err).Error()})
		case ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0:
			out = append(out, SlotInfo{Slot: s, State: "uninitialised token"})
		default:
			id := identityOf(s, ti)
			out = append(out, SlotInfo{Slot: s, Token: &id, State: "token present"})
		}
	}
	return out, nil
}
