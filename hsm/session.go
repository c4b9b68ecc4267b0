package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
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
	// Timeout bounds every PKCS#11 call on the module (see TimeoutError);
	// 0 means DefaultCallTimeout. A module already loaded in the process
	// keeps the bound it was loaded with.
	Timeout time.Duration
	// OneCallAtATime runs one PKCS#11 call at a time on the whole module,
	// for a module that is not safe to call from several threads at once
	// (gate.go). Once one load asks for it, the module keeps it for the
	// Tokens opened after.
	OneCallAtATime bool
}

// Module is a handle on a loaded and initialised PKCS#11 library. A
// process loads each library once: LoadModule of a path already loaded
// returns a new handle on the same library, and the library is finalised
// when the last handle is closed. Close every handle when done.
type Module struct {
	ctx   *pkcs11.Ctx
	raw   *rawModule
	path  string
	lib   *loadedModule
	once  sync.Once
	trace func(PKCS11) PKCS11
}

// loadedModule is one library as the process loaded it, shared by every
// Module handle on it.
type loadedModule struct {
	ctx    *pkcs11.Ctx
	raw    *rawModule
	key    string
	params string
	// paramsBuf is kept alive for as long as the module may read it.
	paramsBuf []byte
	refs      int
	// logins is the login state of each slot, which PKCS#11 keeps per
	// process and token, not per session.
	logins *loginTable
	// timeout bounds each call; wedged is set once one has not returned.
	timeout time.Duration
	wedged  *wedge
}

// modules holds every library the process has loaded, by real path.
var modules = struct {
	sync.Mutex
	byPath map[string]*loadedModule
}{byPath: map[string]*loadedModule{}}

// moduleKey names a library file the same way however its path is spelt.
func moduleKey(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	return path
}

// LoadModule loads and initialises the library, or, when this process has
// already loaded it, returns another handle on it (C_Initialize runs once
// per process). Errors wrap ErrModule and say how to fix the path.
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
	key := moduleKey(cfg.Path)
	modules.Lock()
	defer modules.Unlock()
	if lib, ok := modules.byPath[key]; ok {
		if lib.params != cfg.Params {
			return nil, fmt.Errorf("%w: %s is already loaded in this process with other library parameters; a module is initialised once per process, so give every use of it the same --module-params", ErrModule, cfg.Path)
		}
		lib.refs++
		if cfg.OneCallAtATime {
			lib.logins.gate.setOneAtATime()
		}
		return &Module{ctx: lib.ctx, raw: lib.raw, path: cfg.Path, lib: lib}, nil
	}
	ctx := pkcs11.New(cfg.Path)
	if ctx == nil {
		return nil, fmt.Errorf("%w: %s could not be loaded as a PKCS#11 library (dlopen or C_GetFunctionList failed): check that it is the vendor's PKCS#11 module for this architecture", ErrModule, cfg.Path)
	}
	if cfg.Timeout < 0 {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: --pkcs11-timeout %v: give a positive duration such as 2m", ErrModule, cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultCallTimeout
	}
	lib := &loadedModule{ctx: ctx, key: key, params: cfg.Params, refs: 1, logins: newLoginTable(), timeout: cfg.Timeout, wedged: &wedge{}}
	if cfg.OneCallAtATime {
		lib.logins.gate.setOneAtATime()
	}
	var opts []pkcs11.InitializeOption
	if cfg.Params != "" {
		// A NUL-terminated copy the C side may read during C_Initialize.
		lib.paramsBuf = append([]byte(cfg.Params), 0)
		opts = append(opts, pkcs11.InitializeWithReserved(unsafe.Pointer(&lib.paramsBuf[0])))
	}
	if _, err := bounded(lib.wedged, lib.timeout, "C_Initialize", func() (none, error) { return none{}, ctx.Initialize(opts...) }); err != nil {
		var te *TimeoutError
		if errors.As(err, &te) {
			// Still running in the module: nothing more is called on it.
			return nil, fmt.Errorf("%w: %s: %w", ErrModule, cfg.Path, err)
		}
		ctx.Destroy()
		return nil, fmt.Errorf("%w: %s: %v", ErrModule, cfg.Path, newError("C_Initialize", err))
	}
	// The one-call wrap only some tokens need (NSS softokn's AES key wrap)
	// is used when it can be had on this one handle; a module it cannot be
	// had on loads all the same, and only that wrap is refused on it.
	if raw, err := openRawModule(ctx, cfg.Path); err == nil {
		lib.raw = raw
	}
	modules.byPath[key] = lib
	return &Module{ctx: ctx, raw: lib.raw, path: cfg.Path, lib: lib}, nil
}

