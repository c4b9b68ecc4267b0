package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/attest/attesttest"
)

// With the manufacturer root given, a Managed HSM's attestation of the KEK
// is verified before anything is wrapped under it, in the one-pass import
// and in prepare; a root of another manufacturer refuses the KEK (exit 5)
// before the wrap; a Key Vault, which attests nothing, refuses the flag.
func TestAzureManagedHSMKEKAttestationVerifiedBeforeTheWrap(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, false)
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, v.AttestationRootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	// A root of another manufacturer: refused at create-kek, before the wrap.
	other, err := attesttest.New()
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(dir, "other.pem")
	os.WriteFile(otherFile, other.RootPEM(), 0o600)
	r := v.importAzure(t, tok, "--key-name", "k0", "--key-label", "k0", "--generate", "--azure-key-type", "RSA-2048", "--azure-attestation-root", otherFile)
	if r.Code != 5 || !strings.Contains(r.Stdout+r.Stderr, "signed by the manufacturer root given") || v.Calls("import") != 0 {
		t.Fatalf("another manufacturer's root: exit %d, %d imports\n%s\n%s", r.Code, v.Calls("import"), r.Stderr, r.Stdout)
	}
	// The right root: the KEK (made by the refused run) is verified in
	// check-azure, and the import goes on.
	res := azureResult(t, v.importAzure(t, tok, "--key-name", "k1", "--key-label", "k1", "--generate", "--azure-key-type", "RSA-2048", "--azure-attestation-root", rootFile))
	if !strings.HasPrefix(res.Attestation, azure.AttestationVerified+": ") || res.KEKAttestation == nil || res.KEKAttestation.PartitionKeySHA256 == "" ||
		!strings.Contains(stepSummaries(res), "KEK attestation verified") || !res.Proof.MaterialConfirmed {
		t.Fatalf("verified import: %+v\n%s", res, stepSummaries(res))
	}
	// Without the root, the result says what was not checked.
	res = azureResult(t, v.importAzure(t, tok, "--key-name", "k2", "--key-label", "k2", "--generate", "--azure-key-type", "EC-P256"))
	if !strings.HasPrefix(res.Attestation, azure.AttestationNotVerified) || !strings.Contains(res.Attestation, "--azure-attestation-root") || res.KEKAttestation != nil {
		t.Fatalf("without a root: %q", res.Attestation)
	}
	// prepare verifies it too, and the bundle says so.
	_, b := azurePrepare(t, v, "k3", "--managed-hsm", "--azure-key-type", "AES-256", "--azure-attestation-root", rootFile)
	if !strings.HasPrefix(b.Azure.KEKAttestation, azure.AttestationVerified+": ") {
		t.Fatalf("bundle KekAttestation %q", b.Azure.KEKAttestation)
	}
	if r := kmsbridge(t, nil, append(append([]string{}, v.env...), "prepare", "--cloud", "azure", "--endpoint-url", v.URL(), "--allow-endpoint", v.URL(), "--managed-hsm",
		"--key-name", "k4", "--azure-key-type", "RSA-2048", "--azure-attestation-root", otherFile, "--state-dir", v.state, "--out", filepath.Join(dir, "b4.json"))...); r.Code != 5 {
		t.Fatalf("prepare with another root: exit %d\n%s", r.Code, r.Stderr)
	}
	// A Key Vault attests nothing: the flag is refused before any change.
	kv := startAzureVault(t)
	r = kv.importAzure(t, tok, "--key-name", "k5", "--key-label", "k5", "--generate", "--azure-key-type", "RSA-2048", "--azure-attestation-root", rootFile)
	if r.Code != 2 || !strings.Contains(r.Stdout+r.Stderr, "attests no keys") || kv.Versions(azure.DefaultKEKName) != 0 || tokenHasLabel(t, tok, "k5") {
		t.Fatalf("a Key Vault with a root: exit %d\n%s\n%s", r.Code, r.Stderr, r.Stdout)
	}
}

