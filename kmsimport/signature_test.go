package kmsimport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWrappedSignature signs a wrapped file and checks that any change to
// the file, the signature or the key is found.
func TestWrappedSignature(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := t.TempDir()
	path := filepath.Join(dir, "w.json")
	if err := os.WriteFile(path, []byte(`{"Format":"x","Evidence":{"HsmMac":"aa"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SignWrapped(path, key, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	sig := path + SignatureSuffix
	if _, err := VerifyWrappedSignature(path, sig, &key.PublicKey); err != nil {
		t.Fatalf("a fresh signature does not verify: %v", err)
	}
	if _, err := SignWrapped(path, key, []byte{1, 2}); err == nil {
		t.Error("SignWrapped overwrote an existing signature file")
	}
	if _, err := VerifyWrappedSignature(path, sig, &other.PublicKey); !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "not by --audit-public-key") {
		t.Errorf("another audit key: %v", err)
	}
	// Edit the evidence, as an attacker in transit would.
	edited := filepath.Join(dir, "edited.json")
	os.WriteFile(edited, []byte(`{"Format":"x","Evidence":{"HsmMac":"bb"}}`), 0o600)
	if _, err := VerifyWrappedSignature(edited, sig, &key.PublicKey); !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "altered after wrap") {
		t.Errorf("an edited file: %v", err)
	}
	// Forge the digest in the signature file too: the signature fails.
	raw, _ := os.ReadFile(sig)
	forged := filepath.Join(dir, "forged.sig")
	var s WrappedSignature
	readStrict("signature", sig, &s)
	s.WrappedSha256 = sha256Hex([]byte(`{"Format":"x","Evidence":{"HsmMac":"bb"}}`))
	writeNewFile(forged, s)
	if _, err := VerifyWrappedSignature(edited, forged, &key.PublicKey); !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("a forged digest: %v", err)
	}
	_ = raw
	if _, err := VerifyWrappedSignature(path, filepath.Join(dir, "nosuch.sig"), &key.PublicKey); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "--signature") {
		t.Errorf("a missing signature file: %v", err)
	}
}
