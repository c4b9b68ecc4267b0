package hsm

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// TestSoftHSMCreatesAndSearchesAtOnce: 16 goroutines generate 12 token keys each
// and search the token at once, through the module's gate. Without the
// gate (an ungated loginTable), SoftHSM2 2.6.1 failed 3 of 1280 such calls (16 goroutines, 40 keys each)
// with CKR_GENERAL_ERROR here (docs/tokens.md, "Concurrency"); with it,
// none may fail. Run with -race.
func TestSoftHSMCreatesAndSearchesAtOnce(t *testing.T) {
	tok := softhsm.NewTestToken(t, "probe")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	var fails atomic.Int64
	var wg sync.WaitGroup
	var first sync.Once
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 12; i++ {
				if _, err := tk.Generate(fmt.Sprintf("r-%d-%d", w, i), AES256(), false); err != nil {
					fails.Add(1)
					first.Do(func() { t.Log(err) })
				}
				if _, err := tk.LabelInUse(fmt.Sprintf("r-%d-%d", w, i)); err != nil {
					fails.Add(1)
					first.Do(func() { t.Log(err) })
				}
			}
		}(w)
	}
	wg.Wait()
	if n := fails.Load(); n > 0 {
		t.Errorf("%d of 384 calls failed with the gate", n)
	}
}

// overlapCounter is a PKCS11 whose few calls take a moment and count
// which of them ran beside which.
type overlapCounter struct {
	PKCS11
	mu                       sync.Mutex
	running, creating        int
	overlaps, createOverlaps int
}

func (o *overlapCounter) call(create bool) {
	o.mu.Lock()
	if create && o.running > 0 || !create && o.creating > 0 {
		o.createOverlaps++
	}
	if o.running > 0 {
		o.overlaps++
	}
	o.running++
	if create {
		o.creating++
	}
	o.mu.Unlock()
	time.Sleep(200 * time.Microsecond)
	o.mu.Lock()
	o.running--
	if create {
		o.creating--
	}
	o.mu.Unlock()
}

func (o *overlapCounter) GenerateKey(_ pkcs11.SessionHandle, _ []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	o.call(onToken(temp))
	return 1, nil
}
func (o *overlapCounter) FindObjectsInit(pkcs11.SessionHandle, []*pkcs11.Attribute) error {
	o.call(false)
	return nil
}
func (o *overlapCounter) WrapKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, pkcs11.ObjectHandle, pkcs11.ObjectHandle) ([]byte, error) {
	o.call(false)
	return nil, nil
}

// TestGateModes: each mode lets through exactly the concurrency it names.
func TestGateModes(t *testing.T) {
	for _, c := range []struct {
		name       string
		oneAtATime bool
		quirks     Quirks
		// want: creates beside another call allowed, other calls beside
		// each other allowed.
		createsBeside, othersBeside bool
	}{
		{"no quirk", false, Quirks{}, true, true},
		{"CreatesAlone", false, Quirks{CreatesAlone: true}, false, true},
		{"OneCallAtATime", true, Quirks{CreatesAlone: true}, false, false},
		{"OneCallAtATime, no quirk", true, Quirks{}, false, false},
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
						switch (w + i) % 4 {
						case 0:
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
				t.Errorf("%d creates ran beside another call", o.createOverlaps)
			}
			if c.createsBeside && o.createOverlaps == 0 {
				t.Errorf("no create ran beside another call: serialised beyond what was asked")
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
	for _, q := range []Quirks{{CreatesAlone: true}, {}} {
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