// Close gives up this handle; the last handle on a library finalises and
// unloads it. Close every Token opened from the module first. Closing a
// handle twice is harmless.
func (m *Module) Close() {
	if m == nil || m.lib == nil {
		return
	}
	m.once.Do(func() {
		modules.Lock()
		defer modules.Unlock()
		m.lib.refs--
		if m.lib.refs > 0 {
			return
		}
		delete(modules.byPath, m.lib.key)
		if m.lib.wedged.get() != nil {
			// A call is still running inside the module: finalising or
			// unloading it under that call could hang or crash.
			return
		}
		m.lib.raw.close()
		_ = m.lib.ctx.Finalize()
		m.lib.ctx.Destroy()
	})
	m.ctx = nil
}

// Trace makes every Token opened through this handle from now on call
// PKCS#11 through wrap(p), e.g. to count calls in tests. Production code
// does not use it.
func (m *Module) Trace(wrap func(PKCS11) PKCS11) { m.trace = wrap }

// TokenSelector picks one token. Exactly one field must be set.
type TokenSelector struct {
	Label  string
	Serial string
	// Slot is a slot ID as the module numbers them; nil when not used.
	Slot *uint
	// Manufacturer and Model, when set, must match too (PKCS#11 URIs).
	Manufacturer, Model string
	// The slot's and the library's attributes (PKCS#11 URIs), when set,
	// must match too: C_GetSlotInfo's description and manufacturer,
	// C_GetInfo's manufacturer, description and version ("M" or "M.N").
	SlotDescription, SlotManufacturer                       string
	LibraryManufacturer, LibraryDescription, LibraryVersion string
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
		for _, a := range []struct{ name, v string }{
			{"slot-description", s.SlotDescription}, {"slot-manufacturer", s.SlotManufacturer},
			{"library-manufacturer", s.LibraryManufacturer}, {"library-description", s.LibraryDescription},
			{"library-version", s.LibraryVersion},
		} {
			if a.v != "" {
				parts = append(parts, fmt.Sprintf("%s %q", a.name, a.v))
			}
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
// criterion of the selection; slot and library attributes are read from p
// only when the selection names one. Text is compared as tokenText leaves
// it, on both sides.
func (s TokenSelector) matches(p PKCS11, slot uint, id TokenIdentity) (bool, error) {
	eq := func(want, got string) bool { return want == "" || tokenText(want) == got }
	if !(s.Slot == nil || *s.Slot == slot) || !eq(s.Label, id.Label) || !eq(s.Serial, id.Serial) ||
		!eq(s.Manufacturer, id.Manufacturer) || !eq(s.Model, id.Model) {
		return false, nil
	}
	if s.SlotDescription != "" || s.SlotManufacturer != "" {
		si, err := p.GetSlotInfo(slot)
		if err != nil {
			return false, fmt.Errorf("the selection names the slot's description or manufacturer, which could not be read: %w", newError("C_GetSlotInfo", err))
		}
		if !eq(s.SlotDescription, tokenText(si.SlotDescription)) || !eq(s.SlotManufacturer, tokenText(si.ManufacturerID)) {
			return false, nil
		}
	}
	if s.LibraryManufacturer != "" || s.LibraryDescription != "" || s.LibraryVersion != "" {
		info, err := p.GetInfo()
		if err != nil {
			return false, fmt.Errorf("the selection names the library's manufacturer, description or version, which could not be read: %w", newError("C_GetInfo", err))
		}
		if !eq(s.LibraryManufacturer, tokenText(info.ManufacturerID)) || !eq(s.LibraryDescription, tokenText(info.LibraryDescription)) {
			return false, nil
		}
		if s.LibraryVersion != "" {
			v, err := parseLibraryVersion(s.LibraryVersion)
			if err != nil {
				return false, err
			}
			if v != [2]uint8{info.LibraryVersion.Major, info.LibraryVersion.Minor} {
				return false, nil
			}
		}
	}
	return true, nil
}

// objectText is a CKA_LABEL as text: the attribute has the length the
// token gives it, so spaces in it are the label's own, but a module that
// NUL-terminates or NUL-pads it (tpm2-pkcs11) ends it at the first NUL.
func objectText(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// tokenText is a text field as a token gives it (a label, manufacturer,
// model, serial or description), normalised for matching, printing and
// JSON: PKCS#11 pads these fixed-length fields with spaces, and some
// modules (tpm2-pkcs11's model) with NUL bytes; the text ends at the
// first NUL, as a C string does, and padding is trimmed on both sides.
func tokenText(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
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
		Label:        tokenText(ti.Label),
		Serial:       tokenText(ti.SerialNumber),
		Manufacturer: tokenText(ti.ManufacturerID),
		Model:        tokenText(ti.Model),
		Firmware:     fmt.Sprintf("%d.%d", ti.FirmwareVersion.Major, ti.FirmwareVersion.Minor),
	}
}

// Token is one token of a loaded module, with a pool of read-write
// sessions on it. Every operation takes a session from the pool for as long
// as it runs and gives it back, so operations on one Token may run from
// several goroutines at once: each runs on a session of its own, and the
// pool opens sessions as they are needed (up to MaxSessions) and keeps
// them open until Close. The login is the token's, not a session's, as
// PKCS#11 defines it: Login logs in once and every session of the process
// on that token shares it, and the user is logged out only when the last
// Token that logged in on it is closed. Login, LoginSO and Close are meant
// to be called by the one goroutine that owns the Token, Close after every
// other goroutine is done with it. PKCS#11 calls pass the module's gate
// (gate.go): on SoftHSM2 (Quirks.CreatesApartFromSearches) a call that
// creates a token object never runs beside C_FindObjectsInit, a destroy or
// a login runs alone, and every other call runs beside the others; with
// ModuleConfig.OneCallAtATime every call runs alone. Keys (Key) are plain values,
// safe to share; an AuditSigner takes its own session per signature.
//
// Safe from several goroutines at once, on the Token OpenToken returns:
// every exported method except Login, LoginSO and Close, that is the key
// operations (Generate, GenerateAES256, FindKey, FindSecretKey,
// FindAuditKey, LabelInUse, ListKeys, Inventory, PublicKeyDER, HMAC,
// WrapOAEP, WrapRSAAES, ApproveWrappingKey, IsApproved, GenerateAuditKey,
// AuditSigner and its Sign) and the capability questions (Capabilities and every method of
// what it returns, Check, DualControlSupported, NativeRSAAES, ProbeOAEP,
// ProbeRSAAES, HasMechanism, Quirks, Identity). Each runs its PKCS#11
// calls on a session no other goroutine is using; the probes behind the
// capability questions run one at a time and each answer is probed once
// per Token and kept (under a lock) for every goroutine. The Token holds
// no session of its own outside an operation, so there is no shared
// session to call PKCS#11 on: code in this package calls PKCS#11 only on
// a bound view (see bound) or through withSession.
type Token struct {
	p    PKCS11
	slot uint
	// session is, on a bound view (see bound), the one session every call
	// of that view runs on, held by one goroutine; on a bare Token, the one
	// session it was built around. The Token OpenToken returns (root) has
	// none (0): its operations take one from the pool.
	session pkcs11.SessionHandle
	// root marks the Token OpenToken returns, whose operations take a
	// session from the pool; its views are not root.
	root bool
	id   TokenIdentity
	// shared is the state every view of the Token shares; nil on a bare
	// Token a unit test builds around one session.
	shared *tokenShared
	// loggedIn is the login of a bare Token (shared == nil).
	loggedIn bool
	// native caches NativeRSAAES per OAEP hash on a bare Token.
	native map[OAEPHash]nativeCheck
	// caps is what a bare Token can do, read and probed once; Tokens with
	// shared state keep it there.
	caps *Capabilities
}

// tokenShared is what every view of one Token shares.
type tokenShared struct {
	pool   *sessionPool
	logins *loginTable
	// mu guards held. Lock order: mu, then a session, then
	// nativeMu.
	mu sync.Mutex
	// held is the user type this Token logged in as, or noLogin.
	held uint
	// native caches NativeRSAAES per OAEP hash, under nativeMu.
	native   map[OAEPHash]nativeCheck
	nativeMu sync.Mutex
	// caps is what the token can do, read once under capsMu (a leaf lock:
	// nothing else is taken while it is held) and probed under its own
	// locks (see Capabilities).
	caps   *Capabilities
	capsMu sync.Mutex
	// root is the Token OpenToken returned, whose pool the exported
	// methods of Capabilities take sessions from.
	root *Token
	// probes keeps ProbeOAEP and ProbeRSAAES answers, under probeMu.
	probes  map[string]error
	probeMu sync.Mutex
}

// OpenToken finds the one token sel names and opens a read-write session on
// it. When no token matches, the error lists the tokens that are present.
func (m *Module) OpenToken(sel TokenSelector) (*Token, error) {
	if m == nil || m.ctx == nil {
		return nil, fmt.Errorf("%w: the module handle is closed", ErrModule)
	}
	var p PKCS11 = m.bounded()
	if m.trace != nil {
		p = m.trace(p)
	}
	return openTokenWith(p, sel, m.lib.logins)
}

// bounded is the module's PKCS11, every call bounded by its timeout.
func (m *Module) bounded() PKCS11 {
	return boundedP11{p: moduleCtx{m.ctx, m.raw}, d: m.lib.timeout, w: m.lib.wedged}
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
	if c.raw == nil {
		return nil, errNoOneCall
	}
	n, err := c.raw.wrapKeyLen(sh, mech, wrappingKey, key)
	if err != nil {
		return nil, err
	}
	return c.raw.wrapKeySized(sh, mech, wrappingKey, key, kwpOutputLen(n))
}

// LabelOneCall reads o's CKA_LABEL in one C_GetAttributeValue
// (rawModule.labelOneCall); errNoOneCall when the handle has no raw module.
func (c moduleCtx) LabelOneCall(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) ([]byte, error) {
	if c.raw == nil {
		return nil, errNoOneCall
	}
	return c.raw.labelOneCall(sh, o)
}

// errNoOneCall says the module handle cannot make a one-call C_WrapKey.
var errNoOneCall = errors.New("this module handle cannot make the one-call C_WrapKey the token's AES key wrap needs")

func openToken(p PKCS11, sel TokenSelector) (*Token, error) {
	return openTokenWith(p, sel, newLoginTable())
}

// openTokenWith opens the token sel names, sharing logins with every other
// Token of the same module.
func openTokenWith(p PKCS11, sel TokenSelector, logins *loginTable) (*Token, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	// Until the token is known, only the operator's opt-in gates calls.
	ungated := p
	p = logins.gate.gate(ungated, Quirks{})
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
		ok, err := sel.matches(p, slot, id)
		if err != nil {
			return nil, err
		}
		if ok {
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
	// Every call from here on passes the module's gate, as the token's
	// threading needs (gate.go).
	p = logins.gate.gate(ungated, QuirksOf(id))
	// The first session is opened now, so that a token that cannot open
	// one says so here; it goes into the pool like every other.
	pool := newSessionPool(p, id.Slot, MaxSessions)
	first, err := pool.get()
	if err != nil {
		return nil, err
	}
	pool.put(first)
	tok := &Token{p: p, slot: id.Slot, root: true, id: id, shared: &tokenShared{pool: pool, logins: logins, held: noLogin}}
	tok.shared.root = tok
	return tok, nil
}

// Identity returns the token's label, serial, manufacturer and model.
func (t *Token) Identity() TokenIdentity { return t.id }

// Login logs the normal user in. It is never retried: a wrong PIN counts
// against the token's lockout limit. When another Token of this process is
// already logged in as the user on the same token, PKCS#11 shares that
// login and no second C_Login is made.
func (t *Token) Login(pin string) error {
	if pin == "" {
		return fmt.Errorf("%w: the PIN is empty: set KMSBRIDGE_PIN, or give --pin-file FILE, or run on a terminal to be prompted", ErrNoPIN)
	}
	return t.login(pkcs11.CKU_USER, pin)
}

// LoginPIN is Login for a PIN held in a byte slice, as kmsbridge's own
// PIN readers hold it: pin is zeroed when LoginPIN returns, whatever
// happened. miekg/pkcs11 takes the PIN as a Go string, so the slice is
// passed as a string view of the same bytes (no copy of ours survives the
// zeroing); the module binding still copies it into C memory for the
// C_Login call and frees it without clearing it, and the token's own
// library may keep it, which is residue kmsbridge cannot reach
// (docs/threat-model.md).
func (t *Token) LoginPIN(pin []byte) error {
	defer clear(pin)
	if len(pin) == 0 {
		return t.Login("")
	}
	return t.login(pkcs11.CKU_USER, pinView(pin))
}

// LoginSOPIN is LoginPIN for the Security Officer.
func (t *Token) LoginSOPIN(pin []byte) error {
	defer clear(pin)
	if len(pin) == 0 {
		return t.LoginSO("")
	}
	return t.login(pkcs11.CKU_SO, pinView(pin))
}

// pinView is a string that shares pin's bytes: valid, and unchanged, only
// until pin is cleared, so it is used for the C_Login call alone and
// never kept.
func pinView(pin []byte) string { return unsafe.String(&pin[0], len(pin)) }

// login logs in as userType, once per token and process.
func (t *Token) login(userType uint, pin string) error {
	if t.shared == nil {
		err := t.p.Login(t.session, userType, pin)
		if userType == pkcs11.CKU_USER && errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			err = nil
		}
		if err != nil {
			return newError("C_Login", err)
		}
		t.loggedIn = true
		return nil
	}
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	if t.shared.held == userType {
		return nil
	}
	if t.shared.held != noLogin {
		return fmt.Errorf("this token handle is already logged in as another user: open a second handle for the %s", userTypeName(userType))
	}
	err := t.shared.logins.acquire(t.slot, userType, func() error {
		return t.withSession(func(s pkcs11.SessionHandle) error {
			err := t.p.Login(s, userType, pin)
			if userType == pkcs11.CKU_USER && errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
				return nil
			}
			return newError("C_Login", err)
		})
	})
	if err != nil {
		return err
	}
	t.shared.held = userType
	return nil
}

// Close gives up this Token's share of the login (logging out when it was
// the last Token of the process logged in on the token) and closes its
// sessions. Call it after every goroutine using the Token is done.
func (t *Token) Close() error {
	if t == nil || t.p == nil {
		return nil
	}
	if t.shared == nil {
		if t.loggedIn {
			_ = t.p.Logout(t.session)
		}
		err := t.p.CloseSession(t.session)
		t.p = nil
		return newError("C_CloseSession", err)
	}
	t.shared.mu.Lock()
	held := t.shared.held
	t.shared.held = noLogin
	t.shared.mu.Unlock()
	if held != noLogin {
		t.shared.logins.release(t.slot, held, func() error {
			return t.withSession(func(s pkcs11.SessionHandle) error {
				return newError("C_Logout", t.p.Logout(s))
			})
		})
	}
	err := t.shared.pool.close()
	t.p = nil
	return err
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
	p := m.bounded()
	slots, err := p.GetSlotList(true)
	if err != nil {
		return nil, newError("C_GetSlotList", err)
	}
	var out []SlotInfo
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
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
