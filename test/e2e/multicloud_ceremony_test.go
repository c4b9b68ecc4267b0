package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// clouds is the three emulators a multi-cloud ceremony runs against.
type clouds struct {
	aws   *emulator
	gcp   *gcpEmulator
	azure *azureVault
	dir   string
	state string
	rec   string
}

// startClouds starts AWS KMS, Cloud KMS and Key Vault emulators, lenient
// about SoftHSM2's padded PKCS#8 (software-tokens.md).
func startClouds(t *testing.T) *clouds {
	t.Helper()
	dir := t.TempDir()
	return &clouds{aws: startEmulator(t, "--lenient-pkcs8-padding"), gcp: startGCPEmulator(t, "--lenient-pkcs8-padding"),
		azure: startAzureVault(t), dir: dir, state: t.TempDir(), rec: filepath.Join(dir, "record.jsonl")}
}

// mcTarget is a target as the ceremony file writes it, with a
// placeholder for each emulator's URL.
const mcGCPTarget = `      - gcp:
          project: test-project
          location: LOCATION
          key-ring: ring
          crypto-key: CRYPTOKEY
          manufacturer-root: ROOTS/manufacturer-root.pem
          owner-root: ROOTS/owner-root.pem
          endpoint: GCPURL
          allow-endpoint: GCPURL
`

const mcAzureTarget = `      - azure:
          key-name: KEYNAME
          kek-name: KEKNAME
          kek-size: 2048
          endpoint: AZURL
          allow-endpoint: AZURL
`

// writeMultiCloud writes a ceremony of one EC P-256 key to AWS, Cloud KMS
// and Key Vault; edit changes the file's text before it is written.
func (cl *clouds) writeMultiCloud(t *testing.T, tok *softhsm.Token, edit ...string) string {
	t.Helper()
	kms := fmt.Sprintf("kms:\n  region: us-east-1\n  endpoint: %[1]s\n  allow-endpoint: %[1]s\n", cl.aws.URL)
	awsKey := "    key-usage: SIGN_VERIFY\n    alias: alias/signer\n    wrapping-algorithm: RSA_AES_KEY_WRAP_SHA_1\n    wrapping-key-spec: RSA_2048\n"
	return cl.writeCeremonyFile(t, tok, "multicloud.yaml", kms, awsKey, mcGCPTarget+mcAzureTarget, edit...)
}

