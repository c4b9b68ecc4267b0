package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/miekg/pkcs11"
)

// AuditKeyTemplates are the templates of an audit key pair, the key that
// signs the ceremony record (package record): EC P-256, both halves
// persistent token objects with the same label and CKA_ID. The
// private key is sensitive, never extractable, and may only sign; the
// public key may only verify and is readable without login, so it can be
// exported for auditors at any time. A valid signature on an entry thus
// shows it was written by someone holding the token and its PIN.
func AuditKeyTemplates(label string, id []byte) (public, private []*pkcs11.Attribute) {
	public = []*pkcs11.Attribute{
		// a public key
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		// of an EC key pair
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		// on P-256: record signatures are ECDSA_P256_SHA256
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, P256.params()),
		// kept in the token, so the public key can be exported again years later
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// readable without login: it holds nothing secret and auditors need it
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		// may verify record signatures
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		// no signature recovery
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY_RECOVER, false),
		// no encryption
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		// no wrapping: nothing is ever wrapped for the audit key
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		// no key derivation
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// the private key's label, how operators name the pair
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		// the private key's CKA_ID, how kmsbridge pairs the halves
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	private = []*pkcs11.Attribute{
		// a private key
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		// of an EC key pair (its curve comes from the public template)
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
		// a persistent token object: it signs every ceremony's record
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		// visible only to a logged-in user
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		// never readable in plaintext
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		// never wrapped either: an audit key must never leave the token
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		// and were a token to ignore that, only under a key the SO trusts
		pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, true),
		// signs record entries: its only use
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		// with the session's login, not a new PIN entry per entry
		pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_AUTHENTICATE, false),
		// no signatures with message recovery
		pkcs11.NewAttribute(pkcs11.CKA_SIGN_RECOVER, false),
		// no decryption
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		// no unwrapping: nothing enters the token under the audit key
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		// no key derivation (ECDH)
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		// how operators find it again
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		// a random identifier, written into every signature as KeyId
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	return public, private
}

// GenerateAuditKey generates an audit key pair (AuditKeyTemplates) labelled
// label with a random CKA_ID, after making sure no object in the token
// already has label (ErrLabelExists). It returns the private key as the
// token describes it.
func (t *Token) GenerateAuditKey(label string) (*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	if label == "" {
		return nil, errors.New("an audit key needs a label: give --label")
	}
	inUse, err := t.LabelInUse(label)
	if err != nil {
		return nil, err
	}
	if inUse {
		return nil, fmt.Errorf("%w: token %q already has an object labelled %q: choose a new --label, or use the existing audit key", ErrLabelExists, t.id.Label, label)
	}
	id := make([]byte, KeyIDBytes)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("random CKA_ID: %w", err)
	}
	pub, priv := AuditKeyTemplates(label, id)
	_, h, err := t.p.GenerateKeyPair(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv)
	if err != nil {
		return nil, newError("C_GenerateKeyPair", err)
	}
	return t.describe(h)
}

// FindAuditKey returns the private key of the audit key pair sel names,
// after checking that it is one: EC P-256, sensitive, not extractable, and
// allowed to sign. Otherwise it fails with ErrKeyNotFound, ErrKeyAmbiguous
// or ErrUnsuitableKey.
func (t *Token) FindAuditKey(sel KeySelector) (*Key, error) {
	t, done, err := t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	k, err := t.findKey(sel, pkcs11.CKO_PRIVATE_KEY)
	if err != nil {
		return nil, err
	}
	unsuitable := func(why string) error {
		return fmt.Errorf("%w: HSM key %q %s, so it cannot be an audit key: create one with `kmsbridge audit-key create`", ErrUnsuitableKey, k.Label, why)
	}
	switch {
	case k.KeyType != pkcs11.CKK_EC || k.Curve == nil || !k.Curve.OID.Equal(P256.OID):
		return nil, unsuitable("is not an EC P-256 key")
	case !k.Sensitive || k.Extractable:
		return nil, unsuitable("can leave the token (CKA_SENSITIVE=false or CKA_EXTRACTABLE=true)")
	}
	attrs, err := t.p.GetAttributeValue(t.session, k.Handle, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil)})
	if err != nil {
		return nil, newError("C_GetAttributeValue", err)
	}
	if len(attrs) != 1 || !boolean(attrs[0].Value) {
		return nil, unsuitable("may not sign (CKA_SIGN=false)")
	}
	return k, nil
}

