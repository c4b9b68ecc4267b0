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

// The attestation names no vault, only the partition that made the KEK.
// Two Managed HSMs under one manufacturer root (the victim's and one of
// the attacker's own): a bundle prepared against the attacker's HSM and
// edited to name the victim's vault verifies against the root alone, so
// the offline wrap would wrap the victim's key under the attacker's KEK.
// The victim's partition pin (--azure-hsm-partition) refuses the other
// HSM's KEK (exit 5, nothing generated, wrapped or imported) in import,
// prepare, the offline wrap and upload, and lets the pinned HSM's through.
func TestAzureKEKOfAnotherManagedHSMIsRefusedByThePartitionPin(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	mine := startAzure(t, azkvemu.ManagedHSM, false)
	theirs := startAzure(t, azkvemu.ManagedHSM, false)
	other, err := mine.AttestationAuthority().OtherPartition(2, "attacker-hsm")
	if err != nil {
		t.Fatal(err)
	}
	theirs.UseAttestationAuthority(other)
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root.pem")
	os.WriteFile(rootFile, mine.AttestationRootPEM(), 0o600)
	pin := mine.AttestationAuthority().PartitionKeySHA256()
	pinned := []string{"--azure-attestation-root", rootFile, "--azure-hsm-partition", pin}
	refusedAsOtherHSM := func(what string, r run) {
		t.Helper()
		out := r.Stdout + r.Stderr
		if r.Code != 5 || !strings.Contains(out, "another HSM") || !strings.Contains(out, other.PartitionKeySHA256()) || !strings.Contains(out, "--azure-hsm-partition") {
			t.Fatalf("%s: exit %d, want 5 naming the other partition and the pin\n%s\n%s", what, r.Code, r.Stderr, r.Stdout)
		}
	}

	// import: the other HSM's KEK is refused before anything is wrapped.
	r := theirs.importAzure(t, tok, append([]string{"--key-name", "i1", "--key-label", "i1", "--generate", "--azure-key-type", "RSA-2048"}, pinned...)...)
	refusedAsOtherHSM("import into the other HSM", r)
	if theirs.Calls("import") != 0 {
		t.Fatalf("import into the other HSM imported %d keys", theirs.Calls("import"))
	}
	res := azureResult(t, mine.importAzure(t, tok, append([]string{"--key-name", "i2", "--key-label", "i2", "--generate", "--azure-key-type", "RSA-2048"}, pinned...)...))
	if res.KEKAttestation == nil || !res.KEKAttestation.PinnedPartition || !strings.Contains(res.Attestation, "pinned") {
		t.Fatalf("import into my HSM, pinned: %q %+v", res.Attestation, res.KEKAttestation)
	}

	// prepare: refused against the other HSM, verified against mine.
	if r := kmsbridge(t, nil, append(append(append([]string{}, theirs.env...), "prepare", "--cloud", "azure", "--endpoint-url", theirs.URL(), "--allow-endpoint", theirs.URL(), "--managed-hsm",
		"--key-name", "p1", "--azure-key-type", "RSA-2048", "--kek-size", "2048", "--state-dir", theirs.state, "--out", filepath.Join(dir, "p1.json")), pinned...)...); true {
		refusedAsOtherHSM("prepare against the other HSM", r)
	}

	// The air-gapped attack: prepared against the attacker's HSM, edited
	// to name my vault, the fingerprint read aloud from that bundle.
	bundleTheirs, bt := azurePrepare(t, theirs, "sealed", "--managed-hsm", "--azure-key-type", "RSA-2048")
	raw, err := os.ReadFile(bundleTheirs)
	if err != nil {
		t.Fatal(err)
	}
	var eb kmsimport.Bundle
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(raw), theirs.URL(), mine.URL())), &eb); err != nil {
		t.Fatal(err)
	}
	eb.ImportToken = []byte(strings.ReplaceAll(string(eb.ImportToken), theirs.URL(), mine.URL()))
	eb.ImportTokenSha256 = kmsimport.SHA256Hex(eb.ImportToken)
	aimed := filepath.Join(dir, "aimed.json")
	raw, _ = json.MarshalIndent(eb, "", "  ")
	os.WriteFile(aimed, raw, 0o600)
	out := filepath.Join(dir, "w.json")
	// The manufacturer root alone lets it through: the finding this pin closes.
	if r := azureWrap(t, mine, tok, aimed, bt, filepath.Join(dir, "unpinned.json"), "--key-label", "unpinned", "--generate", "--azure-attestation-root", rootFile); r.Code != 0 {
		t.Fatalf("the other HSM's genuine attestation, unpinned: exit %d (the root alone should verify it)\n%s", r.Code, r.Stderr)
	}
	r = azureWrap(t, mine, tok, aimed, bt, out, append([]string{"--key-label", "victim", "--generate"}, pinned...)...)
	refusedAsOtherHSM("offline wrap of a bundle aimed at my vault with the other HSM's KEK", r)
	if tokenHasLabel(t, tok, "victim") {
		t.Fatal("the refused wrap generated an HSM key")
	}
	// A pin without the root proves nothing and is refused before the token.
	if r := azureWrap(t, mine, tok, aimed, bt, out, "--key-label", "victim", "--generate", "--azure-hsm-partition", pin); r.Code != 2 || !strings.Contains(r.Stderr, "--azure-attestation-root") || tokenHasLabel(t, tok, "victim") {
		t.Fatalf("a pin without a root: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := azureWrap(t, mine, tok, aimed, bt, out, "--key-label", "victim", "--generate", "--azure-attestation-root", rootFile, "--azure-hsm-partition", "not-a-digest"); r.Code != 2 || tokenHasLabel(t, tok, "victim") {
		t.Fatalf("a malformed pin: exit %d\n%s", r.Code, r.Stderr)
	}

	// upload: the online host reads the vault's attestation of the KEK
	// again and holds it to the pin.
	wt := filepath.Join(dir, "theirs.wrapped.json")
	if r := azureWrap(t, theirs, tok, bundleTheirs, bt, wt, "--key-label", "t1", "--generate"); r.Code != 0 {
		t.Fatalf("wrap for the other HSM: exit %d\n%s", r.Code, r.Stderr)
	}
	r = azureUpload(t, theirs, append([]string{"--wrapped", wt, "--allow-unsigned"}, pinned...)...)
	refusedAsOtherHSM("upload to the other HSM", r)
	if theirs.Calls("import") != 0 {
		t.Fatalf("the refused upload imported %d keys", theirs.Calls("import"))
	}
	bundleMine, bm := azurePrepare(t, mine, "m1", append([]string{"--managed-hsm", "--azure-key-type", "RSA-2048"}, pinned...)...)
	if !strings.Contains(bm.Azure.KEKAttestation, "pinned") {
		t.Fatalf("prepare against my HSM, pinned: %q", bm.Azure.KEKAttestation)
	}
	wm := filepath.Join(dir, "mine.wrapped.json")
	if r := azureWrap(t, mine, tok, bundleMine, bm, wm, append([]string{"--key-label", "m1", "--generate"}, pinned...)...); r.Code != 0 {
		t.Fatalf("wrap for my HSM, pinned: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := azureUpload(t, mine, append([]string{"--wrapped", wm, "--allow-unsigned"}, pinned...)...); r.Code != 0 || !strings.Contains(r.Stdout, "verified at upload") {
		t.Fatalf("upload to my HSM, pinned: exit %d\n%s\n%s", r.Code, r.Stderr, r.Stdout)
	}
}