// writeCeremonyFile writes ceremony file name: the token, the kms section
// (may be empty), one EC P-256 key "signer" with keyLines among its fields
// and targets as its targets, the placeholders of mcGCPTarget and
// mcAzureTarget filled in; edit is pairs of old and new text, each of which
// must be in the file.
func (cl *clouds) writeCeremonyFile(t *testing.T, tok *softhsm.Token, name, kms, keyLines, targets string, edit ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n", tok.Module, tok.Label)
	b.WriteString(kms)
	fmt.Fprintf(&b, "record: %s\n", cl.rec)
	b.WriteString("operators:\n  - Alice (custodian)\n  - Bob (witness)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n")
	b.WriteString("  - hsm-label: signer\n    generate: true\n    key-spec: ECC_NIST_P256\n" + keyLines + "    valid-to: 2027-06-30\n    tags:\n      owner: payments\n    targets:\n")
	b.WriteString(targets)
	text := strings.NewReplacer("LOCATION", gcpLocation, "CRYPTOKEY", "signer", "ROOTS", cl.gcp.Roots, "GCPURL", cl.gcp.URL,
		"KEYNAME", "signer", "KEKNAME", "kek", "AZURL", cl.azure.URL()).Replace(b.String())
	for i := 0; i+1 < len(edit); i += 2 {
		if !strings.Contains(text, edit[i]) {
			t.Fatalf("%q is not in the ceremony file", edit[i])
		}
		text = strings.Replace(text, edit[i], edit[i+1], 1)
	}
	path := filepath.Join(cl.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ceremony runs kmsbridge ceremony run with the vault's environment.
func (cl *clouds) ceremony(t *testing.T, tok *softhsm.Token, env []string, args ...string) run {
	t.Helper()
	full := append(append(append([]string{}, cl.azure.env...), env...), append([]string{"ceremony", "run", "--state-dir", cl.state}, args...)...)
	return kmsbridge(t, tok, full...)
}

// nothingAnywhere fails unless no cloud and not the token holds anything
// of the ceremony.
// refusedBeforeAnyChange runs the ceremony file as a dry run and for real:
// both must exit 2 naming every string of want, and nothing may exist in
// the token or any cloud afterwards.
func (cl *clouds) refusedBeforeAnyChange(t *testing.T, tok *softhsm.Token, file string, want []string) {
	t.Helper()
	for _, dry := range []bool{true, false} {
		args := []string{file}
		if dry {
			args = []string{"--dry-run", file}
		}
		r := cl.ceremony(t, tok, nil, args...)
		if r.Code != 2 {
			t.Errorf("dry run %v: exit %d, want 2\n%s%s", dry, r.Code, r.Stdout, r.Stderr)
		}
		for _, w := range want {
			if !strings.Contains(r.Stderr+r.Stdout, w) {
				t.Errorf("dry run %v: no %q in\n%s%s", dry, w, r.Stdout, r.Stderr)
			}
		}
		cl.nothingAnywhere(t, tok)
	}
}

func (cl *clouds) nothingAnywhere(t *testing.T, tok *softhsm.Token) {
	t.Helper()
	if n := cl.aws.keyCount(t); n != 0 {
		t.Errorf("%d AWS KMS keys", n)
	}
	if tokenHasLabel(t, tok, "signer") {
		t.Error("the HSM key was generated")
	}
	if v := cl.gcp.versions(t, gcpRing+"/cryptoKeys/signer"); len(v) != 0 {
		t.Errorf("%d Cloud KMS versions", len(v))
	}
	if n := cl.azure.Versions("signer") + cl.azure.Versions("kek"); n != 0 {
		t.Errorf("%d Key Vault key versions", n)
	}
	if _, err := os.Stat(cl.rec); err == nil {
		t.Error("a record was started")
	}
}

// exactlyOne fails unless each cloud holds exactly one import of the one
// HSM key, generated once.
func (cl *clouds) exactlyOne(t *testing.T) {
	t.Helper()
	if n := cl.aws.keyCount(t); n != 1 {
		t.Errorf("%d AWS KMS keys, want 1", n)
	}
	if v := cl.gcp.versions(t, gcpRing+"/cryptoKeys/signer"); len(v) != 1 {
		t.Errorf("%d Cloud KMS versions, want 1", len(v))
	}
	if n, c := cl.azure.Versions("signer"), cl.azure.Calls("import"); n != 1 || c != 1 {
		t.Errorf("%d Key Vault versions and %d ImportKey calls, want 1 and 1", n, c)
	}
	if n := cl.azure.Versions("kek"); n != 1 {
		t.Errorf("%d KEK versions, want 1", n)
	}
	if n := countRecord(t, cl.rec, `"Step":"generate-hsm-key"`, `"Outcome":"ok"`); n != 1 {
		t.Errorf("the HSM key was generated %d times, want once", n)
	}
}

func ceremonyReport(t *testing.T, r run) ceremony.Report {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("ceremony run: exit %d\nstderr:\n%s\nstdout:\n%s", r.Code, tail(r.Stderr, 4000), r.Stdout)
	}
	var rep ceremony.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("no JSON report: %v\n%s", err, r.Stdout)
	}
	return rep
}

