package hsm

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
)

// DefaultCallTimeout bounds one PKCS#11 call when the caller sets none: a
// network HSM generating an RSA-4096 key takes seconds, never minutes.
const DefaultCallTimeout = 2 * time.Minute

// ErrTokenUnresponsive means a PKCS#11 call did not return in time, or the
// token stopped answering (removed, or the server of a remote token gone).
// Errors that mean it say which call, and what is known of its effect.
var ErrTokenUnresponsive = errors.New("the token did not answer")

// TimeoutError is a PKCS#11 call that did not return within the bound.
// The call is still running inside the module, which may hold locks, so
// the Module makes no further call on it (not even C_Finalize): the
// process must exit, and a re-run starts afresh.
type TimeoutError struct {
	Call  string
	After time.Duration
	// Effect says plainly what is known of the call's effect.
	Effect string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s did not return within %v (--pkcs11-timeout): %s; kmsbridge makes no further call on this module. Check the token (its network, its server, its load), then run the same command again: the journal finds what earlier steps left", e.Call, e.After, e.Effect)
}

// Is makes errors.Is(err, ErrTokenUnresponsive) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTokenUnresponsive }

// effects says, per call, what is known of a call whose outcome is
// unknown: whether it may have changed anything in the token.
var effects = map[string]string{
	"C_CreateObject":    "the token may or may not have created the object; kmsbridge creates only session objects this way, which end with the session when this process exits",
	"C_GenerateKey":     "the token may or may not have generated the key; if it did, it is in the token under the label asked for",
	"C_GenerateKeyPair": "the token may or may not have generated the key pair; if it did, it is in the token under the label asked for",
	"C_DestroyObject":   "the token may or may not have destroyed the object",
	"C_Login":           "the login may or may not have been counted against the PIN's retry limit; nothing else changed",
	"C_WrapKey":         "nothing in the token changes by a wrap, and no wrapped material was received",
}

// effectOf is what is known of call's effect when its outcome is unknown.
func effectOf(call string) string {
	if e, ok := effects[call]; ok {
		return e
	}
	return "the call only reads or works on this session, so nothing in the token was changed by it"
}

// ckrRPCFailed is the all-ones CK_RV ((CK_RV)-1) an RPC client module
// returns when the call did not reach the token: Caml Crush's client
// library answers every call with it once its pkcs11proxyd worker is gone
// (docs/tokens.md). No PKCS#11 return value has it.
const ckrRPCFailed = pkcs11.Error(^uint(0))

// gone reports whether code says the token itself stopped answering.
func gone(code pkcs11.Error) bool {
	switch code {
	case pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, ckrRPCFailed:
		return true
	}
	return false
}

// GoneError is a call the token stopped answering: removed, or its RPC
// server gone. Its effect is unknown the same way a timed-out call's is.
type GoneError struct {
	Call   string
	Code   pkcs11.Error
	Effect string
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("%s: %s (%#x): the token stopped answering (removed, or the server of a remote token such as `p11-kit server` or Caml Crush's pkcs11proxyd is gone): %s. Bring the token back, then run the same command again: the journal finds what earlier steps left", e.Call, ckrName(e.Code), uint(e.Code), e.Effect)
}

// Is makes errors.Is true for ErrTokenUnresponsive and for the CKR code.
func (e *GoneError) Is(target error) bool {
	var code pkcs11.Error
	return target == ErrTokenUnresponsive || errors.As(target, &code) && code == e.Code
}

// wedge is one module's state under the bound: once a call has timed out
// the module is left alone for good.
type wedge struct {
	mu  sync.Mutex
	err *TimeoutError
}

func (w *wedge) get() *TimeoutError {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *wedge) set(e *TimeoutError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = e
	}
}

// bounded runs f, one PKCS#11 call named call, and waits at most d for it
// (d <= 0: no bound). A call that does not return in time is left running
// in its goroutine and answered with a *TimeoutError, and every later call
// on the module with the same error at once. A call the token stopped
// answering is a *GoneError.
func bounded[T any](w *wedge, d time.Duration, call string, f func() (T, error)) (T, error) {
	var zero T
	if e := w.get(); e != nil {
		return zero, e
	}
	if d <= 0 {
		v, err := f()
		return v, goneErr(call, err)
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.v, goneErr(call, r.err)
	case <-timer.C:
		e := &TimeoutError{Call: call, After: d, Effect: effectOf(call)}
		w.set(e)
		return zero, e
	}
}

// goneErr turns a code that says the token stopped answering into a
// *GoneError; other errors are returned as they are.
func goneErr(call string, err error) error {
	var code pkcs11.Error
	if err == nil || !errors.As(err, &code) || !gone(code) {
		return err
	}
	return &GoneError{Call: call, Code: code, Effect: effectOf(call)}
}

// boundedP11 is the PKCS11 of a loaded module with every call bounded.
type boundedP11 struct {
	p PKCS11
	d time.Duration
	w *wedge
}

// none is the result of a call that returns only an error.
type none struct{}

func (b boundedP11) do(call string, f func() error) error {
	_, err := bounded(b.w, b.d, call, func() (none, error) { return none{}, f() })
	return err
}

