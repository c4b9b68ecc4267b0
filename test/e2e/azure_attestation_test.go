package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/azkvemu"
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
