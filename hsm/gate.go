package hsm

import (
	"sync"

	"github.com/miekg/pkcs11"
)

// Concurrency on one module. PKCS#11 lets an application that initialised
// the library with CKF_OS_LOCKING_OK (miekg/pkcs11 does) call it from
// several threads at once, as long as no session is used by two threads at
// once; the session pool (pool.go) gives each operation a session of its
// own, so that is all most tokens need. Some tokens need more, and the
// gate below gives it, call by call, never more than the token needs
// (docs/tokens.md, "Concurrency"):
//
//   - gateNone: calls run at once (NSS softokn, opencryptoki, unknown
//     tokens: PKCS#11's own rule).
//   - gateCreatesApart: a call that creates a token object (CKA_TOKEN
//     true: a file in SoftHSM2's store) never runs beside C_FindObjectsInit,
//     which reloads every token object from its file, the one being
//     written included. Creates run beside creates, searches beside
//     searches, and every other call beside any call. A call that destroys
//     a token object, logs in or out, or closes a session runs alone
//     (SoftHSM2 2.6: Quirks.CreatesApartFromSearches).
//   - gateOneAtATime: one call at a time on the whole module, for a module
//     that is not safe from several threads at all: the operator's opt-in
//     (ModuleConfig.OneCallAtATime, --pkcs11-one-call-at-a-time).
//
// The gate is the module's, shared by every Token on it: a module's
// object store is one for all its sessions.
type gateMode int

const (
	gateNone gateMode = iota
	gateCreatesApart
	gateOneAtATime
)

// callGate is the lock of one loaded module.
type callGate struct {
	// mu: a call that runs alone holds it for writing, every other call
	// for reading.
	mu sync.RWMutex
	// store keeps token-object creates and C_FindObjectsInit apart.
	store twoSided
	// opt guards oneAtATime, the operator's opt-in for the whole module.
	opt        sync.Mutex
	oneAtATime bool
	// sessionObjects are the session objects made through the gate and
	// not yet destroyed, each with its session: destroying one of them
	// touches no token object (sessionObject).
	objs           sync.Mutex
	sessionObjects map[pkcs11.ObjectHandle]pkcs11.SessionHandle
}

// madeSession notes session objects sh's create made; forgotten when
// destroyed or when sh closes.
func (g *callGate) madeSession(sh pkcs11.SessionHandle, hs ...pkcs11.ObjectHandle) {
	g.objs.Lock()
	defer g.objs.Unlock()
	if g.sessionObjects == nil {
		g.sessionObjects = map[pkcs11.ObjectHandle]pkcs11.SessionHandle{}
	}
	for _, h := range hs {
		g.sessionObjects[h] = sh
	}
}

// sessionObject reports whether oh is a session object made through the
// gate, and forgets it: it is about to be destroyed.
func (g *callGate) sessionObject(oh pkcs11.ObjectHandle) bool {
	g.objs.Lock()
	defer g.objs.Unlock()
	_, ok := g.sessionObjects[oh]
	delete(g.sessionObjects, oh)
	return ok
}

// sessionClosed forgets sh's session objects: closing it destroyed them.
func (g *callGate) sessionClosed(sh pkcs11.SessionHandle) {
	g.objs.Lock()
	defer g.objs.Unlock()
	for h, s := range g.sessionObjects {
		if s == sh {
			delete(g.sessionObjects, h)
		}
	}
}

// The two sides of callGate.store.
const (
	sideCreates  = 0
	sideSearches = 1
)

// twoSided is a lock with two sides: any number of holders of one side at
// once, never both sides at once. A side that waits goes next: once a
// holder of the other side is waiting, no new holder of this side enters
// until that side has had its turn, so neither side starves the other.
type twoSided struct {
	mu      sync.Mutex
	cond    sync.Cond
	active  [2]int
	waiting [2]int
	turn    int
}

// enter waits until side may hold the lock and holds it.
func (l *twoSided) enter(side int) {
	other := 1 - side
	l.mu.Lock()
	l.cond.L = &l.mu
	if l.active[other] > 0 {
		l.turn = side
	}
	l.waiting[side]++
	for l.active[other] > 0 || l.waiting[other] > 0 && l.turn != side {
		l.cond.Wait()
	}
	l.waiting[side]--
	l.active[side]++
	l.mu.Unlock()
}

