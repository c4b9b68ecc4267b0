package hsm

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/miekg/pkcs11"
)

// TrustedWrappingKeyTemplate is the template of a KMS wrapping public key
// the Security Officer approves for dual control: a token object marked
// CKA_TRUSTED, so the token will wrap keys that have
// CKA_WRAP_WITH_TRUSTED=true under it, and under nothing else.
func TrustedWrappingKeyTemplate(pub *rsa.PublicKey, label string, id []byte) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		// kept in the token: the approval outlives the SO's session, until
		// the user's wrap uses it
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// a public object, so the user's session can find and use it
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		// the SO's approval: only the SO can set it
		pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true),
		// only for wrapping keys; not for encrypting data or verifying
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		// nobody changes an approval after the fact
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()),
	}
}

// LoginSO logs the Security Officer in. Never retried.
func (t *Token) LoginSO(pin string) error {
	if pin == "" {
		return fmt.Errorf("%w: the SO PIN is empty: set KMSBRIDGE_SO_PIN, or give --so-pin-file FILE, or run on a terminal to be prompted", ErrNoPIN)
	}
	return t.login(pkcs11.CKU_SO, pin)
}

// ErrNotApproved means a key needs a trusted wrapping key and none is
// approved for this KMS wrapping key.
var ErrNotApproved = errors.New("wrapping key not approved")

// findTrustedWrappingKey returns the approved (CKA_TRUSTED) token object
// with pub's modulus, if there is one.
func (t *Token) findTrustedWrappingKey(pub *rsa.PublicKey) (pkcs11.ObjectHandle, bool, error) {
	t, done, err := t.bound()
	if err != nil {
		return 0, false, err
	}
	defer done()
	hs, err := t.findObjects([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
	})
	if err != nil || len(hs) == 0 {
		return 0, false, err
	}
	return hs[0], true, nil
}

// ApproveWrappingKey stores pub in the token as a trusted wrapping key.
// The Security Officer must be logged in. Approving the same key twice
// returns the existing approval.
func (t *Token) ApproveWrappingKey(pub *rsa.PublicKey, label string, id []byte) (created bool, err error) {
	if err := CheckWrappingPublicKey(pub); err != nil {
		return false, err
	}
	t, done, err := t.bound()
	if err != nil {
		return false, err
	}
	defer done()
	if _, ok, err := t.findTrustedWrappingKey(pub); err != nil || ok {
		return false, err
	}
	if _, err := t.p.CreateObject(t.session, TrustedWrappingKeyTemplate(pub, label, id)); err != nil {
		return false, newError("C_CreateObject", err)
	}
	return true, nil
}

// IsApproved reports whether pub is stored in the token as a trusted
// wrapping key.
func (t *Token) IsApproved(pub *rsa.PublicKey) (bool, error) {
	a, err := t.Approval(pub)
	return a != nil, err
}

// approvalPrefix starts the CKA_LABEL of every approval kmsbridge makes:
// "kmsbridge approval until <RFC 3339 UTC> for <HSM key label>". The label
// is the SO's (the object is CKA_TRUSTED and not modifiable, so the user
// cannot change it): it carries the one HSM key the approval is for and
// when it expires. Earlier versions wrote "kmsbridge approval for
// <label>", with no expiry; such an approval is never used.
const (
	approvalPrefix      = "kmsbridge approval for "
	approvalUntilPrefix = "kmsbridge approval until "
)

// ApprovalLabel is the CKA_LABEL of an approval of a wrapping key for the
// wrap of the HSM key labelled keyLabel, and of nothing else, until
// expires.
func ApprovalLabel(keyLabel string, expires time.Time) string {
	return approvalUntilPrefix + expires.UTC().Truncate(time.Second).Format(time.RFC3339) + " for " + keyLabel
}

// Approval is a trusted wrapping key in the token: the Security Officer's
// approval of one KMS wrapping key, for the wrap of one named HSM key.
type Approval struct {
	// Label is the object's CKA_LABEL; KeyLabel the HSM key it approves
	// the wrap of ("" when the label is not one kmsbridge writes: such an
	// approval names no key, and kmsbridge does not use it).
	Label, KeyLabel string
	// ID is the object's CKA_ID: kmsbridge writes the first 16 bytes of
	// the wrapping public key's SHA-256.
	ID []byte
	// ModulusBits is the wrapping key's size.
	ModulusBits int
	// Expires is when the approval ends if no wrap used it; zero for an
	// approval of an earlier kmsbridge that named no expiry (never used).
	Expires time.Time `json:",omitzero"`
}

// Usable says why a cannot cover a wrap at now, or "" when it can: it has
// an expiry and now is before it.
func (a Approval) Usable(now time.Time) string {
	switch {
	case a.Expires.IsZero():
		return "it names no expiry (an approval of an earlier kmsbridge), and approvals expire"
	case !now.Before(a.Expires):
		return "it expired at " + a.Expires.UTC().Format(time.RFC3339)
	}
	return ""
}

// Approval returns the approval of pub, or nil when there is none.
func (t *Token) Approval(pub *rsa.PublicKey) (*Approval, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	h, ok, err := t.findTrustedWrappingKey(pub)
	if err != nil || !ok {
		return nil, err
	}
	return t.readApproval(h)
}

// Approvals lists every trusted wrapping key in the token: the approvals
// still outstanding, which doctor and status show.
func (t *Token) Approvals() ([]Approval, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	hs, err := t.findObjects([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true),
	})
	if err != nil {
		return nil, err
	}
	var out []Approval
	for _, h := range hs {
		a, err := t.readApproval(h)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, nil
}

func (t *Token) readApproval(h pkcs11.ObjectHandle) (*Approval, error) {
	attrs, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil), pkcs11.NewAttribute(pkcs11.CKA_ID, nil), pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
	})
	if err != nil {
		return nil, newError("C_GetAttributeValue", err)
	}
	a := &Approval{}
	for _, at := range attrs {
		switch at.Type {
		case pkcs11.CKA_LABEL:
			a.Label = string(at.Value)
		case pkcs11.CKA_ID:
			a.ID = at.Value
		case pkcs11.CKA_MODULUS:
			a.ModulusBits = new(big.Int).SetBytes(at.Value).BitLen()
		}
	}
	if rest, ok := strings.CutPrefix(a.Label, approvalUntilPrefix); ok {
		// The time has no space; the key label may.
		if when, k, ok := strings.Cut(rest, " for "); ok {
			if t, err := time.Parse(time.RFC3339, when); err == nil {
				a.KeyLabel, a.Expires = k, t.UTC()
			}
		}
	} else if k, ok := strings.CutPrefix(a.Label, approvalPrefix); ok {
		a.KeyLabel = k
	}
	return a, nil
}

// EndApproval destroys the approval of pub, if there is one, and says
// whether there was: an approval covers one wrap and then ends. The user
// (after the wrap) or the Security Officer (approve --revoke) may end it;
// it is a public token object.
func (t *Token) EndApproval(pub *rsa.PublicKey) (bool, error) {
	t, done, err := t.bound()
	if err != nil {
		return false, err
	}
	defer done()
	h, ok, err := t.findTrustedWrappingKey(pub)
	if err != nil || !ok {
		return false, err
	}
	if err := t.p.DestroyObject(t.session, h); err != nil {
		return false, newError("C_DestroyObject", err)
	}
	return true, nil
}
