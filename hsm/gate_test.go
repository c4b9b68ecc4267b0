package hsm

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// TestSoftHSMCreatesAndSearchesAtOnce: 8 goroutines generate token keys
// (each after its own label search) while 8 others search the token, all
// through the module's gate, for a few seconds. Ungated, SoftHSM2 2.6.1
// fails creates within seconds and leaves their half-made objects behind
// (TestSoftHSMRaceCreateBesideFindObjectsInit); through the gate none may
// fail, and the token must hold exactly one object file per key made.
// Run with -race.
func TestSoftHSMCreatesAndSearchesAtOnce(t *testing.T) {
	tk, tok := openSoftHSMToken(t, "probe")
	var fails, made atomic.Int64
	var wg sync.WaitGroup
	var first sync.Once
	note := func(err error) {
		fails.Add(1)
		first.Do(func() { t.Log(err) })
	}
	deadline := time.Now().Add(stressFor(3 * time.Second))
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if w%2 == 1 {
					if _, err := tk.LabelInUse(fmt.Sprintf("absent-%d-%d", w, i)); err != nil {
						note(err)
					}
					continue
				}
				if _, err := tk.Generate(fmt.Sprintf("r-%d-%d", w, i), AES256(), false); err != nil {
					note(err)
				} else {
					made.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	files, err := filepath.Glob(filepath.Join(tok.Dir, "tokens", "*", "*.object"))
	if err != nil {
		t.Fatal(err)
	}
	objects := len(files) - 1 // token.object is the token's own
	t.Logf("%d keys made, %d calls failed, %d object files", made.Load(), fails.Load(), objects)
	if n := fails.Load(); n > 0 {
		t.Errorf("%d calls failed with the gate", n)
	}
	if int64(objects) != made.Load() {
		t.Errorf("%d object files for %d keys made: a create left an object behind", objects, made.Load())
	}
}

// TestTwoSidedTakesTurns: once one side waits, the other side's new
// holders wait behind it, so a stream of creates cannot starve a search
// (or the other way round).
func TestTwoSidedTakesTurns(t *testing.T) {
	var l twoSided
	state := func() (active, waiting [2]int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.active, l.waiting
	}
	waitFor := func(what string, ok func(active, waiting [2]int) bool) {
		t.Helper()
		for i := 0; ; i++ {
			if ok(state()) {
				return
			}
			if i > 20000 {
				a, w := state()
				t.Fatalf("never %s: active %v, waiting %v", what, a, w)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	l.enter(sideCreates)
	searched := make(chan struct{})
	go func() {
		l.enter(sideSearches)
		close(searched)
	}()
	waitFor("a search waiting", func(_, w [2]int) bool { return w[sideSearches] == 1 })
	created := make(chan struct{})
	go func() {
		l.enter(sideCreates)
		close(created)
	}()
	waitFor("a second create waiting behind the search", func(a, w [2]int) bool { return w[sideCreates] == 1 && a[sideCreates] == 1 })
	l.leave(sideCreates)
	<-searched
	if a, _ := state(); a[sideCreates] != 0 {
		t.Fatalf("a create holds the lock beside the search: active %v", a)
	}
	l.leave(sideSearches)
	<-created
	l.leave(sideCreates)
	if a, w := state(); a != [2]int{} || w != [2]int{} {
		t.Fatalf("left held: active %v, waiting %v", a, w)
	}
}

// overlapCounter is a PKCS11 whose few calls take a moment and count
// which of them ran beside which.
type overlapCounter struct {
	PKCS11
	mu                          sync.Mutex
	running, creating, searches int
	// createOverlaps counts a token-object create beside a search (or a
	// search beside a create); createsTogether creates beside creates;
	// overlaps any call beside another.
	overlaps, createOverlaps, createsTogether int
}

func (o *overlapCounter) call(create, search bool) {
	o.mu.Lock()
	if create && o.searches > 0 || search && o.creating > 0 {
		o.createOverlaps++
	}
	if create && o.creating > 0 {
		o.createsTogether++
	}
	if o.running > 0 {
		o.overlaps++
	}
	o.running++
	if create {
		o.creating++
	}
	if search {
		o.searches++
	}
	o.mu.Unlock()
	time.Sleep(200 * time.Microsecond)
	o.mu.Lock()
	o.running--
	if create {
		o.creating--
	}
	if search {
		o.searches--
	}
	o.mu.Unlock()
}

func (o *overlapCounter) GenerateKey(_ pkcs11.SessionHandle, _ []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	o.call(onToken(temp), false)
	return 1, nil
}
func (o *overlapCounter) FindObjectsInit(pkcs11.SessionHandle, []*pkcs11.Attribute) error {
	o.call(false, true)
	return nil
}
func (o *overlapCounter) WrapKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, pkcs11.ObjectHandle) ([]byte, error) {
	o.call(false, false)
	return nil, nil
}

// TestGateModes: each mode lets through exactly the concurrency it names.
func TestGateModes(t *testing.T) {
	for _, c := range []struct {
		name       string
		oneAtATime bool
		quirks     Quirks
		// want: token-object creates beside searches allowed, creates
		// beside creates allowed, other calls beside each other allowed.
		createsBeside, createsTogether, othersBeside bool
	}{
		{"no quirk", false, Quirks{}, true, true, true},
		{"CreatesApartFromSearches", false, Quirks{CreatesApartFromSearches: true}, false, true, true},
		{"OneCallAtATime", true, Quirks{CreatesApartFromSearches: true}, false, false, false},
		{"OneCallAtATime, no quirk", true, Quirks{}, false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := &overlapCounter{}
			g := &callGate{}
			if c.oneAtATime {
				g.setOneAtATime()
			}
			p := g.gate(o, c.quirks)
			token := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)}
			session := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)}
			var wg sync.WaitGroup
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; i < 30; i++ {
						switch (w + i) % 5 {
						case 0, 4:
							_, _ = p.GenerateKey(0, nil, token)
						case 3:
							// A session object's create is not a create
							// of the store: it may run beside others.
							_, _ = p.GenerateKey(0, nil, session)
						case 1:
							_ = p.FindObjectsInit(0, nil)
						default:
							_, _ = p.WrapKey(0, nil, 0, 0)
						}
					}
				}(w)
			}
			wg.Wait()
			if !c.createsBeside && o.createOverlaps > 0 {
				t.Errorf("%d creates ran beside a search", o.createOverlaps)
			}
			if c.createsBeside && o.createOverlaps == 0 {
				t.Errorf("no create ran beside a search: serialised beyond what was asked")
			}
			if !c.createsTogether && o.createsTogether > 0 {
				t.Errorf("%d creates ran beside a create", o.createsTogether)
			}
			if c.createsTogether && o.createsTogether == 0 {
				t.Errorf("no create ran beside another create: serialised beyond what was asked")
			}
			if !c.othersBeside && o.overlaps > 0 {
				t.Errorf("%d calls ran beside another", o.overlaps)
			}
			if c.othersBeside && o.overlaps == 0 {
				t.Errorf("no two calls ran at once: serialised beyond what was asked")
			}
		})
	}
}

