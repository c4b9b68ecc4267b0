package attest_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest/attesttest"
)

func root(t *testing.T, pemBytes []byte) []*x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{c}
}

// The one public real attestation (a Managed HSM's answer recorded by the
// Azure CLI's tests): its chains verify to Marvell's root and its
// attributes name an RSA key made in the HSM with the key's modulus, but
// its blobs carry no signature by the certified partition key in the form
// Microsoft's validator checks, so Verify refuses it. This test records
// that finding (docs/azure-import.md, "KEK attestation"): if a later
// sample verifies, it is the place to say so.
func TestGenuineSampleChainsAndAttributesHoldButItsSignatureDoesNot(t *testing.T) {
	raw, err := os.ReadFile("testdata/mhsm_key_attestation_response.json")
	if err != nil {
		t.Fatal(err)
	}
	var kb azkeys.KeyBundle
	if err := json.Unmarshal(raw, &kb); err != nil {
		t.Fatal(err)
	}
	a := kb.Attributes.Attestation
	st := attest.Statement{Version: *a.Version, CertificatePEM: a.CertificatePEMFile, PrivateKeyAttestation: a.PrivateKeyAttestation, PublicKeyAttestation: a.PublicKeyAttestation}
	kek := &rsa.PublicKey{N: new(big.Int).SetBytes(kb.Key.N), E: int(new(big.Int).SetBytes(kb.Key.E).Int64())}
	const path = "/keys/key1-hnhgsllilfcl3pdtpld/7071fabc480c0ca186f786a9b78c9456"
	pemRoot, _ := os.ReadFile("testdata/marvell_liquidsecurity_root.pem")
	at := time.Date(2025, 5, 8, 7, 0, 0, 0, time.UTC)
	_, err = attest.Verify(st, root(t, pemRoot), kek, path, at)
	if !errors.Is(err, attest.ErrAttestation) || !strings.Contains(err.Error(), "private key attestation's signature does not verify") {
		t.Fatalf("the genuine sample: %v (the chains should verify and the signature should not)", err)
	}
	// The signed attributes read as Microsoft's parser reads them.
	attrs, err := attest.ParseAttributes(st.PrivateKeyAttestation[:len(st.PrivateKeyAttestation)-attest.SignatureLen])
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[uint32]byte{attest.AttrClass: 3, attest.AttrKeyType: 0, attest.AttrLocal: 1, attest.AttrNeverExtractable: 1, attest.AttrExtractable: 0, attest.AttrSensitive: 1} {
		if v := attrs[typ]; len(v) != 1 || v[0] != want {
			t.Errorf("attribute %#x = %x, want %x", typ, v, want)
		}
	}
	if new(big.Int).SetBytes(attrs[attest.AttrModulus]).Cmp(kek.N) != 0 || !strings.HasPrefix(string(attrs[attest.AttrID]), path) {
		t.Errorf("the sample attests another key: ID %q", attrs[attest.AttrID])
	}
	// Another manufacturer's root does not even reach the signature.
	other, _ := attesttest.New()
	if _, err := attest.Verify(st, []*x509.Certificate{other.Root}, kek, path, at); err == nil || !strings.Contains(err.Error(), "signed by the manufacturer root given") {
		t.Errorf("another root: %v", err)
	}
}

