package hsm

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// sessionGuard is a PKCS11 that notices two calls on one session at the
// same time, which PKCS#11 forbids.
// It also counts, across sessions, a call that creates a token object running
// beside C_FindObjectsInit, or a destroy of a token object beside any call
// (what SoftHSM2 2.6
// cannot take: Quirks.CreatesApartFromSearches), calls running beside each
// other (what the gate lets through), and creates beside creates.
type sessionGuard struct {
	PKCS11
	mu      sync.Mutex
	busy    map[pkcs11.SessionHandle]int
	clashes []string
	// running is the calls in flight; creating, searching and alone those
	// of them that create a token object, start a search, or must run
	// alone.
	running, creating, searching, alone int
	// createOverlaps counts the overlaps the quirk forbids; overlaps any
	// call beside another; createsTogether creates beside creates.
	createOverlaps, overlaps, createsTogether int
	// sessionObjs are the session objects made through the guard: their
	// destroys may run beside other calls.
	sessionObjs map[pkcs11.ObjectHandle]bool
}

func (g *sessionGuard) noteSession(temp []*pkcs11.Attribute, h pkcs11.ObjectHandle, err error) {
	if err != nil || onToken(temp) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sessionObjs == nil {
		g.sessionObjs = map[pkcs11.ObjectHandle]bool{}
	}
	g.sessionObjs[h] = true
}

// The kinds of call sessionGuard tells apart.
const (
	callOther = iota
	callCreate
	callSearch
	callAlone
)

func (g *sessionGuard) enter(sh pkcs11.SessionHandle, call string) func() {
	kind := callOther
	switch call {
	case "C_DestroyObject":
		kind = callAlone
	case "C_FindObjectsInit":
		kind = callSearch
	}
	return g.enterKind(sh, call, kind)
}

// enterCreating is enter for a call that creates a token object when
// create is set.
func (g *sessionGuard) enterCreating(sh pkcs11.SessionHandle, call string, create bool) func() {
	if create {
		return g.enterKind(sh, call, callCreate)
	}
	return g.enterKind(sh, call, callOther)
}

func (g *sessionGuard) enterKind(sh pkcs11.SessionHandle, call string, kind int) func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy == nil {
		g.busy = map[pkcs11.SessionHandle]int{}
	}
	g.busy[sh]++
	if g.busy[sh] > 1 {
		g.clashes = append(g.clashes, fmt.Sprintf("%s on session %d while another call runs on it", call, sh))
	}
	switch {
	case g.alone > 0, kind == callAlone && g.running > 0,
		kind == callCreate && g.searching > 0, kind == callSearch && g.creating > 0:
		g.createOverlaps++
	}
	if kind == callCreate && g.creating > 0 {
		g.createsTogether++
	}
	if g.running > 0 {
		g.overlaps++
	}
	g.count(kind, 1)
	return func() {
		g.mu.Lock()
		g.busy[sh]--
		g.count(kind, -1)
		g.mu.Unlock()
	}
}

func (g *sessionGuard) count(kind, d int) {
	g.running += d
	switch kind {
	case callCreate:
		g.creating += d
	case callSearch:
		g.searching += d
	case callAlone:
		g.alone += d
	}
}

func (g *sessionGuard) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	defer g.enter(sh, "C_FindObjectsInit")()
	return g.PKCS11.FindObjectsInit(sh, temp)
}

func (g *sessionGuard) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	defer g.enter(sh, "C_FindObjects")()
	return g.PKCS11.FindObjects(sh, max)
}

func (g *sessionGuard) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	defer g.enter(sh, "C_FindObjectsFinal")()
	return g.PKCS11.FindObjectsFinal(sh)
}

func (g *sessionGuard) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	defer g.enter(sh, "C_GetAttributeValue")()
	return g.PKCS11.GetAttributeValue(sh, o, a)
}

func (g *sessionGuard) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer g.enterCreating(sh, "C_CreateObject", onToken(temp))()
	h, err := g.PKCS11.CreateObject(sh, temp)
	g.noteSession(temp, h, err)
	return h, err
}