// optionalCalls is a module with the calls beside PKCS11 that the proofs
// use; the embedded PKCS11 is never called.
type optionalCalls struct {
	PKCS11
	derived, encrypted int
}

func (o *optionalCalls) DeriveKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	o.derived++
	return 7, nil
}
func (o *optionalCalls) EncryptInit(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle) error {
	return nil
}
func (o *optionalCalls) Encrypt(pkcs11.SessionHandle, []byte) ([]byte, error) {
	o.encrypted++
	return []byte{1}, nil
}

// TestGatedModuleKeepsItsOptionalCalls: a module behind the gate (as
// SoftHSM2 is) still derives and encrypts. When the gate hid them, the
// HSM's own ECDH comparison and the Managed HSM AES proof looked
// unsupported on SoftHSM2.
func TestGatedModuleKeepsItsOptionalCalls(t *testing.T) {
	inner := &optionalCalls{}
	for _, q := range []Quirks{{CreatesApartFromSearches: true}, {}} {
		g := &callGate{}
		if q == (Quirks{}) {
			g.setOneAtATime()
		}
		p := g.gate(inner, q)
		if _, ok := p.(gated); !ok {
			t.Fatalf("quirks %+v: the module was not gated", q)
		}
		d, ok := p.(deriver)
		if !ok {
			t.Fatalf("quirks %+v: the gated module has no C_DeriveKey", q)
		}
		if h, err := d.DeriveKey(1, nil, 2, nil); err != nil || h != 7 {
			t.Fatalf("DeriveKey through the gate: %v, %v", h, err)
		}
		e, ok := p.(encrypter)
		if !ok {
			t.Fatalf("quirks %+v: the gated module has no C_Encrypt", q)
		}
		if err := e.EncryptInit(1, nil, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Encrypt(1, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	if inner.derived != 2 || inner.encrypted != 2 {
		t.Fatalf("the inner module saw %d derives and %d encrypts, want 2 and 2", inner.derived, inner.encrypted)
	}
}

// destroyProbe is a PKCS11 whose WrapKey blocks until released and whose
// DestroyObject notes whether a wrap was in flight.
type destroyProbe struct {
	PKCS11
	mu        sync.Mutex
	wrapping  int
	inWrap    chan struct{}
	release   chan struct{}
	besideMap map[pkcs11.ObjectHandle]bool
}

func (d *destroyProbe) GenerateKey(_ pkcs11.SessionHandle, _ []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if onToken(temp) {
		return 100, nil
	}
	return 200, nil
}
func (d *destroyProbe) WrapKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, pkcs11.ObjectHandle) ([]byte, error) {
	d.mu.Lock()
	d.wrapping++
	d.mu.Unlock()
	d.inWrap <- struct{}{}
	<-d.release
	d.mu.Lock()
	d.wrapping--
	d.mu.Unlock()
	return nil, nil
}
func (d *destroyProbe) DestroyObject(_ pkcs11.SessionHandle, oh pkcs11.ObjectHandle) error {
	d.mu.Lock()
	d.besideMap[oh] = d.wrapping > 0
	d.mu.Unlock()
	return nil
}
func (d *destroyProbe) CloseSession(pkcs11.SessionHandle) error { return nil }

// TestGateDestroysOfSessionObjects: on SoftHSM2's gate, destroying a
// session object made through the gate (a wrap's KMS public key) runs
// beside other calls; destroying any other object (a token object, or a
// session object of a closed session) runs alone.
func TestGateDestroysOfSessionObjects(t *testing.T) {
	d := &destroyProbe{inWrap: make(chan struct{}), release: make(chan struct{}), besideMap: map[pkcs11.ObjectHandle]bool{}}
	g := &callGate{}
	p := g.gate(d, Quirks{CreatesApartFromSearches: true})
	token := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)}
	session := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)}
	hTok, _ := p.GenerateKey(1, nil, token)
	hSess, _ := p.GenerateKey(1, nil, session)

	go func() { _, _ = p.WrapKey(2, nil, 0, 0) }()
	<-d.inWrap
	destroyed := make(chan struct{})
	go func() {
		_ = p.DestroyObject(1, hSess)
		close(destroyed)
	}()
	select {
	case <-destroyed:
	case <-time.After(30 * time.Second):
		t.Fatal("destroying a session object waited for a wrap to finish")
	}
	tokDone := make(chan struct{})
	go func() {
		_ = p.DestroyObject(1, hTok)
		close(tokDone)
	}()
	close(d.release)
	<-tokDone
	if !d.besideMap[hSess] {
		t.Error("the session object's destroy did not run beside the wrap")
	}
	if d.besideMap[hTok] {
		t.Error("the token object's destroy ran beside a wrap")
	}

	// A session object is forgotten when its session closes: a later
	// destroy of its handle (reused, on some modules) runs alone.
	h2, _ := p.GenerateKey(3, nil, session)
	_ = p.CloseSession(3)
	if g.sessionObject(h2) {
		t.Error("a closed session's object is still taken for a session object")
	}
}