// leave gives up one hold of side; the last holder hands the turn over.
func (l *twoSided) leave(side int) {
	l.mu.Lock()
	l.active[side]--
	if l.active[side] == 0 {
		l.turn = 1 - side
		l.cond.Broadcast()
	}
	l.mu.Unlock()
}

func (g *callGate) setOneAtATime() {
	g.opt.Lock()
	g.oneAtATime = true
	g.opt.Unlock()
}

// gated is a PKCS11 whose calls pass the module's gate in mode. It names
// every call of PKCS11 itself, not by embedding, so that a call added to
// PKCS11 does not compile until it is classed here as one that creates
// (or destroys, or logs in) or one that does not.
type gated struct {
	p    PKCS11
	g    *callGate
	mode gateMode
}

// gate wraps p in g's gate for a token of quirks q; p itself when neither
// the token nor the operator asks for one.
func (g *callGate) gate(p PKCS11, q Quirks) PKCS11 {
	mode := gateNone
	one := false
	if g != nil {
		g.opt.Lock()
		one = g.oneAtATime
		g.opt.Unlock()
	}
	switch {
	case g == nil:
	case one:
		mode = gateOneAtATime
	case q.CreatesApartFromSearches:
		mode = gateCreatesApart
	}
	if mode == gateNone {
		return p
	}
	return gated{p: p, g: g, mode: mode}
}

// changing is the gate of a call that destroys an object, changes the
// login or closes a session: it runs alone in every mode but gateNone.
// SoftHSM2 2.6 looks an object up in the token's set before it takes the
// token's lock to remove it, so a destroy must not run beside a create's
// insert into that set (docs/tokens.md, "Concurrency").
func (x gated) changing() func() {
	x.g.mu.Lock()
	return x.g.mu.Unlock
}

// creating is the gate of a call that creates objects from templates:
// apart from searches when one of them is a token object, else as using.
// A session object (CKA_TOKEN absent or false) lives in the module's
// memory, not in its object store: a search reads it under the store's
// own lock, not from a file being written.
func (x gated) creating(templates ...[]*pkcs11.Attribute) func() {
	for _, t := range templates {
		if onToken(t) {
			return x.side(sideCreates)
		}
	}
	return x.using()
}

// searching is the gate of C_FindObjectsInit: apart from token-object
// creates.
func (x gated) searching() func() {
	return x.side(sideSearches)
}

// side is the gate of a call of one side of the store's lock: alone in
// gateOneAtATime; in gateCreatesApart beside every call but those of the
// other side and those that run alone.
func (x gated) side(side int) func() {
	if x.mode == gateOneAtATime {
		x.g.mu.Lock()
		return x.g.mu.Unlock
	}
	x.g.mu.RLock()
	x.g.store.enter(side)
	return func() {
		x.g.store.leave(side)
		x.g.mu.RUnlock()
	}
}

// onToken reports whether template asks for a token object.
func onToken(template []*pkcs11.Attribute) bool {
	for _, a := range template {
		if a != nil && a.Type == pkcs11.CKA_TOKEN {
			return len(a.Value) > 0 && a.Value[0] != 0
		}
	}
	return false
}

// using is the gate of every other call: alone in gateOneAtATime, beside
// any call but those that run alone in gateCreatesApart.
func (x gated) using() func() {
	if x.mode == gateOneAtATime {
		x.g.mu.Lock()
		return x.g.mu.Unlock
	}
	x.g.mu.RLock()
	return x.g.mu.RUnlock
}

func (x gated) GetInfo() (pkcs11.Info, error) {
	defer x.using()()
	return x.p.GetInfo()
}
func (x gated) GetSlotList(present bool) ([]uint, error) {
	defer x.using()()
	return x.p.GetSlotList(present)
}
func (x gated) GetSlotInfo(slot uint) (pkcs11.SlotInfo, error) {
	defer x.using()()
	return x.p.GetSlotInfo(slot)
}
func (x gated) GetTokenInfo(slot uint) (pkcs11.TokenInfo, error) {
	defer x.using()()
	return x.p.GetTokenInfo(slot)
}
func (x gated) GetMechanismList(slot uint) ([]*pkcs11.Mechanism, error) {
	defer x.using()()
	return x.p.GetMechanismList(slot)
}
func (x gated) GetMechanismInfo(slot uint, m []*pkcs11.Mechanism) (pkcs11.MechanismInfo, error) {
	defer x.using()()
	return x.p.GetMechanismInfo(slot, m)
}
func (x gated) OpenSession(slot, flags uint) (pkcs11.SessionHandle, error) {
	defer x.using()()
	return x.p.OpenSession(slot, flags)
}

