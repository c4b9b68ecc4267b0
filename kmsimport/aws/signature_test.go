package aws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// testWrapped is a wrapped file of HSM key label (CKA_ID id) for one
// bundle, with blob as its wrapped material.
func testWrapped(label, id string, blob []byte) *kmsimport.Wrapped {
	token := []byte("import-token")
	return &kmsimport.Wrapped{Format: kmsimport.WrappedFormat, BundleSha256: strings.Repeat("b", 64), KeyId: "1234abcd-12ab-34cd-56ef-1234567890ab",
		KeySpec: "SYMMETRIC_DEFAULT", WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_4096", PublicKeySha256: strings.Repeat("c", 64),
		ImportToken: token, ImportTokenSha256: kmsimport.SHA256Hex(token), ParametersValidTo: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		EncryptedKeyMaterial: blob, EncryptedKeyMaterialSha256: kmsimport.SHA256Hex(blob),
		Token: hsm.TokenIdentity{Label: "ceremony", Serial: "0f1e"}, HSMKey: kmsimport.HSMKey{KeyLabel: label, KeyID: id}}
}

// writeSigned writes w to dir/name and signs it with key.
func writeSigned(t *testing.T, dir, name string, w *kmsimport.Wrapped, key *ecdsa.PrivateKey) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if fp, err := AuditKeyFingerprint(&key.PublicKey); err == nil {
		w.AuditPublicKeySha256, w.AuditKeyId = fp, "0102"
	}
	if err := WriteWrapped(p, w); err != nil {
		t.Fatal(err)
	}
	if _, err := SignWrapped(p, w, key, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWrappedSignature signs a wrapped file and checks that any change to
// the file, the signature or the key is found.
func TestWrappedSignature(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := t.TempDir()
	w := testWrapped("a", "aa01", []byte("blob-of-a"))
	path := writeSigned(t, dir, "w.json", w, key)
	sig := path + SignatureSuffix
	if _, err := VerifyWrappedSignature(path, sig, w, &key.PublicKey); err != nil {
		t.Fatalf("a fresh signature does not verify: %v", err)
	}
	if _, err := SignWrapped(path, w, key, []byte{1, 2}); err == nil {
		t.Error("SignWrapped overwrote an existing signature file")
	}
	if _, err := VerifyWrappedSignature(path, sig, w, &other.PublicKey); !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "not by the ceremony's audit key") {
		t.Errorf("another audit key: %v", err)
	}
	// Edit the evidence, as an attacker in transit would.
	edited := filepath.Join(dir, "edited.json")
	e := *w
	e.Evidence.KeyCheckValue = "000000"
	WriteWrapped(edited, &e)
	if _, err := VerifyWrappedSignature(edited, sig, &e, &key.PublicKey); !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "altered after wrap") {
		t.Errorf("an edited file: %v", err)
	}
	// Forge the digest in the signature file too: the signature fails.
	s, _ := readWrappedSignature(sig)
	raw, _ := os.ReadFile(edited)
	s.WrappedSha256 = kmsimport.SHA256Hex(raw)
	forged := filepath.Join(dir, "forged.sig")
	kmsimport.WriteNewFile(forged, s)
	if _, err := VerifyWrappedSignature(edited, forged, &e, &key.PublicKey); !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("a forged digest: %v", err)
	}
	if _, err := VerifyWrappedSignature(path, filepath.Join(dir, "nosuch.sig"), w, &key.PublicKey); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "--signature") {
		t.Errorf("a missing signature file: %v", err)
	}
}

