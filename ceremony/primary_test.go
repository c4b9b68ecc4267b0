package ceremony

import "testing"

// TestPrimaryTargetFollowsTheAWSField: a key's primary target is the file's
// kms section's cloud exactly when the key goes there (GoesToAWS), and a
// plan without one (ActionTargets) is neither checked nor run by it.
func TestPrimaryTargetFollowsTheAWSField(t *testing.T) {
	no, yes := false, true
	target := []Target{{GCP: &GCPTarget{}}}
	tests := []struct {
		name string
		f    *File
		k    Key
		want bool
	}{
		{"kms section", &File{KMS: KMSConfig{Region: "eu-west-1"}}, Key{Targets: target}, true},
		{"no kms section, targets", &File{}, Key{Targets: target}, false},
		{"no kms section, no targets", &File{}, Key{}, true},
		{"aws: false", &File{KMS: KMSConfig{Region: "eu-west-1"}}, Key{AWS: &no, Targets: target}, false},
		{"aws: true", &File{}, Key{AWS: &yes, Targets: target}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt := tt.f.primary(tt.k)
			if got := pt != nil; got != tt.want || got != tt.f.GoesToAWS(tt.k) {
				t.Fatalf("primary() != nil is %v, want %v (GoesToAWS %v)", got, tt.want, tt.f.GoesToAWS(tt.k))
			}
			if pt != nil && pt.cloud() != "aws" {
				t.Errorf("primary().cloud() = %q, want aws", pt.cloud())
			}
		})
	}
	r := &Runner{File: &File{}}
	if err := r.CheckPlan(&Plan{Action: ActionTargets}); err != nil {
		t.Errorf("CheckPlan of a plan without a primary target = %v, want nil (CheckTargets checks its targets)", err)
	}
	if pt := (&Outcome{Plan: &Plan{Action: ActionTargets}}).primary(); pt != nil {
		t.Errorf("the outcome of a targets-only plan has primary target %q, want none", pt.cloud())
	}
	if pt := (&Outcome{}).primary(); pt == nil {
		t.Error("an outcome without a plan has no primary target, want AWS KMS (as the report has always counted it)")
	}
}