// CloseSession destroys the session's session objects.
func (x gated) CloseSession(sh pkcs11.SessionHandle) error {
	defer x.changing()()
	x.g.sessionClosed(sh)
	return x.p.CloseSession(sh)
}
func (x gated) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	defer x.changing()()
	return x.p.Login(sh, userType, pin)
}
func (x gated) Logout(sh pkcs11.SessionHandle) error {
	defer x.changing()()
	return x.p.Logout(sh)
}

// FindObjectsInit reloads every token object of SoftHSM2 2.6 from its
// file; the rest of a search reads the handles it found.
func (x gated) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	defer x.searching()()
	return x.p.FindObjectsInit(sh, temp)
}
func (x gated) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	defer x.using()()
	return x.p.FindObjects(sh, max)
}
func (x gated) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	defer x.using()()
	return x.p.FindObjectsFinal(sh)
}
func (x gated) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	defer x.using()()
	return x.p.GetAttributeValue(sh, o, a)
}
func (x gated) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer x.creating(temp)()
	h, err := x.p.CreateObject(sh, temp)
	if err == nil && !onToken(temp) {
		x.g.madeSession(sh, h)
	}
	return h, err
}

// DestroyObject runs alone, unless it destroys a session object made
// through the gate: SoftHSM2 2.6 removes one from its session store under
// that store's mutex, never touching the token's set of objects, so it
// runs as using (a wrap's KMS public key and ephemeral AES key, once per
// import).
func (x gated) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	if x.g.sessionObject(oh) {
		defer x.using()()
	} else {
		defer x.changing()()
	}
	return x.p.DestroyObject(sh, oh)
}
func (x gated) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer x.creating(temp)()
	h, err := x.p.GenerateKey(sh, m, temp)
	if err == nil && !onToken(temp) {
		x.g.madeSession(sh, h)
	}
	return h, err
}
func (x gated) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, pub, priv []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	defer x.creating(pub, priv)()
	hpub, hpriv, err := x.p.GenerateKeyPair(sh, m, pub, priv)
	if err == nil {
		if !onToken(pub) {
			x.g.madeSession(sh, hpub)
		}
		if !onToken(priv) {
			x.g.madeSession(sh, hpriv)
		}
	}
	return hpub, hpriv, err
}
func (x gated) WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wk, key pkcs11.ObjectHandle) ([]byte, error) {
	defer x.using()()
	return x.p.WrapKey(sh, m, wk, key)
}
func (x gated) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	defer x.using()()
	return x.p.SignInit(sh, m, o)
}
func (x gated) Sign(sh pkcs11.SessionHandle, msg []byte) ([]byte, error) {
	defer x.using()()
	return x.p.Sign(sh, msg)
}
func (x gated) GenerateRandom(sh pkcs11.SessionHandle, n int) ([]byte, error) {
	defer x.using()()
	return x.p.GenerateRandom(sh, n)
}

// WrapKeyOneCall is the one-call wrap, gated, when the module has it.
func (x gated) WrapKeyOneCall(sh pkcs11.SessionHandle, mech uint, wk, key pkcs11.ObjectHandle) ([]byte, error) {
	ow, ok := x.p.(oneCallWrapper)
	if !ok {
		return nil, errNoOneCall
	}
	defer x.using()()
	return ow.WrapKeyOneCall(sh, mech, wk, key)
}

var _ PKCS11 = gated{}

// LabelOneCall forwards the one-call label read (oneCallLabeller) through
// the gate, as GetAttributeValue.
func (x gated) LabelOneCall(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) ([]byte, error) {
	lr, ok := x.p.(oneCallLabeller)
	if !ok {
		return nil, errNoOneCall
	}
	defer x.using()()
	return lr.LabelOneCall(sh, o)
}