func TestVerifiesAnAttestationOfTheKEK(t *testing.T) {
	a, err := attesttest.New()
	if err != nil {
		t.Fatal(err)
	}
	kek := mustKey(t)
	const path = "/keys/kmsbridge-kek/0123abcd"
	res, err := attest.Verify(a.Attest(&kek.PublicKey, path), []*x509.Certificate{a.Root}, &kek.PublicKey, path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Partition == "" || res.PoolCA == "" || res.PartitionKeySHA256 == "" || len(res.Checked) != 4 || !strings.Contains(res.Summary(), "CKA_LOCAL") {
		t.Errorf("result %+v", res)
	}
	// Without the public key attestation too (symmetric keys have none).
	st := a.Attest(&kek.PublicKey, path)
	st.PublicKeyAttestation = nil
	if _, err := attest.Verify(st, []*x509.Certificate{a.Root}, &kek.PublicKey, path, time.Now()); err != nil {
		t.Error(err)
	}
}

func mustKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRefusesEveryAlteration(t *testing.T) {
	a, err := attesttest.New()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := attesttest.New()
	kek, stranger := mustKey(t), mustKey(t)
	const path = "/keys/kmsbridge-kek/0123abcd"
	roots := []*x509.Certificate{a.Root}
	without := func(typ uint32, val []byte) []attesttest.Attr {
		var out []attesttest.Attr
		for _, at := range attesttest.KeyAttrs(3, &kek.PublicKey, path) {
			if at.Type == typ {
				if val == nil {
					continue
				}
				at.Value = val
			}
			out = append(out, at)
		}
		return out
	}
	for name, c := range map[string]struct {
		edit  func(*attest.Statement)
		roots []*x509.Certificate
		at    time.Time
		want  string
	}{
		"flipped attribute byte": {edit: func(s *attest.Statement) { s.PrivateKeyAttestation[40] ^= 1 }, want: "signature does not verify"},
		"flipped signature byte": {edit: func(s *attest.Statement) { s.PublicKeyAttestation[len(s.PublicKeyAttestation)-1] ^= 1 }, want: "public key attestation's signature"},
		"another key":            {edit: func(s *attest.Statement) { *s = a.Attest(&stranger.PublicKey, path) }, want: "modulus is not the KEK's"},
		"another key path":       {edit: func(s *attest.Statement) { *s = a.Attest(&kek.PublicKey, "/keys/other/1") }, want: "names key"},
		"extractable": {edit: func(s *attest.Statement) {
			s.PrivateKeyAttestation = a.Blob(without(attest.AttrExtractable, []byte{1}))
		}, want: "not extractable"},
		"imported, not local":  {edit: func(s *attest.Statement) { s.PrivateKeyAttestation = a.Blob(without(attest.AttrLocal, []byte{0})) }, want: "CKA_LOCAL"},
		"no never-extractable": {edit: func(s *attest.Statement) { s.PrivateKeyAttestation = a.Blob(without(attest.AttrNeverExtractable, nil)) }, want: "never extractable"},
		"duplicated attribute": {edit: func(s *attest.Statement) {
			s.PrivateKeyAttestation = a.Blob(append(without(0xffff, nil), attesttest.Attr{Type: attest.AttrLocal, Value: []byte{1}}))
		}, want: "twice"},
		"signed by another HSM": {edit: func(s *attest.Statement) {
			s.PrivateKeyAttestation = other.Blob(attesttest.KeyAttrs(3, &kek.PublicKey, path))
		}, want: "signature does not verify"},
		"pool of another HSM":    {edit: func(s *attest.Statement) { s.CertificatePEM = mix(a, other) }, want: "two HSMs"},
		"another manufacturer":   {roots: []*x509.Certificate{other.Root}, want: "signed by the manufacturer root given"},
		"no root":                {roots: []*x509.Certificate{}, want: "no manufacturer root"},
		"expired card":           {at: time.Now().Add(20 * 365 * 24 * time.Hour), want: "not at"},
		"another version":        {edit: func(s *attest.Statement) { s.Version = "MRVL-2" }, want: "is not MRVL-1"},
		"truncated blob":         {edit: func(s *attest.Statement) { s.PrivateKeyAttestation = s.PrivateKeyAttestation[:200] }, want: "too short"},
		"no private attestation": {edit: func(s *attest.Statement) { s.PrivateKeyAttestation = nil }, want: "no private key attestation"},
		"garbage in the bundle":  {edit: func(s *attest.Statement) { s.CertificatePEM = append(s.CertificatePEM, "junk"...) }, want: "not PEM"},
		"a key in the bundle": {edit: func(s *attest.Statement) {
			s.CertificatePEM = append(s.CertificatePEM, "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"...)
		}, want: "not a certificate"},
		"public attestation swapped": {edit: func(s *attest.Statement) { s.PublicKeyAttestation = s.PrivateKeyAttestation }, want: "a public key"},
	} {
		st := a.Attest(&kek.PublicKey, path)
		if c.edit != nil {
			c.edit(&st)
		}
		r := roots
		if c.roots != nil {
			r = c.roots
		}
		at := time.Now()
		if !c.at.IsZero() {
			at = c.at
		}
		_, err := attest.Verify(st, r, &kek.PublicKey, path, at)
		if !errors.Is(err, attest.ErrAttestation) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// mix is a's manufacturer chain with b's pool CA and its partition.
func mix(a, b *attesttest.Authority) []byte {
	var out []byte
	for _, c := range []*x509.Certificate{a.Card, a.Partition, b.Pool, b.PoolPartition} {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// The attestation binds the whole KEK, not only its modulus: a bundle
// whose public key keeps the attested modulus but changes the exponent
// (e=1 makes RSA-OAEP "encryption" the identity, so the wrapped key would
// be readable by anyone) must not verify.
func TestRefusesTheAttestedModulusWithAnotherExponent(t *testing.T) {
	a, err := attesttest.New()
	if err != nil {
		t.Fatal(err)
	}
	kek := mustKey(t)
	const path = "/keys/kmsbridge-kek/0123abcd"
	st := a.Attest(&kek.PublicKey, path)
	for _, e := range []int{1, 3, 65539} {
		swapped := &rsa.PublicKey{N: kek.N, E: e}
		if _, err := attest.Verify(st, []*x509.Certificate{a.Root}, swapped, path, time.Now()); !errors.Is(err, attest.ErrAttestation) || !strings.Contains(err.Error(), "exponent") {
			t.Errorf("the attested modulus with exponent %d: %v", e, err)
		}
	}
	// An attestation that names no exponent binds no whole key.
	var attrs []attesttest.Attr
	for _, at := range attesttest.KeyAttrs(3, &kek.PublicKey, path) {
		if at.Type != attest.AttrPublicExponent {
			attrs = append(attrs, at)
		}
	}
	st.PrivateKeyAttestation = a.Blob(attrs)
	st.PublicKeyAttestation = nil
	if _, err := attest.Verify(st, []*x509.Certificate{a.Root}, &kek.PublicKey, path, time.Now()); !errors.Is(err, attest.ErrAttestation) || !strings.Contains(err.Error(), "exponent") {
		t.Errorf("no exponent attested: %v", err)
	}
}

// The attestation names no vault: a genuine attestation of another
// customer's Managed HSM (another partition under the same manufacturer
// root) verifies as well as one of the operator's own. Only a partition
// pin tells them apart, and it refuses the other HSM's KEK with
// ErrOtherHSM, naming the partition it came from.
func TestPartitionPinRefusesAnotherHSMsGenuineAttestation(t *testing.T) {
	mine, err := attesttest.New()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := mine.OtherPartition(2, "attacker-hsm")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	const path = "/keys/kek/0123456789abcdef0123456789abcdef"
	roots := root(t, mine.RootPEM())
	pin, err := attest.ParsePartitionPin(strings.ToUpper(mine.PartitionKeySHA256()))
	if err != nil {
		t.Fatal(err)
	}
	// Without a pin, the other HSM's attestation verifies: what the
	// manufacturer's chain alone proves.
	if _, err := attest.Verify(theirs.Attest(&key.PublicKey, path), roots, &key.PublicKey, path, time.Now()); err != nil {
		t.Fatalf("another genuine partition, unpinned: %v", err)
	}
	res, err := attest.VerifyPinned(mine.Attest(&key.PublicKey, path), roots, &key.PublicKey, path, time.Now(), []string{"00" + pin[2:], pin})
	if err != nil || !res.PinnedPartition || res.PartitionKeySHA256 != pin || !strings.Contains(res.Summary(), "pinned") {
		t.Fatalf("my own partition, pinned: %+v %v", res, err)
	}
	_, err = attest.VerifyPinned(theirs.Attest(&key.PublicKey, path), roots, &key.PublicKey, path, time.Now(), []string{pin})
	if !errors.Is(err, attest.ErrOtherHSM) || !errors.Is(err, attest.ErrAttestation) || !strings.Contains(err.Error(), theirs.PartitionKeySHA256()) ||
		!strings.Contains(err.Error(), "PARTN:2") || !strings.Contains(err.Error(), "--azure-hsm-partition") {
		t.Fatalf("another HSM's partition, pinned to mine: %v", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), pin + "00"} {
		if _, err := attest.ParsePartitionPin(bad); err == nil {
			t.Errorf("pin %q accepted", bad)
		}
	}
	if p, err := attest.ParsePartitionPin(strings.ToUpper(pin[:2]) + ":" + pin[2:]); err != nil || p != pin {
		t.Errorf("pin with a colon: %q %v", p, err)
	}
}
