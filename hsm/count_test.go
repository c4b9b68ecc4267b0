package hsm

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// readCountingP11 counts the calls whose number could grow with what a
// token holds: searches, the C_FindObjects of each, and attribute reads.
type readCountingP11 struct {
	PKCS11
	inits, finds, reads atomic.Int64
}

func (c *readCountingP11) FindObjectsInit(sh pkcs11.SessionHandle, t []*pkcs11.Attribute) error {
	c.inits.Add(1)
	return c.PKCS11.FindObjectsInit(sh, t)
}

func (c *readCountingP11) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	c.finds.Add(1)
	return c.PKCS11.FindObjects(sh, max)
}

func (c *readCountingP11) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	c.reads.Add(1)
	return c.PKCS11.GetAttributeValue(sh, o, a)
}

// TestCountObjectsReadsNoAttribute: counting a token's objects (doctor's
// scale figure) is one search, in few C_FindObjects calls, and reads no
// attribute of any object: on SoftHSM2 each read is a file read and a
// decryption, so reading labels only to count them doubled doctor's cost
// on a full token. Labels, which a bulk run needs, reads one label per
// object, once.
func TestCountObjectsReadsNoAttribute(t *testing.T) {
	tok := softhsm.NewTestToken(t, "count-test")
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := &readCountingP11{PKCS11: moduleCtx{m.ctx, m.raw}}
	tk, err := openTokenWith(c, TokenSelector{Label: tok.Label}, m.lib.logins)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	// More objects than one C_FindObjects of the old batch (64) returned.
	const n = 150
	for i := 0; i < n; i++ {
		if _, err := tk.GenerateAfterSearch(fmt.Sprintf("k%03d", i), HMACKey(32), false); err != nil {
			t.Fatal(err)
		}
	}
	c.inits.Store(0)
	c.finds.Store(0)
	c.reads.Store(0)
	got, err := tk.CountObjects()
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Errorf("CountObjects: %d, want %d", got, n)
	}
	if i, f, r := c.inits.Load(), c.finds.Load(), c.reads.Load(); i != 1 || f > 2 || r != 0 {
		t.Errorf("CountObjects of %d objects: %d searches, %d C_FindObjects, %d C_GetAttributeValue; want 1, at most 2 (one batch and the empty end), 0", n, i, f, r)
	}
	c.inits.Store(0)
	c.reads.Store(0)
	labels, err := tk.Labels()
	if err != nil {
		t.Fatal(err)
	}
	if len(labels) != n {
		t.Errorf("Labels: %d labels, want %d", len(labels), n)
	}
	if i, r := c.inits.Load(), c.reads.Load(); i != 1 || r != n {
		t.Errorf("Labels of %d objects: %d searches, %d C_GetAttributeValue; want 1 and %d (one label read per object)", n, i, r, n)
	}
}

// TestLabelsReadsEachLabelInOneCall reads the labels through the module's
// own handle (bounds and gate included), where each label is one
// C_GetAttributeValue: labels of every length come back whole, a label
// longer than the one call's buffer by the usual two calls.
func TestLabelsReadsEachLabelInOneCall(t *testing.T) {
	tk, _ := openSoftHSMToken(t, "label-test")
	if _, ok := tk.p.(oneCallLabeller); !ok {
		t.Fatalf("the module's handle (%T) cannot read a label in one call", tk.p)
	}
	want := map[string]int{"a": 1, "tenant-0001": 1, strings.Repeat("x", labelBufLen): 1, strings.Repeat("y", labelBufLen+1): 1, strings.Repeat("z", 1000): 1}
	for label := range want {
		if _, err := tk.GenerateAfterSearch(label, HMACKey(32), false); err != nil {
			t.Fatal(err)
		}
	}
	// A key pair: two objects, one label.
	if _, err := tk.GenerateAfterSearch("pair", ECKey(P256), false); err != nil {
		t.Fatal(err)
	}
	want["pair"] = 2
	got, err := tk.Labels()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Labels: %v, want %v", got, want)
	}
}
