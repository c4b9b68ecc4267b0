package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/record"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

func TestAuditKeyTemplates(t *testing.T) {
	pub, priv := AuditKeyTemplates("audit-2026", []byte{4, 2})
	pm, km := attrs(t, pub), attrs(t, priv)

	if got := ulong(km[pkcs11.CKA_CLASS]); got != pkcs11.CKO_PRIVATE_KEY {
		t.Errorf("private CKA_CLASS = %#x", got)
	}
	if got := ulong(pm[pkcs11.CKA_CLASS]); got != pkcs11.CKO_PUBLIC_KEY {
		t.Errorf("public CKA_CLASS = %#x", got)
	}
	for name, m := range map[string]map[uint][]byte{"public": pm, "private": km} {
		if got := ulong(m[pkcs11.CKA_KEY_TYPE]); got != pkcs11.CKK_EC {
			t.Errorf("%s CKA_KEY_TYPE = %#x, want CKK_EC", name, got)
		}
		if string(m[pkcs11.CKA_LABEL]) != "audit-2026" || !bytes.Equal(m[pkcs11.CKA_ID], []byte{4, 2}) {
			t.Errorf("%s label/id not carried: %q %x", name, m[pkcs11.CKA_LABEL], m[pkcs11.CKA_ID])
		}
		if _, ok := m[pkcs11.CKA_VALUE]; ok {
			t.Errorf("%s template must never carry CKA_VALUE", name)
		}
	}
	if c := curveOf(pm[pkcs11.CKA_EC_PARAMS]); c == nil || c.Name != "P-256" {
		t.Errorf("CKA_EC_PARAMS names %v, want P-256", c)
	}

	wantBool(t, km, pkcs11.CKA_TOKEN, "private CKA_TOKEN", true)
	wantBool(t, km, pkcs11.CKA_PRIVATE, "private CKA_PRIVATE", true)
	wantBool(t, km, pkcs11.CKA_SENSITIVE, "private CKA_SENSITIVE", true)
	wantBool(t, km, pkcs11.CKA_EXTRACTABLE, "private CKA_EXTRACTABLE", false)
	wantBool(t, km, pkcs11.CKA_WRAP_WITH_TRUSTED, "private CKA_WRAP_WITH_TRUSTED", true)
	wantBool(t, km, pkcs11.CKA_SIGN, "private CKA_SIGN", true)
	wantBool(t, km, pkcs11.CKA_ALWAYS_AUTHENTICATE, "private CKA_ALWAYS_AUTHENTICATE", false)
	for typ, name := range map[uint]string{
		pkcs11.CKA_SIGN_RECOVER: "CKA_SIGN_RECOVER", pkcs11.CKA_DECRYPT: "CKA_DECRYPT",
		pkcs11.CKA_UNWRAP: "CKA_UNWRAP", pkcs11.CKA_DERIVE: "CKA_DERIVE",
	} {
		wantBool(t, km, typ, "private "+name, false)
	}

	wantBool(t, pm, pkcs11.CKA_TOKEN, "public CKA_TOKEN", true)
	wantBool(t, pm, pkcs11.CKA_PRIVATE, "public CKA_PRIVATE", false)
	wantBool(t, pm, pkcs11.CKA_VERIFY, "public CKA_VERIFY", true)
	for typ, name := range map[uint]string{
		pkcs11.CKA_VERIFY_RECOVER: "CKA_VERIFY_RECOVER", pkcs11.CKA_ENCRYPT: "CKA_ENCRYPT",
		pkcs11.CKA_WRAP: "CKA_WRAP", pkcs11.CKA_DERIVE: "CKA_DERIVE",
	} {
		wantBool(t, pm, typ, "public "+name, false)
	}
}

// signP11 is a token that answers C_SignInit and C_Sign as told and
// panics on any other call.
type signP11 struct {
	PKCS11
	initErr error
	sign    func(digest []byte) ([]byte, error)
	mech    uint
	signed  int
}

func (f *signP11) SignInit(_ pkcs11.SessionHandle, m []*pkcs11.Mechanism, _ pkcs11.ObjectHandle) error {
	f.mech = m[0].Mechanism
	return f.initErr
}

func (f *signP11) Sign(_ pkcs11.SessionHandle, digest []byte) ([]byte, error) {
	f.signed++
	return f.sign(digest)
}

func fakeAuditSigner(f *signP11) *AuditSigner {
	return &AuditSigner{t: &Token{p: f, session: 1}, key: &Key{Handle: 9, Label: "audit"}}
}

