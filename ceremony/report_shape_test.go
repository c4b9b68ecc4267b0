package ceremony

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// The report's plan and outcome as they were when Plan and Outcome
// embedded AWS KMS's fields (before the fields moved behind the AWS
// part): the report must stay byte for byte what these give.
type (
	beforeSpec    struct{ Spec awskms.KeySpec }
	beforeRequest struct{ Request awskms.Request }
	beforePlan    struct {
		Key      Key
		Material Material `json:"-"`
		beforeSpec
		Action Action
		beforeRequest
		HSMKey   *hsm.Key
		KMSKeyID string
		Why      string
	}
	beforeOutcome struct {
		Plan *beforePlan
		awsOutcome
		Targets []*TargetOutcome `json:",omitempty"`
	}
)

// reportCases are a key imported into AWS KMS and sent to Cloud KMS, a
// key rotated, and a key sent to its targets only, as the run makes them.
func reportCases(t *testing.T) []*Outcome {
	t.Helper()
	gen := true
	k := Key{HSMLabel: "signer", KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY", Alias: "alias/signer", Generate: &gen, WrappingKeySpec: "RSA_4096", WrappingAlgorithm: "RSA_AES_KEY_WRAP_SHA_256",
		ValidTo: "2030-01-01T00:00:00Z", Tags: map[string]string{"owner": "payments <&>"}, Targets: []Target{{GCP: &GCPTarget{Project: "p", Location: "l", KeyRing: "r", CryptoKey: "c"}}}}
	f := &File{KMS: KMSConfig{Region: "eu-west-1"}, DualControl: DualControl{WrapWithTrusted: &gen}, Keys: []Key{k}}
	m, err := k.material()
	if err != nil {
		t.Fatal(err)
	}
	req, err := k.Request(f)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := awskms.ParseKeySpec(k.KeySpec)
	imported := &Plan{Key: k, Material: m, Action: ActionGenerate, KMSKeyID: "", Why: "", part: &awsPlan{Spec: spec, Request: req}, targets: f.targets(k)}
	gcpDone := &TargetOutcome{Cloud: "gcp", Target: "projects/p/.../cryptoKeyVersions/1", Done: true, Proof: "signs", hsmKey: "01"}
	gcpDone.Gcp = &gcp.Result{CryptoKeyVersion: "projects/p/.../cryptoKeyVersions/1"}
	rotated := &Plan{Key: Key{HSMLabel: "old", RotateTo: "new", KeySpec: "SYMMETRIC_DEFAULT"}, Material: materials[0], Action: ActionRotate,
		HSMKey: &hsm.Key{Label: "old", ID: []byte{1, 2}}, KMSKeyID: "1234", Why: "on-demand rotation", part: &awsPlan{Spec: reportSpec(materials[0])}, targets: []target{awsTarget{}}}
	only := &Plan{Key: Key{HSMLabel: "only", KeySpec: "AES_256", Targets: k.Targets}, Material: materials[0], Action: ActionTargets, Why: "the key does not go to AWS KMS", targets: []target{entry{k.Targets[0], 0}}}
	awsTarget{}.fillReport(only)
	return []*Outcome{
		{Plan: imported, results: &awsOutcome{Result: &awskms.Result{KeyId: "1234", KeyState: "Enabled", Verification: awskms.Verification{Summary: "signs <ok>"}}},
			Targets: []*TargetOutcome{{Cloud: "aws", Target: "1234", Done: true, Proof: "signs <ok>"}, gcpDone}},
		{Plan: rotated, results: &awsOutcome{Rotation: &awskms.RotateResult{KeyId: "1234", Mode: "on-demand", Verification: "decrypts", NewKeyId: "5678"}}},
		{Plan: only, Targets: []*TargetOutcome{gcpDone}},
		{Plan: imported},
	}
}

func before(o *Outcome) *beforeOutcome {
	p := o.Plan
	a := awsPlanOf(p)
	return &beforeOutcome{Plan: &beforePlan{Key: p.Key, Material: p.Material, beforeSpec: beforeSpec{a.Spec}, Action: p.Action, beforeRequest: beforeRequest{a.Request},
		HSMKey: p.HSMKey, KMSKeyID: p.KMSKeyID, Why: p.Why}, awsOutcome: *awsOutcomeOf(o), Targets: o.Targets}
}

func indented(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ") // as --output json writes it
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReportIsByteForByteAsBefore: --output json writes every key's plan
// and outcome exactly as it did when the core structs embedded AWS KMS's
// fields, and reads back (as the e2e tests and any reader of the report
// do) to the same outcome: Done, Summary and the same bytes again.
func TestReportIsByteForByteAsBefore(t *testing.T) {
	for i, o := range reportCases(t) {
		rep := &Report{CeremonyFileSha256: "ab", Keys: []*Outcome{o}, RecordEntries: 3, RecordHead: "cd"}
		got := indented(t, rep)
		want := indented(t, struct {
			CeremonyFileSha256 string
			Keys               []*beforeOutcome
			RecordEntries      int
			RecordHead         string
		}{"ab", []*beforeOutcome{before(o)}, 3, "cd"})
		if !bytes.Equal(got, want) {
			t.Errorf("case %d: the report is\n%s\nwant (as before)\n%s", i, got, want)
		}
		var back Report
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("case %d: reading the report back: %v", i, err)
		}
		bo := back.Keys[0]
		if bo.Done() != o.Done() {
			t.Errorf("case %d: read back, Done() = %v, want %v", i, bo.Done(), o.Done())
		}
		if id, s := bo.Summary(); id != first(o.Summary()) || s != second(o.Summary()) {
			t.Errorf("case %d: read back, Summary() = %q, %q", i, id, s)
		}
		if again := indented(t, &back); !bytes.Equal(again, got) {
			t.Errorf("case %d: the report read back writes\n%s\nwant\n%s", i, again, got)
		}
	}
}

func first(a, _ string) string  { return a }
func second(_, b string) string { return b }
