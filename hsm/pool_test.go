package hsm

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// countingP11 counts the login-state calls a module sees, so tests can
// tell how many times the process logged in and out.
type countingP11 struct {
	PKCS11
	logins, logouts, opens, finds, gens atomic.Int64
}

func (c *countingP11) GenerateKey(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	c.gens.Add(1)
	return c.PKCS11.GenerateKey(sh, m, temp)
}

func (c *countingP11) Login(sh pkcs11.SessionHandle, u uint, pin string) error {
	c.logins.Add(1)
	return c.PKCS11.Login(sh, u, pin)
}

func (c *countingP11) Logout(sh pkcs11.SessionHandle) error {
	c.logouts.Add(1)
	return c.PKCS11.Logout(sh)
}

func (c *countingP11) OpenSession(slot, flags uint) (pkcs11.SessionHandle, error) {
	c.opens.Add(1)
	return c.PKCS11.OpenSession(slot, flags)
}

func (c *countingP11) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	c.finds.Add(1)
	return c.PKCS11.FindObjects(sh, max)
}

func TestLoadModuleTwiceSharesOneLibrary(t *testing.T) {
	tok := softhsm.NewTestToken(t, "pool-test")
	a, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatalf("second LoadModule of the same library: %v", err)
	}
	if a.lib != b.lib {
		t.Fatal("two loads of one library gave two libraries")
	}
	a.Close()
	a.Close() // twice is harmless and does not drop b's reference
	tk, err := b.OpenToken(TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatalf("the library was finalised while a handle was open: %v", err)
	}
	tk.Close()
	b.Close()
	modules.Lock()
	_, still := modules.byPath[moduleKey(tok.Module)]
	modules.Unlock()
	if still {
		t.Fatal("the library is still loaded after its last handle closed")
	}
	c, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatalf("loading again after the last close: %v", err)
	}
	c.Close()
}

func TestLoadModuleRefusesOtherParamsForALoadedLibrary(t *testing.T) {
	tok := softhsm.NewTestToken(t, "pool-test")
	a, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = LoadModule(ModuleConfig{Path: tok.Module, Params: "x"})
	if !errors.Is(err, ErrModule) {
		t.Fatalf("got %v, want ErrModule for other parameters", err)
	}
}

// openCounted opens the token of tok on m with a counting PKCS11 and the
// module's shared login table.
func openCounted(t *testing.T, m *Module, label string) (*Token, *countingP11) {
	t.Helper()
	c := &countingP11{PKCS11: moduleCtx{m.ctx, m.raw}}
	tk, err := openTokenWith(c, TokenSelector{Label: label}, m.lib.logins)
	if err != nil {
		t.Fatal(err)
	}
	return tk, c
}

func TestClosingOneTokenKeepsAnotherLoggedIn(t *testing.T) {
	tok := softhsm.NewTestToken(t, "pool-test")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, ca := openCounted(t, m, tok.Label)
	b, cb := openCounted(t, m, tok.Label)
	defer b.Close()
	if err := a.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	if err := b.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	if n := ca.logins.Load() + cb.logins.Load(); n != 1 {
		t.Errorf("%d C_Login calls for two handles on one token, want 1", n)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := ca.logouts.Load(); n != 0 {
		t.Errorf("closing one handle called C_Logout %d times while another is logged in", n)
	}
	// A private-object operation still works on b.
	if _, err := b.Generate("after-close", AES256(), false); err != nil {
		t.Fatalf("the other handle lost its login: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := cb.logouts.Load(); n != 1 {
		t.Errorf("closing the last handle called C_Logout %d times, want 1", n)
	}
}

// TestManyGoroutinesShareOneToken runs every kind of operation from many
// goroutines at once on one Token; run it with -race.
func TestManyGoroutinesShareOneToken(t *testing.T) {
	tok := softhsm.NewTestToken(t, "pool-test")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, c := openCounted(t, m, tok.Label)
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := &priv.PublicKey
	const workers, each = 24, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				label := fmt.Sprintf("stress-%d-%d", w, i)
				if used, err := tk.LabelInUse(label); err != nil || used {
					errs <- fmt.Errorf("%s: in use %v, %v", label, used, err)
					continue
				}
				k, err := tk.Generate(label, AES256(), false)
				if err != nil {
					errs <- fmt.Errorf("%s: generate: %w", label, err)
					continue
				}
				got, err := tk.FindSecretKey(KeySelector{Label: label})
				if err != nil || got.Handle != k.Handle {
					errs <- fmt.Errorf("%s: find: %v, %v", label, got, err)
					continue
				}
				if _, err := tk.WrapRSAAES(k, pub, OAEPSHA1); err != nil {
					errs <- fmt.Errorf("%s: wrap: %w", label, err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := c.logins.Load(); n != 1 {
		t.Errorf("%d C_Login calls, want 1", n)
	}
	if n := tk.shared.pool.size(); n < 2 || n > MaxSessions {
		t.Errorf("%d sessions open, want more than one and at most %d", n, MaxSessions)
	}
}

// TestLabelInUseIsOneFind checks that looking a label up asks the token for
// at most one object, however many objects the token holds.
func TestLabelInUseIsOneFind(t *testing.T) {
	tok := softhsm.NewTestToken(t, "pool-test")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, c := openCounted(t, m, tok.Label)
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 70; i++ {
		if _, err := tk.Generate(fmt.Sprintf("k%d", i), HMACKey(32), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, label := range []string{"k0", "k69", "absent"} {
		c.finds.Store(0)
		used, err := tk.LabelInUse(label)
		if err != nil || used != (label != "absent") {
			t.Fatalf("LabelInUse(%q): %v, %v", label, used, err)
		}
		if n := c.finds.Load(); n != 1 {
			t.Errorf("LabelInUse(%q): %d C_FindObjects calls, want 1", label, n)
		}
	}
}

// BenchmarkProbeUncached is the wrapping-algorithm probe itself, as the
// first import on a Token runs it.
func BenchmarkProbeUncached(b *testing.B) {
	tok := softhsm.NewTestToken(b, "pool-bench")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(TokenSelector{Label: tok.Label})
	if err != nil {
		b.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := tk.probeOAEP(OAEPSHA1); err != nil {
			b.Fatal(err)
		}
	}
}

func TestProbeAnswersAreKeptPerToken(t *testing.T) {
	tok := softhsm.NewTestToken(t, "pool-test")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, c := openCounted(t, m, tok.Label)
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	if err := tk.ProbeOAEP(OAEPSHA1); err != nil {
		t.Fatal(err)
	}
	// SoftHSM2 cannot do SHA-256 OAEP: the refusal is an answer too.
	if err := tk.ProbeOAEP(OAEPSHA256); !errors.Is(err, ErrWrapUnsupported) {
		t.Fatalf("SHA-256 probe: %v, want ErrWrapUnsupported", err)
	}
	gens := c.gens.Load()
	for i := 0; i < 3; i++ {
		if err := tk.ProbeOAEP(OAEPSHA1); err != nil {
			t.Fatal(err)
		}
		if err := tk.ProbeOAEP(OAEPSHA256); !errors.Is(err, ErrWrapUnsupported) {
			t.Fatalf("SHA-256 probe again: %v, want the same ErrWrapUnsupported", err)
		}
	}
	if got := c.gens.Load() - gens; got != 0 {
		t.Errorf("%d probe keys generated by repeated probes, want none: the answers are kept", got)
	}
}
