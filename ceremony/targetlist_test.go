package ceremony

import (
	"fmt"
	"testing"
)

// TestAWSIsTheFirstOfTheKeysTargets: a key's targets are one list, the
// cloud of the file's kms section (AWS KMS) first exactly when the key
// goes there (GoesToAWS), where it leads the key, then each entry of its
// targets list in order; a plan without a lead (ActionTargets) is neither
// checked nor run by one.
func TestAWSIsTheFirstOfTheKeysTargets(t *testing.T) {
	no, yes := false, true
	entries := []Target{{GCP: &GCPTarget{Project: "p"}}, {Azure: &AzureTarget{VaultURL: "https://v.vault.azure.net"}}}
	tests := []struct {
		name string
		f    *File
		k    Key
		want string
	}{
		{"kms section", &File{KMS: KMSConfig{Region: "eu-west-1"}}, Key{Targets: entries}, "aws,gcp,azure"},
		{"no kms section, targets", &File{}, Key{Targets: entries}, "gcp,azure"},
		{"no kms section, no targets", &File{}, Key{}, "aws"},
		{"aws: false", &File{KMS: KMSConfig{Region: "eu-west-1"}}, Key{AWS: &no, Targets: entries}, "gcp,azure"},
		{"aws: true", &File{}, Key{AWS: &yes, Targets: entries[:1]}, "aws,gcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := tt.f.targets(tt.k)
			got := ""
			for i, tg := range ts {
				if i > 0 {
					got += ","
				}
				got += tg.cloud()
				if _, leads := tg.(leadTarget); leads != (i == 0 && tg.cloud() == "aws") {
					t.Errorf("target %d (%s) leads the key: %v", i, tg.cloud(), leads)
				}
				if e, ok := tg.(entry); ok && fmt.Sprint(e.Target) != fmt.Sprint(tt.k.Targets[e.i]) {
					t.Errorf("target %d is entry %d, which is not the key's targets[%d]", i, e.i, e.i)
				}
			}
			if got != tt.want {
				t.Fatalf("targets = %s, want %s", got, tt.want)
			}
			if (leadOf(ts) != nil) != tt.f.GoesToAWS(tt.k) {
				t.Errorf("the key has a lead: %v, GoesToAWS: %v", leadOf(ts) != nil, tt.f.GoesToAWS(tt.k))
			}
		})
	}
	r := &Runner{File: &File{}}
	if err := r.CheckPlan(&Plan{Action: ActionTargets}); err != nil {
		t.Errorf("CheckPlan of a plan without a lead = %v, want nil (CheckTargets checks its targets)", err)
	}
	if got := keyIDFor(0, []byte{1}); got != nil {
		t.Errorf("the first target is given CKA_ID %x, want none (it chooses the key by label)", got)
	}
	if got := keyIDFor(1, []byte{1}); len(got) != 1 {
		t.Errorf("a later target is given CKA_ID %x, want 01", got)
	}
}