// prepare carries the Managed HSM's attestation of the KEK in the bundle;
// the offline wrap verifies it against the root the officers bring there,
// before any HSM key is found or made.
func TestAzureSplitKEKAttestationVerifiedOffline(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	v := startAzure(t, azkvemu.ManagedHSM, false)
	dir := t.TempDir()
	rootFile, otherFile := filepath.Join(dir, "root.pem"), filepath.Join(dir, "other.pem")
	os.WriteFile(rootFile, v.AttestationRootPEM(), 0o600)
	other, err := attesttest.New()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(otherFile, other.RootPEM(), 0o600)
	bundle, b := azurePrepare(t, v, "sealed", "--managed-hsm", "--azure-key-type", "RSA-2048")
	if b.Azure.KEKAttestationStatement == nil || !strings.Contains(b.Azure.KEKAttestation, "carried in the bundle") {
		t.Fatalf("the bundle carries no attestation: %+v", b.Azure)
	}
	out := filepath.Join(dir, "w.json")
	if r := azureWrap(t, v, tok, bundle, b, out, "--key-label", "bad", "--generate", "--azure-attestation-root", otherFile); r.Code != 5 || tokenHasLabel(t, tok, "bad") {
		t.Fatalf("another manufacturer's root offline: exit %d\n%s", r.Code, r.Stderr)
	}
	// A statement altered in the bundle is refused offline too.
	var eb kmsimport.Bundle
	readJSON(t, bundle, &eb)
	eb.Azure.KEKAttestationStatement.PrivateKeyAttestation[30] ^= 1
	edited := filepath.Join(dir, "edited.json")
	raw, _ := json.MarshalIndent(eb, "", "  ")
	os.WriteFile(edited, raw, 0o600)
	if r := azureWrap(t, v, tok, edited, eb, out, "--key-label", "bad", "--generate", "--azure-attestation-root", rootFile); r.Code != 5 || !strings.Contains(r.Stderr, "signature does not verify") || tokenHasLabel(t, tok, "bad") {
		t.Fatalf("altered attestation: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := azureWrap(t, v, tok, bundle, b, out, "--key-label", "sealed", "--generate", "--azure-attestation-root", rootFile); r.Code != 0 {
		t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
	}
	var w kmsimport.Wrapped
	readJSON(t, out, &w)
	if !strings.HasPrefix(w.Azure.KEKAttestation, azure.AttestationVerified+" on the offline host: ") {
		t.Fatalf("wrapped KekAttestation %q", w.Azure.KEKAttestation)
	}
	if res := azureUpload(t, v, "--wrapped", out, "--allow-unsigned"); res.Code != 0 || !strings.Contains(res.Stdout, "on the offline host") {
		t.Fatalf("upload: exit %d\n%s\n%s", res.Code, res.Stderr, res.Stdout)
	}
	// The bundle's own words about the KEK are input: wrapped without a
	// root, a bundle that says "verified" is not reported verified by this
	// host in the wrapped file (and so the upload's result), which says
	// what this host did not check.
	readJSON(t, bundle, &eb)
	eb.Azure.KEKAttestation = azure.AttestationVerified + ": everything checked"
	raw, _ = json.MarshalIndent(eb, "", "  ")
	os.WriteFile(edited, raw, 0o600)
	claimed := filepath.Join(dir, "claimed.json")
	if r := azureWrap(t, v, tok, edited, eb, claimed, "--key-label", "claimed", "--generate"); r.Code != 0 {
		t.Fatalf("wrap of a bundle claiming verification: exit %d\n%s\n%s", r.Code, r.Stderr, r.Stdout)
	}
	readJSON(t, claimed, &w)
	if strings.HasPrefix(w.Azure.KEKAttestation, azure.AttestationVerified) || !strings.Contains(w.Azure.KEKAttestation, "not verified on the offline host") {
		t.Fatalf("wrapped KekAttestation %q: the bundle's claim taken as this host's", w.Azure.KEKAttestation)
	}
}