func (b boundedP11) GetInfo() (pkcs11.Info, error) {
	return bounded(b.w, b.d, "C_GetInfo", b.p.GetInfo)
}
func (b boundedP11) GetSlotList(present bool) ([]uint, error) {
	return bounded(b.w, b.d, "C_GetSlotList", func() ([]uint, error) { return b.p.GetSlotList(present) })
}
func (b boundedP11) GetSlotInfo(slot uint) (pkcs11.SlotInfo, error) {
	return bounded(b.w, b.d, "C_GetSlotInfo", func() (pkcs11.SlotInfo, error) { return b.p.GetSlotInfo(slot) })
}
func (b boundedP11) GetTokenInfo(slot uint) (pkcs11.TokenInfo, error) {
	return bounded(b.w, b.d, "C_GetTokenInfo", func() (pkcs11.TokenInfo, error) { return b.p.GetTokenInfo(slot) })
}
func (b boundedP11) GetMechanismList(slot uint) ([]*pkcs11.Mechanism, error) {
	return bounded(b.w, b.d, "C_GetMechanismList", func() ([]*pkcs11.Mechanism, error) { return b.p.GetMechanismList(slot) })
}
func (b boundedP11) GetMechanismInfo(slot uint, m []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error) {
	return bounded(b.w, b.d, "C_GetMechanismInfo", func() (pkcs11.MechanismInfo, error) { return b.p.GetMechanismInfo(slot, m) })
}
func (b boundedP11) OpenSession(slot, flags uint) (pkcs11.SessionHandle, error) {
	return bounded(b.w, b.d, "C_OpenSession", func() (pkcs11.SessionHandle, error) { return b.p.OpenSession(slot, flags) })
}
func (b boundedP11) CloseSession(sh pkcs11.SessionHandle) error {
	return b.do("C_CloseSession", func() error { return b.p.CloseSession(sh) })
}
func (b boundedP11) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	return b.do("C_Login", func() error { return b.p.Login(sh, userType, pin) })
}
func (b boundedP11) Logout(sh pkcs11.SessionHandle) error {
	return b.do("C_Logout", func() error { return b.p.Logout(sh) })
}
func (b boundedP11) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	return b.do("C_FindObjectsInit", func() error { return b.p.FindObjectsInit(sh, temp) })
}
func (b boundedP11) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	type found struct {
		hs   []pkcs11.ObjectHandle
		more bool
	}
	r, err := bounded(b.w, b.d, "C_FindObjects", func() (found, error) {
		hs, more, err := b.p.FindObjects(sh, max)
		return found{hs, more}, err
	})
	return r.hs, r.more, err
}
func (b boundedP11) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	return b.do("C_FindObjectsFinal", func() error { return b.p.FindObjectsFinal(sh) })
}
func (b boundedP11) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	return bounded(b.w, b.d, "C_GetAttributeValue", func() ([]*pkcs11.Attribute, error) { return b.p.GetAttributeValue(sh, o, a) })
}
func (b boundedP11) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	return bounded(b.w, b.d, "C_CreateObject", func() (pkcs11.ObjectHandle, error) { return b.p.CreateObject(sh, temp) })
}
func (b boundedP11) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	return b.do("C_DestroyObject", func() error { return b.p.DestroyObject(sh, oh) })
}
func (b boundedP11) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	return bounded(b.w, b.d, "C_GenerateKey", func() (pkcs11.ObjectHandle, error) { return b.p.GenerateKey(sh, m, temp) })
}
func (b boundedP11) WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wrappingkey, key pkcs11.ObjectHandle) ([]byte, error) {
	return bounded(b.w, b.d, "C_WrapKey", func() ([]byte, error) { return b.p.WrapKey(sh, m, wrappingkey, key) })
}
func (b boundedP11) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	type pair struct{ pub, priv pkcs11.ObjectHandle }
	r, err := bounded(b.w, b.d, "C_GenerateKeyPair", func() (pair, error) {
		pub, priv, err := b.p.GenerateKeyPair(sh, m, public, private)
		return pair{pub, priv}, err
	})
	return r.pub, r.priv, err
}
func (b boundedP11) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	return b.do("C_SignInit", func() error { return b.p.SignInit(sh, m, o) })
}
func (b boundedP11) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	return bounded(b.w, b.d, "C_Sign", func() ([]byte, error) { return b.p.Sign(sh, message) })
}
func (b boundedP11) GenerateRandom(sh pkcs11.SessionHandle, length int) ([]byte, error) {
	return bounded(b.w, b.d, "C_GenerateRandom", func() ([]byte, error) { return b.p.GenerateRandom(sh, length) })
}

// WrapKeyOneCall is the one-call wrap, bounded, when the module has it.
func (b boundedP11) WrapKeyOneCall(sh pkcs11.SessionHandle, mech uint, wrappingKey, key pkcs11.ObjectHandle) ([]byte, error) {
	ow, ok := b.p.(oneCallWrapper)
	if !ok {
		return nil, errNoOneCall
	}
	return bounded(b.w, b.d, "C_WrapKey", func() ([]byte, error) { return ow.WrapKeyOneCall(sh, mech, wrappingKey, key) })
}

// LabelOneCall forwards the one-call label read (oneCallLabeller), bounded
// like every other call.
func (b boundedP11) LabelOneCall(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) ([]byte, error) {
	lr, ok := b.p.(oneCallLabeller)
	if !ok {
		return nil, errNoOneCall
	}
	return bounded(b.w, b.d, "C_GetAttributeValue", func() ([]byte, error) { return lr.LabelOneCall(sh, o) })
}