func TestAuditSignerConvertsRawSignaturesToDER(t *testing.T) {
	rs := make([]byte, 64)
	rs[31], rs[32] = 7, 0x80 // r = 7; s has its top bit set, so DER needs a leading zero
	f := &signP11{sign: func([]byte) ([]byte, error) { return rs, nil }}
	digest := sha256.Sum256([]byte("entry"))
	der, err := fakeAuditSigner(f).Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if f.mech != pkcs11.CKM_ECDSA {
		t.Errorf("mechanism %#x, want CKM_ECDSA", f.mech)
	}
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) > 0 {
		t.Fatalf("not one DER ECDSA-Sig-Value: %v", err)
	}
	if sig.R.Int64() != 7 || sig.S.Cmp(new(big.Int).SetBytes(rs[32:])) != 0 {
		t.Errorf("r=%v s=%x, want 7 and %x", sig.R, sig.S, rs[32:])
	}
}

func TestAuditSignerFailures(t *testing.T) {
	digest := sha256.Sum256([]byte("entry"))
	for _, tt := range []struct {
		name   string
		f      *signP11
		digest []byte
		opts   crypto.SignerOpts
		call   string // the PKCS#11 call the error names, or "" for none
		signs  int
	}{
		{name: "fail C_SignInit", f: &signP11{initErr: pkcs11.Error(pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED)}, digest: digest[:], opts: crypto.SHA256, call: "C_SignInit"},
		{name: "fail C_Sign", f: &signP11{sign: func([]byte) ([]byte, error) { return nil, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN) }}, digest: digest[:], opts: crypto.SHA256, call: "C_Sign", signs: 1},
		{name: "fail signature of the wrong size", f: &signP11{sign: func([]byte) ([]byte, error) { return make([]byte, 70), nil }}, digest: digest[:], opts: crypto.SHA256, signs: 1},
		{name: "fail no hash", f: &signP11{}, digest: digest[:], opts: crypto.Hash(0)},
		{name: "fail digest of the wrong length", f: &signP11{}, digest: digest[:20], opts: crypto.SHA256},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fakeAuditSigner(tt.f).Sign(nil, tt.digest, tt.opts)
			if err == nil {
				t.Fatal("signed")
			}
			var perr *Error
			if tt.call != "" && (!errors.As(err, &perr) || perr.Call != tt.call) {
				t.Errorf("got %v, want a %s error", err, tt.call)
			}
			if tt.f.signed != tt.signs {
				t.Errorf("C_Sign called %d times, want %d", tt.f.signed, tt.signs)
			}
		})
	}
}

// openAuditToken provisions a fresh SoftHSM2 token and returns it logged in.
func openAuditToken(t *testing.T) *Token {
	t.Helper()
	tk, _ := openSoftHSMToken(t, "audit-test")
	return tk
}

