package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// writeTargetsOnly writes a ceremony of one EC P-256 key with no AWS KMS
// part (no kms section), sent to the given targets (mcGCPTarget,
// mcAzureTarget); edit changes the text as writeMultiCloud's does.
func (cl *clouds) writeTargetsOnly(t *testing.T, tok *softhsm.Token, targets string, edit ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n", tok.Module, tok.Label)
	fmt.Fprintf(&b, "record: %s\n", cl.rec)
	b.WriteString("operators:\n  - Alice (custodian)\n  - Bob (witness)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n")
	b.WriteString("  - hsm-label: signer\n    generate: true\n    key-spec: ECC_NIST_P256\n    valid-to: 2027-06-30\n    tags:\n      owner: payments\n    targets:\n")
	b.WriteString(targets)
	text := strings.NewReplacer("LOCATION", gcpLocation, "CRYPTOKEY", "signer", "ROOTS", cl.gcp.Roots, "GCPURL", cl.gcp.URL,
		"KEYNAME", "signer", "KEKNAME", "kek", "AZURL", cl.azure.URL()).Replace(b.String())
	for i := 0; i+1 < len(edit); i += 2 {
		if !strings.Contains(text, edit[i]) {
			t.Fatalf("%q is not in the ceremony file", edit[i])
		}
		text = strings.Replace(text, edit[i], edit[i+1], 1)
	}
	path := filepath.Join(cl.dir, "targets-only.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// oneImport fails unless the HSM key was generated once, no AWS KMS key
// exists, and each cloud named holds exactly one import.
func (cl *clouds) oneImport(t *testing.T, gcp, azure bool) {
	t.Helper()
	if n := cl.aws.keyCount(t); n != 0 {
		t.Errorf("%d AWS KMS keys, want none", n)
	}
	want := map[bool]int{true: 1, false: 0}
	if v := cl.gcp.versions(t, gcpRing+"/cryptoKeys/signer"); len(v) != want[gcp] {
		t.Errorf("%d Cloud KMS versions, want %d", len(v), want[gcp])
	}
	if n, c := cl.azure.Versions("signer"), cl.azure.Calls("import"); n != want[azure] || c != want[azure] {
		t.Errorf("%d Key Vault versions and %d ImportKey calls, want %d", n, c, want[azure])
	}
	// Once: a kill between the call and its outcome leaves no step
	// entry, but the journal's intent, mirrored into the record, is there.
	if n := countRecord(t, cl.rec, `"Step":"journal-intent"`, `"Op":"C_GenerateKeyPair"`); n != 1 {
		t.Errorf("the HSM key's generation was intended %d times, want once", n)
	}
	if v := kmsbridge(t, nil, "record", "verify", "--chain-only", cl.rec); v.Code != 0 {
		t.Errorf("record verify: %s%s", v.Stdout, v.Stderr)
	}
}

// TestCeremonyGoogleOnly: a ceremony file with no kms section sends its
// key to Cloud KMS alone: the dry run plans it and changes nothing, the
// run generates the HSM key through the Cloud KMS import and proves it,
// and a re-run only verifies.
func TestCeremonyGoogleOnly(t *testing.T) {
	t.Parallel()
	cl := startClouds(t)
	tok := newToken(t)
	// Cloud KMS keys take no tags: a Google-only key has none.
	file := cl.writeTargetsOnly(t, tok, mcGCPTarget, "    tags:\n      owner: payments\n", "")

	r := cl.ceremony(t, tok, nil, "--dry-run", file)
	if r.Code != 0 || !strings.Contains(r.Stdout, "gcp "+gcpRing+"/cryptoKeys/signer: will: import as EC_SIGN_P256_SHA256") ||
		!strings.Contains(r.Stdout, "will: "+"send the HSM key to its targets") {
		t.Fatalf("dry run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	cl.nothingAnywhere(t, tok)

	rep := ceremonyReport(t, cl.ceremony(t, tok, nil, "-o", "json", file))
	if rep.KmsEndpoint != nil || len(rep.Keys) != 1 || len(rep.Keys[0].Targets) != 1 || !rep.Keys[0].Done() {
		t.Fatalf("report: endpoint %v, keys %+v", rep.KmsEndpoint, rep.Keys)
	}
	g := rep.Keys[0].Targets[0]
	if g.Cloud != "gcp" || !g.Done || g.Gcp == nil || !g.Gcp.Proof.MaterialConfirmed || !g.Gcp.Attestation.Verified || !strings.HasSuffix(g.Target, "/cryptoKeyVersions/1") {
		t.Fatalf("gcp target %+v", g)
	}
	cl.oneImport(t, true, false)
	if n := countRecord(t, cl.rec, `"Step":"ceremony-target"`, `"Cloud":"gcp"`, `"Done":"true"`); n != 1 {
		t.Errorf("%d record entries closing the gcp target, want 1", n)
	}
	if recordHas(t, cl.rec, `"Cloud":"aws"`) {
		t.Error("the record names an AWS target")
	}

	// Again: verified only, nothing new; the text summary says there is
	// no AWS part.
	r = cl.ceremony(t, tok, nil, file)
	if r.Code != 0 || !strings.Contains(r.Stdout, "(no AWS KMS part)") || !strings.Contains(r.Stdout, "gcp   done "+gcpRing+"/cryptoKeys/signer/cryptoKeyVersions/1") {
		t.Fatalf("re-run: exit %d\n%s%s", r.Code, r.Stdout, tail(r.Stderr, 2000))
	}
	cl.oneImport(t, true, false)
	// With --parallel too: the key is done, its one target verified.
	r = cl.ceremony(t, tok, nil, "--parallel", "2", "-o", "json", file)
	var bulk struct{ Summary ceremony.BulkSummary }
	if err := json.Unmarshal([]byte(r.Stdout), &bulk); r.Code != 0 || err != nil || len(bulk.Summary.Results) != 1 ||
		bulk.Summary.Results[0].Status != ceremony.StatusDone || len(bulk.Summary.Results[0].Targets) != 1 || bulk.Summary.Results[0].Targets[0].Cloud != "gcp" {
		t.Errorf("--parallel: exit %d %v\n%s%s", r.Code, err, r.Stdout, tail(r.Stderr, 2000))
	}
	cl.oneImport(t, true, false)
}

// TestCeremonyAzureOnly: a key marked aws: false, in a file that has a
// kms section, goes to Key Vault alone, with the file's expiry and tags,
// generated by the Key Vault import; the file's other key, without aws,
// still goes to AWS KMS.
func TestCeremonyAzureOnly(t *testing.T) {
	t.Parallel()
	cl := startClouds(t)
	tok := newToken(t)
	file := cl.writeTargetsOnly(t, tok, mcAzureTarget,
		"record: ", fmt.Sprintf("kms:\n  region: us-east-1\n  endpoint: %[1]s\n  allow-endpoint: %[1]s\nrecord: ", cl.aws.URL),
		"    valid-to: 2027-06-30\n", "    valid-to: 2027-06-30\n    aws: false\n")
	rep := ceremonyReport(t, cl.ceremony(t, tok, nil, "-o", "json", file))
	if len(rep.Keys) != 1 || len(rep.Keys[0].Targets) != 1 || !rep.Keys[0].Done() {
		t.Fatalf("report %+v", rep.Keys)
	}
	a := rep.Keys[0].Targets[0]
	if a.Cloud != "azure" || !a.Done || a.Azure == nil || !a.Azure.Proof.MaterialConfirmed || !strings.Contains(a.Target, "/keys/signer/") {
		t.Fatalf("azure target %+v", a)
	}
	got, err := cl.azure.kv.GetKey(context.Background(), "signer", "", nil)
	if err != nil || got.Attributes == nil || got.Attributes.Expires == nil || got.Attributes.Expires.Year() != 2027 || got.Tags["owner"] == nil {
		t.Errorf("Azure key attributes %+v tags %v: %v", got.Attributes, got.Tags, err)
	}
	cl.oneImport(t, false, true)
	rep = ceremonyReport(t, cl.ceremony(t, tok, nil, "-o", "json", file))
	if !rep.Keys[0].Done() || rep.Keys[0].Targets[0].Azure.Imported {
		t.Errorf("re-run %+v", rep.Keys[0].Targets[0])
	}
	cl.oneImport(t, false, true)
}

// TestCeremonyTargetsOnlyKilledFinishesOnce kills a ceremony of a key
// with no AWS part, sent to Cloud KMS then Key Vault: just after the
// first target's import generated the HSM key, between the key's
// generation and its journal outcome, and between the two targets. The
// same command then finishes the job: one HSM key, one Cloud KMS version,
// one Key Vault key, one KEK, and a record that verifies.
func TestCeremonyTargetsOnlyKilledFinishesOnce(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"step:generate-hsm-key", "called:C_GenerateKeyPair", "ceremony-target:gcp"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			cl := startClouds(t)
			tok := newToken(t)
			file := cl.writeTargetsOnly(t, tok, mcGCPTarget+mcAzureTarget)
			kill := []string{kmsimport.EnvTestKillAt + "=" + at, kmsimport.EnvTestKillGuard + "=" + kmsimport.TestKillGuard}
			r := cl.ceremony(t, tok, kill, file)
			if r.Code == 0 || recordHas(t, cl.rec, `"Step":"ceremony-end"`) {
				t.Fatalf("the run was not killed: exit %d\n%s", r.Code, tail(r.Stderr, 2000))
			}
			if !tokenHasLabel(t, tok, "signer") {
				t.Fatal("killed before the HSM key was generated")
			}
			rep := ceremonyReport(t, cl.ceremony(t, tok, nil, "-o", "json", file))
			if !rep.Keys[0].Done() || len(rep.Keys[0].Targets) != 2 {
				t.Fatalf("re-run %+v", rep.Keys[0].Targets)
			}
			g, a := rep.Keys[0].Targets[0], rep.Keys[0].Targets[1]
			if g.Gcp == nil || a.Azure == nil || g.Gcp.HSM.KeyID == "" || g.Gcp.HSM.KeyID != a.Azure.HSM.KeyID || g.Gcp.Proof.PublicKeySHA256 != a.Azure.Proof.PublicKeySHA256 {
				t.Errorf("not the same HSM key everywhere: gcp %+v azure %+v", g.Gcp, a.Azure)
			}
			cl.oneImport(t, true, true)
			if n := cl.azure.Versions("kek"); n != 1 {
				t.Errorf("%d KEK versions, want 1", n)
			}
		})
	}
}

// TestCeremonyTargetsOnlyBadInput: bad combinations of a key with no AWS
// part are refused before any change, naming the field and the fix.
func TestCeremonyTargetsOnlyBadInput(t *testing.T) {
	t.Parallel()
	cl := startClouds(t)
	tok := newToken(t)
	for _, c := range []struct {
		name    string
		targets string
		edit    []string
		want    []string
	}{
		{"an AWS field without kms", "", []string{"    key-spec: ECC_NIST_P256\n", "    key-spec: ECC_NIST_P256\n    alias: alias/signer\n"},
			[]string{"keys[0].alias", "does not go to AWS KMS", "add a kms section"}},
		{"aws true without kms", "", []string{"    key-spec: ECC_NIST_P256\n", "    key-spec: ECC_NIST_P256\n    aws: true\n"},
			[]string{"kms.region is required"}},
		{"no targets", "-", nil, []string{"kms.region is required", "every key then needs targets", "without: keys[0]"}},
		{"gcp endpoint not confirmed", "", []string{"          allow-endpoint: " + cl.gcp.URL + "\n", ""},
			[]string{"keys[0].targets[0].gcp.endpoint"}},
		{"missing trust root", "", []string{cl.gcp.Roots + "/owner-root.pem", "/nonexistent/owner-root.pem"},
			[]string{"keys[0].targets[0].gcp", "owner-root.pem"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			targets := mcGCPTarget + mcAzureTarget
			if c.targets == "-" {
				targets = ""
			}
			file := cl.writeTargetsOnly(t, tok, targets, c.edit...)
			for _, dry := range []bool{true, false} {
				args := []string{file}
				if dry {
					args = []string{"--dry-run", file}
				}
				r := cl.ceremony(t, tok, nil, args...)
				if r.Code != 2 {
					t.Errorf("dry run %v: exit %d, want 2\n%s%s", dry, r.Code, r.Stdout, r.Stderr)
				}
				for _, w := range c.want {
					if !strings.Contains(r.Stderr+r.Stdout, w) {
						t.Errorf("dry run %v: no %q in\n%s%s", dry, w, r.Stdout, r.Stderr)
					}
				}
				cl.nothingAnywhere(t, tok)
			}
		})
	}
}

// TestCeremonyTargetsOnlyRefusesATakenLabel: a label held by a key this
// ceremony did not make is refused by the first target's check, before
// any change, although no AWS part would have checked it.
func TestCeremonyTargetsOnlyRefusesATakenLabel(t *testing.T) {
	cl := startClouds(t)
	tok := newToken(t)
	tk := openInProcess(t, tok)
	if _, err := tk.Generate("signer", hsm.ECKey(hsm.P256), false); err != nil {
		t.Fatal(err)
	}
	file := cl.writeTargetsOnly(t, tok, mcGCPTarget+mcAzureTarget)
	for _, args := range [][]string{{"--dry-run", file}, {file}} {
		r := cl.ceremony(t, tok, nil, args...)
		// Exit 3, as import --cloud gcp --generate gives for a taken label.
		if r.Code != 3 || !strings.Contains(r.Stderr+r.Stdout, "not proven to be kmsbridge's") || !strings.Contains(r.Stderr+r.Stdout, "keys[0].targets[0].gcp") {
			t.Errorf("%v: exit %d\n%s%s", args, r.Code, r.Stdout, r.Stderr)
		}
	}
	if v := cl.gcp.versions(t, gcpRing+"/cryptoKeys/signer"); len(v) != 0 || cl.azure.Versions("signer") != 0 {
		t.Errorf("%d Cloud KMS versions, %d Key Vault versions", len(v), cl.azure.Versions("signer"))
	}
}