func (g *sessionGuard) DestroyObject(sh pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	g.mu.Lock()
	session := g.sessionObjs[oh]
	delete(g.sessionObjs, oh)
	g.mu.Unlock()
	if session {
		defer g.enterKind(sh, "C_DestroyObject", callOther)()
	} else {
		defer g.enter(sh, "C_DestroyObject")()
	}
	return g.PKCS11.DestroyObject(sh, oh)
}

func (g *sessionGuard) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	defer g.enterCreating(sh, "C_GenerateKey", onToken(temp))()
	h, err := g.PKCS11.GenerateKey(sh, m, temp)
	g.noteSession(temp, h, err)
	return h, err
}

func (g *sessionGuard) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, pub, priv []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	defer g.enterCreating(sh, "C_GenerateKeyPair", onToken(pub) || onToken(priv))()
	hpub, hpriv, err := g.PKCS11.GenerateKeyPair(sh, m, pub, priv)
	g.noteSession(pub, hpub, err)
	g.noteSession(priv, hpriv, err)
	return hpub, hpriv, err
}

func (g *sessionGuard) WrapKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, wk, key pkcs11.ObjectHandle) ([]byte, error) {
	defer g.enter(sh, "C_WrapKey")()
	return g.PKCS11.WrapKey(sh, m, wk, key)
}

// WrapKeyOneCall passes the one-call wrap on, so tokens that need it (NSS)
// still get it through the guard.
func (g *sessionGuard) WrapKeyOneCall(sh pkcs11.SessionHandle, mech uint, wk, key pkcs11.ObjectHandle) ([]byte, error) {
	defer g.enter(sh, "C_WrapKey")()
	return g.PKCS11.(oneCallWrapper).WrapKeyOneCall(sh, mech, wk, key)
}

func (g *sessionGuard) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	defer g.enter(sh, "C_SignInit")()
	return g.PKCS11.SignInit(sh, m, o)
}

func (g *sessionGuard) Sign(sh pkcs11.SessionHandle, msg []byte) ([]byte, error) {
	defer g.enter(sh, "C_Sign")()
	return g.PKCS11.Sign(sh, msg)
}

// checkAnswer is what Check said, as text, to compare answers.
type checkAnswer struct{ warnings, err string }

func answerOf(warnings []string, err error) checkAnswer {
	a := checkAnswer{warnings: fmt.Sprint(warnings)}
	if err != nil {
		a.err = err.Error()
	}
	return a
}

// concurrentAsks are the questions the test asks from every goroutine:
// every wrapping method for an AES and an HMAC key, an EC key, and dual
// control.
func concurrentAsks() []Ask {
	var asks []Ask
	for _, w := range WrapMethods {
		asks = append(asks, Ask{Key: AES256(), Generate: true, Wrap: w}, Ask{Key: HMACKey(32), Generate: true, Wrap: w})
	}
	return append(asks,
		Ask{Key: ECKey(P256), Generate: true, Wrap: WrapMethod{RSAAES: true, OAEP: OAEPSHA1}},
		Ask{Key: AES256(), Generate: true, Wrap: WrapMethod{OAEP: OAEPSHA1}, DualControl: true},
	)
}