// openSoftHSMToken provisions a fresh SoftHSM2 token labelled label and
// returns it opened through this package and logged in, with the
// throwaway token (its directory and PIN); both close when the test ends.
func openSoftHSMToken(t *testing.T, label string) (*Token, *softhsm.Token) {
	t.Helper()
	tok := softhsm.NewTestToken(t, label)
	m, err := LoadModule(ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tk, err := m.OpenToken(TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	return tk, tok
}

func TestSoftHSMAuditKeySignsAndNeverLeaves(t *testing.T) {
	tk := openAuditToken(t)
	k, err := tk.GenerateAuditKey("audit")
	if err != nil {
		t.Fatal(err)
	}
	if !k.Sensitive || k.Extractable {
		t.Errorf("policy: sensitive=%v extractable=%v, want true/false", k.Sensitive, k.Extractable)
	}
	if k.Class != pkcs11.CKO_PRIVATE_KEY || k.Curve == nil || k.Curve.Name != "P-256" || len(k.ID) != KeyIDBytes {
		t.Errorf("generated %+v, want a P-256 private key with a %d-byte CKA_ID", k, KeyIDBytes)
	}
	err = tk.withSession(func(s pkcs11.SessionHandle) error {
		_, err := tk.p.GetAttributeValue(s, k.Handle, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		return err
	})
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
		t.Errorf("reading CKA_VALUE: got %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}

	found, err := tk.FindAuditKey(KeySelector{Label: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(found.ID, k.ID) {
		t.Errorf("found CKA_ID %x, generated %x", found.ID, k.ID)
	}
	s, err := tk.AuditSigner(found)
	if err != nil {
		t.Fatal(err)
	}
	der, err := tk.PublicKeyDER(k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.PublicKeyDER(), der) {
		t.Error("signer's public key is not the pair's")
	}
	digest := sha256.Sum256([]byte("entry 1"))
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Error("the token's signature does not verify under the public key")
	}
	other := sha256.Sum256([]byte("entry 2"))
	if ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), other[:], sig) {
		t.Error("the signature verifies for another digest")
	}
}

func TestSoftHSMGenerateAuditKeyRefusesALabelInUse(t *testing.T) {
	tk := openAuditToken(t)
	if _, err := tk.GenerateAuditKey("audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.GenerateAuditKey("audit"); !errors.Is(err, ErrLabelExists) {
		t.Fatalf("second create: got %v, want ErrLabelExists", err)
	}
	if _, err := tk.GenerateAES256("aes", false); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.GenerateAuditKey("aes"); !errors.Is(err, ErrLabelExists) {
		t.Errorf("label of another kind of object: got %v, want ErrLabelExists", err)
	}
	if _, err := tk.GenerateAuditKey(""); err == nil {
		t.Error("generated an audit key without a label")
	}
}

func TestSoftHSMFindAuditKeyRefusesOtherKeys(t *testing.T) {
	tk := openAuditToken(t)
	// A master copy: EC P-256 too, but extractable and not allowed to sign.
	if _, err := tk.Generate("master", ECKey(P256), false); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Generate("p384", ECKey(P384), false); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"master", "p384"} {
		if _, err := tk.FindAuditKey(KeySelector{Label: label}); !errors.Is(err, ErrUnsuitableKey) {
			t.Errorf("%s: got %v, want ErrUnsuitableKey", label, err)
		}
	}
	if _, err := tk.FindAuditKey(KeySelector{Label: "absent"}); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("absent: got %v, want ErrKeyNotFound", err)
	}
}

// TestSoftHSMAuditKeySignsARecord writes a ceremony record signed in the
// token and verifies it with the exported public key alone.
func TestSoftHSMAuditKeySignsARecord(t *testing.T) {
	tk := openAuditToken(t)
	k, s, path, w := openSignedRecord(t, tk)
	token := record.TokenInfo(tk.Identity()) // the two stay convertible
	for _, step := range []string{"generate", "wrap"} {
		if _, err := w.Append(record.Entry{Command: "import", Step: step, Token: &token, Outcome: record.OutcomeOK,
			Outputs: map[string]string{"KeyId": k.IDHex()}}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	rep, err := verifyFile(t, path, s.Public())
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	for _, e := range rep.Entries {
		if e.Signature != record.SignatureValid || e.Parsed.Signature.KeyId != k.IDHex() {
			t.Errorf("entry %d: signature %s key %s, want valid by %s", e.Entry, e.Signature, e.Parsed.Signature.KeyId, k.IDHex())
		}
		if e.Parsed.Token == nil || e.Parsed.Token.Serial != tk.Identity().Serial {
			t.Errorf("entry %d: token %+v", e.Entry, e.Parsed.Token)
		}
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := verifyFile(t, path, &stranger.PublicKey); !errors.Is(err, record.ErrBroken) {
		t.Errorf("verified against another key: %v", err)
	}
}

// TestSoftHSMAuditKeySignsARecordFromManyGoroutines: 16 goroutines append
// to one record signed by an audit key in SoftHSM2, as a bulk run's workers
// do; the record writer has the token sign their entries at the same time
// (each signature on a session of its own), and the record verifies, every
// entry signed by the token's key. Run with -race.
func TestSoftHSMAuditKeySignsARecordFromManyGoroutines(t *testing.T) {
	tk := openAuditToken(t)
	k, s, path, w := openSignedRecord(t, tk)
	const workers, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := w.Append(record.Entry{Command: "import", Step: "generate", Outcome: record.OutcomeOK,
					Outputs: map[string]string{"KeyId": k.IDHex()}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	w.Close()
	rep, err := verifyFile(t, path, s.Public())
	if err != nil || rep.Count != workers*each {
		t.Fatalf("%v, %d entries\n%s", err, rep.Count, rep)
	}
}

func verifyFile(t *testing.T, path string, pub crypto.PublicKey) (*record.Report, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return record.Verify(bytes.NewReader(b), pub)
}

// openSignedRecord generates an audit key "audit" in tk and opens a new
// ceremony record signed with it; the record closes when the test ends.
func openSignedRecord(t *testing.T, tk *Token) (*Key, *AuditSigner, string, *record.Writer) {
	t.Helper()
	k, err := tk.GenerateAuditKey("audit")
	if err != nil {
		t.Fatal(err)
	}
	s, err := tk.AuditSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ceremony.jsonl")
	w, err := record.Open(path, s, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return k, s, path, w
}