// TestCeremonyToAWSGoogleAndAzure sends one HSM key to three clouds from
// one ceremony file: the dry run plans every target and changes nothing;
// the run generates the key once, imports it into each cloud, proves each
// import, and names every target's outcome; a re-run only verifies.
func TestCeremonyToAWSGoogleAndAzure(t *testing.T) {
	t.Parallel()
	cl := startClouds(t)
	tok := newToken(t)
	file := cl.writeMultiCloud(t, tok)

	r := cl.ceremony(t, tok, nil, "--dry-run", file)
	if r.Code != 0 || !strings.Contains(r.Stdout, "gcp "+gcpRing+"/cryptoKeys/signer: will: import as EC_SIGN_P256_SHA256") ||
		!strings.Contains(r.Stdout, "azure "+cl.azure.URL()+"/keys/signer: will: import as EC-P256") {
		t.Fatalf("dry run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	cl.nothingAnywhere(t, tok)

	out := cl.ceremony(t, tok, nil, "-o", "json", file)
	rep := ceremonyReport(t, out)
	if len(rep.Keys) != 1 || len(rep.Keys[0].Targets) != 3 {
		t.Fatalf("report %+v", rep.Keys)
	}
	// AWS KMS's import, where the report shows it: Keys[].Result.
	var awsRep struct {
		Keys []struct{ Result *awskms.Result }
	}
	if err := json.Unmarshal([]byte(out.Stdout), &awsRep); err != nil || len(awsRep.Keys) != 1 || awsRep.Keys[0].Result == nil {
		t.Fatalf("no AWS KMS result in the report (%v):\n%s", err, out.Stdout)
	}
	awsRes := awsRep.Keys[0].Result
	ts := rep.Keys[0].Targets
	for i, cloud := range []string{"aws", "gcp", "azure"} {
		if ts[i].Cloud != cloud || !ts[i].Done || ts[i].Proof == "" || ts[i].Error != "" {
			t.Errorf("target %d: %+v, want %s done with a proof", i, ts[i], cloud)
		}
	}
	g, a := ts[1].Gcp, ts[2].Azure
	if g == nil || !g.Proof.MaterialConfirmed || !g.Attestation.Verified || a == nil || !a.Proof.MaterialConfirmed {
		t.Fatalf("proofs: gcp %+v, azure %+v", g, a)
	}
	// Every cloud holds the one HSM key: the same public key everywhere.
	if g.Proof.PublicKeySHA256 == "" || g.Proof.PublicKeySHA256 != a.Proof.PublicKeySHA256 {
		t.Errorf("Cloud KMS public key %s, Key Vault's %s", g.Proof.PublicKeySHA256, a.Proof.PublicKeySHA256)
	}
	if g.HSM.KeyID != a.HSM.KeyID || g.HSM.KeyID != awsRes.HSM.KeyID {
		t.Errorf("HSM keys: aws %s, gcp %s, azure %s", awsRes.HSM.KeyID, g.HSM.KeyID, a.HSM.KeyID)
	}
	if ts[0].Target != awsRes.KeyId || !strings.Contains(ts[1].Target, "/cryptoKeyVersions/1") || !strings.Contains(ts[2].Target, "/keys/signer/") {
		t.Errorf("targets named %q, %q, %q", ts[0].Target, ts[1].Target, ts[2].Target)
	}
	// The Azure key carries the file's expiry and tags.
	got, err := cl.azure.kv.GetKey(context.Background(), "signer", "", nil)
	if err != nil || got.Attributes == nil || got.Attributes.Expires == nil || got.Attributes.Expires.Year() != 2027 || got.Tags["owner"] == nil {
		t.Errorf("Azure key attributes %+v tags %v: %v", got.Attributes, got.Tags, err)
	}
	cl.exactlyOne(t)
	for _, cloud := range []string{"aws", "gcp", "azure"} {
		if n := countRecord(t, cl.rec, `"Step":"ceremony-target"`, `"Cloud":"`+cloud+`"`, `"Done":"true"`); n != 1 {
			t.Errorf("%d record entries closing the %s target, want 1", n, cloud)
		}
	}

	// Again: everything is verified, nothing created.
	rep = ceremonyReport(t, cl.ceremony(t, tok, nil, "-o", "json", file))
	if len(rep.Keys[0].Targets) != 3 || rep.Keys[0].Targets[2].Azure.Imported {
		t.Errorf("re-run %+v", rep.Keys[0].Targets)
	}
	cl.exactlyOne(t)
	// With --parallel, each key's result carries its targets too.
	r = cl.ceremony(t, tok, nil, "--parallel", "1", "-o", "json", file)
	var bulk struct{ Summary ceremony.BulkSummary }
	if err := json.Unmarshal([]byte(r.Stdout), &bulk); r.Code != 0 || err != nil || len(bulk.Summary.Results) != 1 || len(bulk.Summary.Results[0].Targets) != 3 {
		t.Errorf("--parallel: exit %d %v\n%s", r.Code, err, r.Stdout)
	}
	cl.exactlyOne(t)
	if v := kmsbridge(t, nil, "record", "verify", "--chain-only", cl.rec); v.Code != 0 {
		t.Errorf("record verify: %s%s", v.Stdout, v.Stderr)
	}
	r = cl.ceremony(t, tok, nil, file)
	if r.Code != 0 || !strings.Contains(r.Stdout, "gcp   done "+gcpRing+"/cryptoKeys/signer/cryptoKeyVersions/1") || !strings.Contains(r.Stdout, "azure done ") {
		t.Errorf("text summary lacks the targets:\n%s", r.Stdout)
	}
	cl.statusListsEveryTarget(t, tok, file, g.HSM.KeyID)
}

// statusListsEveryTarget: status --targets FILE shows the AWS key and
// both targets of the one HSM key, in JSON, the table and the metrics,
// each with its cloud; a target that stops being usable is a problem.
func (cl *clouds) statusListsEveryTarget(t *testing.T, tok *softhsm.Token, file, hsmKeyID string) {
	t.Helper()
	status := func(extra ...string) run {
		args := append(append([]string{}, cl.azure.env...), "status", "--token-label", tok.Label, "--endpoint-url", cl.aws.URL, "--allow-endpoint", cl.aws.URL,
			"--region", "us-east-1", "--targets", file)
		return kmsbridge(t, tok, append(args, extra...)...)
	}
	r := status("-o", "json")
	if r.Code != 0 {
		t.Fatalf("status: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	var st awskms.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.KMSKeys) != 1 || st.KMSKeys[0].HSMKeyID != hsmKeyID || len(st.Targets) != 2 {
		t.Fatalf("status: %d KMS keys, %d targets:\n%s", len(st.KMSKeys), len(st.Targets), r.Stdout)
	}
	g, a := st.Targets[0], st.Targets[1]
	if g.Cloud != "gcp" || g.State != "ENABLED" || g.ProtectionLevel != "HSM" || g.ImportJob == "" || g.ImportJobState == "" || !g.Linked || g.HSMKeyID != hsmKeyID ||
		g.KeySpec != "EC_SIGN_P256_SHA256" || !strings.HasSuffix(g.Target, "/cryptoKeyVersions/1") {
		t.Errorf("Cloud KMS row %+v", g)
	}
	if a.Cloud != "azure" || a.State != "Enabled" || a.ValidTo == nil || a.ValidTo.Year() != 2027 || a.DaysToExpiry == nil || !a.Linked || a.HSMKeyID != hsmKeyID ||
		!strings.Contains(a.KEK, "/keys/kek/") || !strings.Contains(a.KEK, "key_ops import") {
		t.Errorf("Key Vault row %+v", a)
	}
	r = status("--columns", "cloud,hsm-key,kms-key,state", "--textfile", filepath.Join(cl.dir, "status.prom"))
	if r.Code != 0 {
		t.Fatalf("status table: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"CLOUD", "aws ", "gcp ", "azure ", "ENABLED", "Enabled"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.Stdout)
		}
	}
	prom, _ := os.ReadFile(filepath.Join(cl.dir, "status.prom"))
	for _, want := range []string{`kmsbridge_kms_key_info{alias="",cloud="gcp"`, `cloud="azure"`, `cloud="aws"`, `kmsbridge_key_material_valid_to_seconds{cloud="azure"`} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("metrics lack %s:\n%s", want, prom)
		}
	}
	// The Key Vault key disabled by hand: status says so and exits 7.
	kid := azkeys.ID(a.Target)
	if _, err := cl.azure.kv.UpdateKey(context.Background(), "signer", kid.Version(), azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	r = status("-o", "json")
	if r.Code != 7 || !strings.Contains(r.Stdout, `"Kind": "`+kmsimport.ProblemTargetNotEnabled+`"`) {
		t.Errorf("a disabled Key Vault key: exit %d\n%s", r.Code, r.Stdout)
	}
}

// TestCeremonyKilledBetweenTargetsFinishesOnce kills the ceremony after
// one target and before the next; the same command then finishes the
// rest without touching what is done, and nothing exists twice.
func TestCeremonyKilledBetweenTargetsFinishesOnce(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"aws", "gcp"} {
		t.Run("after "+at, func(t *testing.T) {
			t.Parallel()
			cl := startClouds(t)
			tok := newToken(t)
			file := cl.writeMultiCloud(t, tok)
			kill := []string{kmsimport.EnvTestKillAt + "=ceremony-target:" + at, kmsimport.EnvTestKillGuard + "=" + kmsimport.TestKillGuard}
			r := cl.ceremony(t, tok, kill, file)
			if r.Code == 0 || recordHas(t, cl.rec, `"Step":"ceremony-end"`) {
				t.Fatalf("the run was not killed: exit %d\n%s", r.Code, tail(r.Stderr, 2000))
			}
			gcpVersions := len(cl.gcp.versions(t, gcpRing+"/cryptoKeys/signer"))
			if want := map[string]int{"aws": 0, "gcp": 1}[at]; gcpVersions != want || cl.azure.Versions("signer") != 0 {
				t.Fatalf("killed after %s: %d Cloud KMS versions (want %d), %d Key Vault versions (want 0)", at, gcpVersions, want, cl.azure.Versions("signer"))
			}
			before := cl.aws.calls(t)
			rep := ceremonyReport(t, cl.ceremony(t, tok, nil, "-o", "json", file))
			for op, n := range since(before, cl.aws.calls(t)) {
				switch op {
				case "CreateKey", "ImportKeyMaterial", "GetParametersForImport", "CreateAlias", "TagResource":
					t.Errorf("the re-run called AWS %s %d times: the AWS target was done", op, n)
				}
			}
			if !rep.Keys[0].Done() && len(rep.Keys[0].Targets) != 3 {
				t.Errorf("re-run %+v", rep.Keys[0].Targets)
			}
			for _, tg := range rep.Keys[0].Targets {
				if !tg.Done {
					t.Errorf("target %s %s not done: %s", tg.Cloud, tg.Target, tg.Error)
				}
			}
			if at == "gcp" && len(rep.Keys[0].Targets[1].Gcp.Resumed) == 0 {
				t.Errorf("the Cloud KMS import was not taken up: %+v", rep.Keys[0].Targets[1].Gcp)
			}
			cl.exactlyOne(t)
			if v := kmsbridge(t, nil, "record", "verify", "--chain-only", cl.rec); v.Code != 0 {
				t.Errorf("record verify: %s%s", v.Stdout, v.Stderr)
			}
		})
	}
}

// TestCeremonyBadTargetRefusedBeforeAnyChange: a target that cannot be
// carried out, whether the file alone shows it or only the cloud or the
// token does, stops the ceremony before its first change anywhere.
func TestCeremonyBadTargetRefusedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	cl := startClouds(t)
	tok := newToken(t)
	// A key that is no Key Exchange Key (it signs; a KEK only imports)
	// named as the KEK: Azure's BYOK refuses it, so does kmsbridge.
	if _, err := cl.azure.kv.CreateKey(context.Background(), "wide-kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr[int32](2048),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit []string
		want []string
	}{
		{"gcp endpoint not confirmed", []string{"          allow-endpoint: " + cl.gcp.URL + "\n", ""},
			[]string{"keys[0].targets[0].gcp.endpoint"}},
		{"azure endpoint not confirmed", []string{"          allow-endpoint: " + cl.azure.URL() + "\n", ""},
			[]string{"keys[0].targets[1].azure.endpoint", "allow-endpoint"}},
		{"bad project name", []string{"project: test-project", "project: Test_Project"},
			[]string{"keys[0].targets[0].gcp", "not a project ID"}},
		{"bad key name", []string{"key-name: signer", "key-name: signer.2026"},
			[]string{"keys[0].targets[1].azure", "key-name"}},
		{"unknown location", []string{"location: " + gcpLocation, "location: mars-north1"},
			[]string{"keys[0].targets[0].gcp", `no location "mars-north1"`}},
		{"missing trust root", []string{cl.gcp.Roots + "/owner-root.pem", "/nonexistent/owner-root.pem"},
			[]string{"keys[0].targets[0].gcp", "owner-root.pem"}},
		{"KEK with other operations", []string{"kek-name: kek", "kek-name: wide-kek"},
			[]string{"keys[0].targets[1].azure", "wide-kek"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := cl.writeMultiCloud(t, tok, c.edit...)
			cl.refusedBeforeAnyChange(t, tok, file, c.want)
		})
	}
}