// checkGenerateWrapConcurrently asks every question once from one goroutine
// on one Token, then, on a second Token of the same module (with caches of
// its own, all empty), runs many goroutines that each ask every question,
// generate and wrap keys, and list the token's objects, all at once. Every operation must succeed,
// every answer must be the single-threaded one, and no two PKCS#11 calls
// may run on one session at the same time. Run it with -race.
func checkGenerateWrapConcurrently(t *testing.T, m *Module, label, pin string, createsApart bool) {
	ref, err := m.OpenToken(TokenSelector{Label: label})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if err := ref.Login(pin); err != nil {
		t.Fatal(err)
	}
	asks := concurrentAsks()
	want := make([]checkAnswer, len(asks))
	for i, a := range asks {
		want[i] = answerOf(ref.Check(a))
	}
	// The token must be able to do the operations the workers run.
	for _, w := range []WrapMethod{{OAEP: OAEPSHA1}, {RSAAES: true, OAEP: OAEPSHA1}} {
		if _, err := ref.Check(Ask{Key: AES256(), Generate: true, Wrap: w}); err != nil {
			t.Fatalf("single-threaded Check of AES-256 with %v: %v", w, err)
		}
	}
	wantDual := answerOf(nil, ref.DualControlSupported())
	if ref.Quirks().CreatesApartFromSearches != createsApart {
		t.Fatalf("%s: CreatesApartFromSearches is %v, the test expects %v", ref.Quirks().Name, ref.Quirks().CreatesApartFromSearches, createsApart)
	}

	g := &sessionGuard{PKCS11: moduleCtx{m.ctx, m.raw}}
	tk, err := openTokenWith(g, TokenSelector{Label: label}, m.lib.logins)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(pin); err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := &priv.PublicKey
	const workers, each = 12, 2
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers*(each*3+len(asks)+3))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			<-start
			// Each worker asks in its own order, so that every question
			// is first asked by several goroutines at once.
			for j := range asks {
				i := (j + w) % len(asks)
				if got := answerOf(tk.Check(asks[i])); got != want[i] {
					errs <- fmt.Errorf("worker %d: Check(%+v) = %+v, single-threaded %+v", w, asks[i], got, want[i])
				}
			}
			for i := 0; i < each; i++ {
				k, err := tk.Generate(fmt.Sprintf("concurrent-%d-%d", w, i), AES256(), false)
				if err != nil {
					errs <- fmt.Errorf("worker %d: generate: %w", w, err)
					continue
				}
				if _, err := tk.WrapOAEP(k, pub, OAEPSHA1); err != nil {
					errs <- fmt.Errorf("worker %d: wrap OAEP: %w", w, err)
				}
				if _, err := tk.WrapRSAAES(k, pub, OAEPSHA1); err != nil {
					errs <- fmt.Errorf("worker %d: wrap RSA-AES: %w", w, err)
				}
			}
			if _, err := tk.ListKeys(); err != nil {
				errs <- fmt.Errorf("worker %d: list keys: %w", w, err)
			}
			if _, err := tk.Inventory(); err != nil {
				errs <- fmt.Errorf("worker %d: inventory: %w", w, err)
			}
			if got := answerOf(nil, tk.DualControlSupported()); got != wantDual {
				errs <- fmt.Errorf("worker %d: DualControlSupported = %+v, single-threaded %+v", w, got, wantDual)
			}
		}(w)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.clashes {
		t.Error(c)
	}
	if n := tk.shared.pool.size(); n < 2 {
		t.Errorf("%d sessions open, want the operations to have run on more than one", n)
	}
	// The gate serialises what the token needs, and only that.
	if createsApart && g.createOverlaps > 0 {
		t.Errorf("%d times a token-object create ran beside C_FindObjectsInit, or a destroy beside another call: the token's quirk forbids it", g.createOverlaps)
	}
	if g.overlaps == 0 {
		t.Errorf("no two calls ran at once: the token was serialised beyond what it needs")
	}
	t.Logf("%s: %d calls beside another, %d creates beside a search or destroys beside a call, %d creates beside a create", tk.Quirks().Name, g.overlaps, g.createOverlaps, g.createsTogether)
}

// TestConcurrentCheckGenerateWrapSoftHSM runs the check on SoftHSM2, whose
// token-object creates run apart from searches while every other call runs
// at once.
func TestConcurrentCheckGenerateWrapSoftHSM(t *testing.T) {
	tok := softhsm.NewTestToken(t, "concurrency")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	checkGenerateWrapConcurrently(t, m, tok.Label, tok.PIN, true)
}

// TestConcurrentCheckGenerateWrapNSS runs the check on NSS softokn, which
// has no CreatesApartFromSearches quirk, so even its creates run beside
// searches.
func TestConcurrentCheckGenerateWrapNSS(t *testing.T) {
	tok := softhsm.NewNSSTestToken(t)
	m, err := LoadModule(ModuleConfig{Path: tok.Module, Params: tok.Params})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	checkGenerateWrapConcurrently(t, m, tok.Label, tok.PIN, false)
}