// AuditSigner is a crypto.Signer whose private key is an audit key in the
// token: each Sign is one C_SignInit and C_Sign with CKM_ECDSA on a
// session of its own from the Token's pool (the token must be logged in),
// so several signatures may be made at once, from several goroutines.
//
// It is not built on crypto11, because crypto11 cannot share a module:
// crypto11.Configure calls C_Initialize itself, which fails with
// CKR_CRYPTOKI_ALREADY_INITIALIZED in a process that already loaded the
// module through LoadModule (and LoadModule fails the same way after
// crypto11; measured with SoftHSM2 2.6 and crypto11 v1.5.0), and its Close
// would C_Finalize the module under the Token.
type AuditSigner struct {
	t   *Token
	key *Key
	pub *ecdsa.PublicKey
	der []byte
}

var _ crypto.Signer = (*AuditSigner)(nil)

// AuditSigner returns a signer over the private key k of an EC P-256 key
// pair (as GenerateAuditKey or FindAuditKey return it). Its public key is
// read from the pair's public key object, by k's CKA_ID.
func (t *Token) AuditSigner(k *Key) (*AuditSigner, error) {
	if k.Class != pkcs11.CKO_PRIVATE_KEY || k.KeyType != pkcs11.CKK_EC {
		return nil, fmt.Errorf("%w: HSM key %q is not the private key of an EC key pair", ErrUnsuitableKey, k.Label)
	}
	der, err := t.PublicKeyDER(k)
	if err != nil {
		return nil, err
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("public half of HSM key %q: %w", k.Label, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: HSM key %q is not on P-256", ErrUnsuitableKey, k.Label)
	}
	// The signer keeps the Token that takes a session per signature, not
	// a view whose session goes back to the pool when this call returns.
	owner := t
	if t.shared != nil && t.shared.root != nil {
		owner = t.shared.root
	}
	return &AuditSigner{t: owner, key: k, pub: ec, der: der}, nil
}

// Public returns the audit public key, an *ecdsa.PublicKey on P-256.
func (s *AuditSigner) Public() crypto.PublicKey { return s.pub }

// PublicKeyDER returns the audit public key as a DER SubjectPublicKeyInfo,
// the bytes of its PEM "PUBLIC KEY" block.
func (s *AuditSigner) PublicKeyDER() []byte { return append([]byte(nil), s.der...) }

// Key returns the audit private key as the token describes it; its ID is
// the CKA_ID records name the key by.
func (s *AuditSigner) Key() *Key { return s.key }

// Sign signs digest, which must be the output of opts.HashFunc(), with
// ECDSA inside the token, and returns the signature as a DER
// ECDSA-Sig-Value, as crypto/ecdsa does. The token draws the nonce; rand
// is not used.
func (s *AuditSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if h == 0 || len(digest) != h.Size() {
		return nil, fmt.Errorf("audit key %q signs a digest: got %d bytes for hash %v", s.key.Label, len(digest), h)
	}
	t, done, err := s.t.bound()
	if err != nil {
		return nil, err
	}
	defer done()
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	if err := t.p.SignInit(t.session, mech, s.key.Handle); err != nil {
		return nil, newError("C_SignInit", err)
	}
	rs, err := t.p.Sign(t.session, digest)
	if err != nil {
		return nil, newError("C_Sign", err)
	}
	return ecdsaDER(rs, P256)
}

// ecdsaDER converts a PKCS#11 ECDSA signature, r and s as big-endian
// integers of the curve's size one after the other, to the DER
// ECDSA-Sig-Value of RFC 3279.
func ecdsaDER(rs []byte, c Curve) ([]byte, error) {
	if len(rs) != 2*c.Bytes {
		return nil, fmt.Errorf("C_Sign returned a %d-byte ECDSA signature; on %s it is r||s, %d bytes", len(rs), c.Name, 2*c.Bytes)
	}
	return asn1.Marshal(struct{ R, S *big.Int }{
		new(big.Int).SetBytes(rs[:c.Bytes]),
		new(big.Int).SetBytes(rs[c.Bytes:]),
	})
}
