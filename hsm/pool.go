package hsm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// MaxSessions is the most sessions one Token keeps open on its token at
// once; operations beyond it wait for a session to come back to the pool.
// Tokens that allow fewer read-write sessions fail C_OpenSession with
// CKR_SESSION_COUNT, which the pool then waits out the same way.
var MaxSessions = 64

// noLogin is the user type of a Token that is not logged in. CKU_SO is 0,
// so it cannot be the zero value.
const noLogin = ^uint(0)

func userTypeName(u uint) string {
	switch u {
	case pkcs11.CKU_SO:
		return "Security Officer"
	case pkcs11.CKU_USER:
		return "normal user"
	}
	return fmt.Sprintf("user type %d", u)
}

// sessionPool hands out read-write sessions on one slot, one goroutine per
// session at a time, opening them as they are needed up to a limit.
type sessionPool struct {
	p    PKCS11
	slot uint
	idle chan pkcs11.SessionHandle
	// room holds one token per session that is open or being opened.
	room chan struct{}

	mu     sync.Mutex
	open   []pkcs11.SessionHandle
	closed bool
}

func newSessionPool(p PKCS11, slot uint, max int) *sessionPool {
	if max < 1 {
		max = 1
	}
	return &sessionPool{p: p, slot: slot, idle: make(chan pkcs11.SessionHandle, max), room: make(chan struct{}, max)}
}

// get returns an idle session, opens a new one while there is room, or
// waits for one to be given back.
func (sp *sessionPool) get() (pkcs11.SessionHandle, error) {
	for {
		select {
		case s := <-sp.idle:
			return s, nil
		default:
		}
		select {
		case s := <-sp.idle:
			return s, nil
		case sp.room <- struct{}{}:
			s, err := sp.openOne()
			if err == nil {
				return s, nil
			}
			<-sp.room
			sp.mu.Lock()
			n := len(sp.open)
			sp.mu.Unlock()
			// A token that allows fewer sessions than the pool: wait for
			// one of those already open.
			if errors.Is(err, pkcs11.Error(pkcs11.CKR_SESSION_COUNT)) && n > 0 {
				s := <-sp.idle
				return s, nil
			}
			return 0, newError("C_OpenSession", err)
		}
	}
}

func (sp *sessionPool) openOne() (pkcs11.SessionHandle, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return 0, errors.New("the token handle is closed")
	}
	s, err := sp.p.OpenSession(sp.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, err
	}
	sp.open = append(sp.open, s)
	return s, nil
}

// put gives a session back for the next operation.
func (sp *sessionPool) put(s pkcs11.SessionHandle) { sp.idle <- s }

// close closes every session the pool opened. Nothing may hold one.
func (sp *sessionPool) close() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.closed = true
	var first error
	for _, s := range sp.open {
		if err := sp.p.CloseSession(s); err != nil && first == nil {
			first = newError("C_CloseSession", err)
		}
	}
	sp.open = nil
	return first
}

// size is the number of sessions the pool has open.
func (sp *sessionPool) size() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.open)
}

// withSession runs f on a session of its own from the pool, and gives the
// session back when f returns. On a bound view it runs f on the view's
// session.
func (t *Token) withSession(f func(pkcs11.SessionHandle) error) error {
	v, done, err := t.bound()
	if err != nil {
		return err
	}
	defer done()
	return f(v.session)
}

// bound returns a view of t whose calls all run on one session taken from
// the pool, and the function that gives the session back. Operations that
// need several calls on one session (find, sign, create-then-wrap) start
// with it; on a view that already has a session it returns the view
// itself, so operations calling one another share a session and never
// wait on the pool for a second one.
func (t *Token) bound() (*Token, func(), error) {
	if t.shared == nil || !t.root {
		return t, func() {}, nil
	}
	if t.p == nil {
		return nil, nil, errors.New("the token handle is closed")
	}
	s, err := t.shared.pool.get()
	if err != nil {
		return nil, nil, err
	}
	v := *t
	v.session, v.root = s, false
	return &v, func() { t.shared.pool.put(s) }, nil
}

// loginTable is the login state of each slot of one module, shared by
// every Token the process opens on it: PKCS#11 logs in an application, not
// a session, so the first Login on a slot calls C_Login and the last Close
// calls C_Logout.
type loginTable struct {
	mu    sync.Mutex
	slots map[uint]*slotLogin
	// gate is the module's call gate (gate.go), shared like the logins by
	// every Token on the module.
	gate *callGate
}

type slotLogin struct {
	userType uint
	holders  int
}

func newLoginTable() *loginTable {
	return &loginTable{slots: map[uint]*slotLogin{}, gate: &callGate{}}
}

// acquire takes a share of slot's login as userType, calling login when
// nobody in the process holds it yet.
func (lt *loginTable) acquire(slot, userType uint, login func() error) error {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if sl, ok := lt.slots[slot]; ok {
		if sl.userType != userType {
			return newError("C_Login", pkcs11.Error(pkcs11.CKR_USER_ANOTHER_ALREADY_LOGGED_IN))
		}
		sl.holders++
		return nil
	}
	if err := login(); err != nil {
		return err
	}
	lt.slots[slot] = &slotLogin{userType: userType, holders: 1}
	return nil
}

// release gives up a share of slot's login, calling logout when it was the
// last one.
func (lt *loginTable) release(slot, userType uint, logout func() error) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	sl, ok := lt.slots[slot]
	if !ok || sl.userType != userType {
		return
	}
	sl.holders--
	if sl.holders > 0 {
		return
	}
	delete(lt.slots, slot)
	_ = logout()
}

// ProbeOAEP finds out, inside the token and before any KMS call, whether it
// can wrap an AES-256 key with RSA-OAEP using h (see probeOAEP). The
// answer, yes or why not, is kept for the Token's lifetime, so a bulk
// import probes once, not once per key; an error that says nothing about
// the token's abilities (a failed call) is not kept.
func (t *Token) ProbeOAEP(h OAEPHash) error {
	return t.probeOnce("oaep "+h.String(), func(v *Token) error { return v.probeOAEP(h) })
}

// ProbeRSAAES finds out, inside the token and before any KMS call, whether
// it can do the RSA-AES wrap with OAEP hash h (see probeRSAAES); the answer
// is kept as ProbeOAEP's is.
func (t *Token) ProbeRSAAES(h OAEPHash) error {
	return t.probeOnce("rsa-aes "+h.String(), func(v *Token) error { return v.probeRSAAES(h) })
}

// probeOnce runs probe on a bound view once per key and Token, keeping
// nil and ErrWrapUnsupported answers. Lock order: the session (and
// serial) first, then probeMu, as for nativeMu.
func (t *Token) probeOnce(key string, probe func(*Token) error) error {
	v, done, err := t.bound()
	if err != nil {
		return err
	}
	defer done()
	if v.shared == nil {
		return probe(v)
	}
	v.shared.probeMu.Lock()
	defer v.shared.probeMu.Unlock()
	if err, ok := v.shared.probes[key]; ok {
		return err
	}
	err = probe(v)
	if err == nil || errors.Is(err, ErrWrapUnsupported) {
		if v.shared.probes == nil {
			v.shared.probes = map[string]error{}
		}
		v.shared.probes[key] = err
	}
	return err
}
