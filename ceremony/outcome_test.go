package ceremony

import (
	"testing"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

func TestOutcomeSummary(t *testing.T) {
	plan := &Plan{KMSKeyID: "planned"}
	tests := []struct {
		name        string
		out         Outcome
		wantID      string
		wantSummary string
		wantDone    bool
	}{
		{"ok nothing run keeps the plan's key", Outcome{Plan: plan}, "planned", "", false},
		{"ok import", Outcome{Plan: plan, Result: &awskms.Result{KeyId: "imported", KeyState: "Enabled", Verification: awskms.Verification{Summary: "round trip"}}}, "imported", "round trip", true},
		{"ok import not enabled", Outcome{Plan: plan, Result: &awskms.Result{KeyId: "imported", KeyState: "PendingImport"}}, "imported", "", false},
		{"ok verify only", Outcome{Plan: plan, Verify: &awskms.Verification{Summary: "verified", KeyEnabled: true}}, "planned", "verified", true},
		{"ok on-demand rotation", Outcome{Plan: plan, Rotation: &awskms.RotateResult{KeyId: "same", Mode: "on-demand", Verification: "decrypts"}}, "same", "on-demand rotation: decrypts", true},
		{"ok manual rotation names the new key", Outcome{Plan: plan, Rotation: &awskms.RotateResult{KeyId: "old", NewKeyId: "new", Mode: "manual", Verification: "signs"}}, "new", "manual rotation: signs", true},
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
	outs := []*Outcome{
		{Verify: &awskms.Verification{KeyEnabled: true}},
		{Verify: &awskms.Verification{KeyEnabled: false}},
		{Result: &awskms.Result{KeyState: "Enabled"}},
	}
	if got := CountDone(outs); got != 2 {
		t.Errorf("CountDone = %d, want 2", got)
	}
}