// TestSwappedBlobIsRefused: two HSM keys wrapped from one bundle, each
// file signed. Moving one key's blob (with its digest) into the other's
// file, or pairing one file with the other's signature, is refused.
func TestSwappedBlobIsRefused(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := t.TempDir()
	a, b := testWrapped("a", "aa01", []byte("blob-of-a")), testWrapped("b", "bb02", []byte("blob-of-b"))
	pa, pb := writeSigned(t, dir, "a.json", a, key), writeSigned(t, dir, "b.json", b, key)

	// a's file carrying b's blob, signed a's signature copied along.
	swapped := *a
	swapped.EncryptedKeyMaterial, swapped.EncryptedKeyMaterialSha256 = b.EncryptedKeyMaterial, b.EncryptedKeyMaterialSha256
	ps := filepath.Join(dir, "swapped.json")
	WriteWrapped(ps, &swapped)
	copyTestFile(t, pa+SignatureSuffix, ps+SignatureSuffix)
	if _, err := CheckIntegrity(IntegrityCheck{Path: ps, Wrapped: &swapped, AuditPublicKey: &key.PublicKey}); !errors.Is(err, kmsimport.ErrVerification) {
		t.Errorf("a's file with b's blob: %v, want ErrVerification", err)
	}
	// b's file with a's signature: the binding names another HSM key.
	if _, err := VerifyWrappedSignature(pb, pa+SignatureSuffix, b, &key.PublicKey); !errors.Is(err, kmsimport.ErrVerification) {
		t.Errorf("b's file with a's signature: %v", err)
	}
	// A signature whose binding names b, re-signed by another key, is not the ceremony's.
	if _, err := CheckIntegrity(IntegrityCheck{Path: pa, Wrapped: a, AuditPublicKey: &key.PublicKey}); err != nil {
		t.Errorf("the untouched file: %v", err)
	}
}

// TestIntegrityIsOnByDefault: an unsigned wrapped file is refused unless
// AllowUnsigned; a file the wrapped file or the bundle says was signed is
// refused without a signature that verifies, AllowUnsigned or not; the
// bundle's fingerprint can vouch for the key the signature carries.
func TestIntegrityIsOnByDefault(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := t.TempDir()
	fp, _ := AuditKeyFingerprint(&key.PublicKey)

	plain := testWrapped("a", "aa01", []byte("blob"))
	pp := filepath.Join(dir, "plain.json")
	WriteWrapped(pp, plain)
	if _, err := CheckIntegrity(IntegrityCheck{Path: pp, Wrapped: plain}); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "--allow-unsigned") {
		t.Errorf("unsigned by default: %v", err)
	}
	if ev, err := CheckIntegrity(IntegrityCheck{Path: pp, Wrapped: plain, AllowUnsigned: true}); err != nil || !strings.Contains(ev, "unsigned, not checked") {
		t.Errorf("unsigned with AllowUnsigned: %q %v", ev, err)
	}
	// The bundle says an audit key was in use: AllowUnsigned does not help.
	bundle := &kmsimport.Bundle{AuditPublicKeySha256: fp}
	if _, err := CheckIntegrity(IntegrityCheck{Path: pp, Wrapped: plain, Bundle: bundle, BundleSha256: plain.BundleSha256, AllowUnsigned: true}); !errors.Is(err, kmsimport.ErrVerification) {
		t.Errorf("bundle names a key, file unsigned: %v", err)
	}

	signed := testWrapped("a", "aa01", []byte("blob"))
	ps := writeSigned(t, dir, "signed.json", signed, key)
	// The file says it was signed; its .sig removed.
	stripped := filepath.Join(dir, "stripped.json")
	copyTestFile(t, ps, stripped)
	if _, err := CheckIntegrity(IntegrityCheck{Path: stripped, Wrapped: signed, AllowUnsigned: true}); !errors.Is(err, kmsimport.ErrVerification) || !strings.Contains(err.Error(), "no signature") {
		t.Errorf("signed file without its .sig: %v", err)
	}
	// Signed, but nothing here to check it with.
	if _, err := CheckIntegrity(IntegrityCheck{Path: ps, Wrapped: signed}); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "--audit-public-key") {
		t.Errorf("signed, no key: %v", err)
	}
	// The bundle vouches for the key the signature carries.
	if _, err := CheckIntegrity(IntegrityCheck{Path: ps, Wrapped: signed, Bundle: bundle, BundleSha256: signed.BundleSha256}); err != nil {
		t.Errorf("bundle-vouched key: %v", err)
	}
	// The bundle from another bundle file.
	if _, err := CheckIntegrity(IntegrityCheck{Path: ps, Wrapped: signed, Bundle: bundle, BundleSha256: strings.Repeat("e", 64)}); !errors.Is(err, kmsimport.ErrVerification) {
		t.Errorf("another bundle file: %v", err)
	}
	// The bundle names another key than the one given.
	if _, err := CheckIntegrity(IntegrityCheck{Path: ps, Wrapped: signed, Bundle: bundle, BundleSha256: signed.BundleSha256, AuditPublicKey: &other.PublicKey}); !errors.Is(err, kmsimport.ErrVerification) {
		t.Errorf("bundle and --audit-public-key disagree: %v", err)
	}
}

func copyTestFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
