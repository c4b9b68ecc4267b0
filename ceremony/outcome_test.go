package ceremony

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

func TestOutcomeSummary(t *testing.T) {
	plan := &Plan{KMSKeyID: "planned", targets: []target{awsTarget{}}}
	tests := []struct {
		name        string
		out         Outcome
		wantID      string
		wantSummary string
		wantDone    bool
	}{
		{"ok nothing run keeps the plan's key", Outcome{Plan: plan}, "planned", "", false},
		{"ok import", Outcome{Plan: plan, results: &awsOutcome{Result: &awskms.Result{KeyId: "imported", KeyState: "Enabled", Verification: awskms.Verification{Summary: "round trip"}}}}, "imported", "round trip", true},
		{"ok import not enabled", Outcome{Plan: plan, results: &awsOutcome{Result: &awskms.Result{KeyId: "imported", KeyState: "PendingImport"}}}, "imported", "", false},
		{"ok verify only", Outcome{Plan: plan, results: &awsOutcome{Verify: &awskms.Verification{Summary: "verified", KeyEnabled: true}}}, "planned", "verified", true},
		{"ok on-demand rotation", Outcome{Plan: plan, results: &awsOutcome{Rotation: &awskms.RotateResult{KeyId: "same", Mode: "on-demand", Verification: "decrypts"}}}, "same", "on-demand rotation: decrypts", true},
		{"ok manual rotation names the new key", Outcome{Plan: plan, results: &awsOutcome{Rotation: &awskms.RotateResult{KeyId: "old", NewKeyId: "new", Mode: "manual", Verification: "signs"}}}, "new", "manual rotation: signs", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, summary := tt.out.Summary()
			if id != tt.wantID || summary != tt.wantSummary {
				t.Errorf("Summary() = %q, %q; want %q, %q", id, summary, tt.wantID, tt.wantSummary)
			}
			if got := tt.out.Done(); got != tt.wantDone {
				t.Errorf("Done() = %v, want %v", got, tt.wantDone)
			}
		})
	}
}

func TestCountDoneCountsOnlyDoneKeys(t *testing.T) {
	plan := &Plan{targets: []target{awsTarget{}}}
	outs := []*Outcome{
		{Plan: plan, results: &awsOutcome{Verify: &awskms.Verification{KeyEnabled: true}}},
		{Plan: plan, results: &awsOutcome{Verify: &awskms.Verification{KeyEnabled: false}}},
		{Plan: plan, results: &awsOutcome{Result: &awskms.Result{KeyState: "Enabled"}}},
		{Plan: &Plan{targets: []target{awsTarget{}, entry{}}, Key: Key{Targets: []Target{{}}}}, results: &awsOutcome{Verify: &awskms.Verification{KeyEnabled: true}}},
		{Plan: &Plan{Action: ActionTargets, targets: []target{entry{}}, Key: Key{Targets: []Target{{}}}}, Targets: []*TargetOutcome{{Done: true}}},
		{},
	}
	// Done: the lead's part, and every target of a key with targets
	// entries; an outcome without a plan is not known to be done.
	if got := CountDone(outs); got != 3 {
		t.Errorf("CountDone = %d, want 3", got)
	}
}

// topKeys is the top-level keys of the JSON object b, in order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var keys []string
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// TestReportShapeUnchanged: the ceremony report (--output json) shows a
// key's plan and outcome with the same fields in the same order, wherever
// the code keeps the AWS KMS part of them.
func TestReportShapeUnchanged(t *testing.T) {
	p := &Plan{Key: Key{HSMLabel: "k"}, Material: materials[0], Action: ActionCreate, KMSKeyID: "id", Why: "why"}
	awsTarget{}.fillReport(p)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(topKeys(t, b), ","), "Key,Spec,Action,Request,HSMKey,KMSKeyID,Why"; got != want {
		t.Errorf("Plan's JSON fields = %s, want %s", got, want)
	}
	if !strings.Contains(string(b), `"Spec":{"Name":"SYMMETRIC_DEFAULT"`) {
		t.Errorf("Plan's JSON = %s, want the AWS key spec as Spec", b)
	}
	o := &Outcome{Plan: p, results: &awsOutcome{Result: &awskms.Result{}, Rotation: &awskms.RotateResult{}}, Targets: []*TargetOutcome{{Cloud: "aws"}}}
	if b, err = json.Marshal(o); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(topKeys(t, b), ","), "Plan,Result,Verify,Rotation,Targets"; got != want {
		t.Errorf("Outcome's JSON fields = %s, want %s", got, want)
	}
}
