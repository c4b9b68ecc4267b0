package hsm

import (
	"testing"

	"github.com/miekg/pkcs11"
)

// countingFake counts C_GetAttributeValue calls on a capFake, which fails
// a call asking for any attribute the object lacks.
type countingFake struct {
	*capFake
	reads int
}

func (c *countingFake) GetAttributeValue(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, want []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	c.reads++
	return c.capFake.GetAttributeValue(sh, h, want)
}

// TestReadAttributesAsksOnceAndFallsBackOneByOne: an object with every
// attribute asked for is read in one call; one that lacks some is read one
// attribute at a time, and what it has is all there.
func TestReadAttributesAsksOnceAndFallsBackOneByOne(t *testing.T) {
	f := &countingFake{capFake: newCapFake()}
	tk := &Token{p: f, session: 1, id: TokenIdentity{Label: "fake"}}
	full := f.add([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
	})
	types := []uint{pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_VALUE_LEN}
	got := tk.readAttributes(full, types)
	if f.reads != 1 || len(got) != 3 || !boolean(got[pkcs11.CKA_SENSITIVE]) || ulong(got[pkcs11.CKA_VALUE_LEN]) != 32 {
		t.Errorf("full object: %d calls, %v; want 1 call and all three", f.reads, got)
	}

	f.reads = 0
	partial := f.add([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 16),
	})
	got = tk.readAttributes(partial, types)
	if f.reads != 1+len(types) || len(got) != 2 || ulong(got[pkcs11.CKA_VALUE_LEN]) != 16 {
		t.Errorf("object lacking CKA_EXTRACTABLE: %d calls, %v; want the refused call, then one per attribute, and the two it has", f.reads, got)
	}
	if _, ok := got[pkcs11.CKA_EXTRACTABLE]; ok {
		t.Error("CKA_EXTRACTABLE read from an object that lacks it")
	}
}
