package aws

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestAddTargetsJudgesEachTarget(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(days int) *time.Time { v := now.Add(time.Duration(days) * 24 * time.Hour); return &v }
	for _, c := range []struct {
		name   string
		target kmsimport.StatusTarget
		kind   string
		health Health
	}{
		{"fine", kmsimport.StatusTarget{Cloud: "azure", State: "Enabled", Linked: true, ValidTo: at(200)}, "", HealthOK},
		{"no expiry", kmsimport.StatusTarget{Cloud: "gcp", State: "ENABLED", Linked: true}, "", HealthOK},
		{"expiring", kmsimport.StatusTarget{Cloud: "azure", State: "Enabled", Linked: true, ValidTo: at(10), Fix: "renew"}, ProblemExpiring, HealthExpiring},
		{"expired", kmsimport.StatusTarget{Cloud: "azure", State: "Enabled", Linked: true, ValidTo: at(-1)}, ProblemExpiring, HealthBroken},
		{"destroyed", kmsimport.StatusTarget{Cloud: "gcp", State: "DESTROYED", Linked: true, Problem: kmsimport.ProblemTargetNotEnabled}, kmsimport.ProblemTargetNotEnabled, HealthBroken},
		{"missing", kmsimport.StatusTarget{Cloud: "gcp", State: "missing", Problem: kmsimport.ProblemTargetMissing}, kmsimport.ProblemTargetMissing, HealthBroken},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &Status{Time: now, WarnDays: 30, Health: HealthOK}
			st.AddTargets([]kmsimport.StatusTarget{c.target})
			if st.Health != c.health || len(st.Targets) != 1 {
				t.Errorf("health %s, want %s", st.Health, c.health)
			}
			switch {
			case c.kind == "" && len(st.Problems) != 0:
				t.Errorf("problems %+v", st.Problems)
			case c.kind != "" && (len(st.Problems) != 1 || st.Problems[0].Kind != c.kind || st.Problems[0].Cloud != c.target.Cloud):
				t.Errorf("problems %+v, want one %s", st.Problems, c.kind)
			}
			var b bytes.Buffer
			st.WriteTable(&b)
			if !strings.Contains(b.String(), "CLOUD") || !strings.Contains(b.String(), c.target.Cloud+" ") {
				t.Errorf("table:\n%s", b.String())
			}
		})
	}
}

// TestStatusSaysWhatEachLinkRestsOn: status links a cloud key to an HSM
// key by its tags; its LINKED BY column and JSON LinkedBy say "tags"
// unless the material itself was confirmed in this run (--verify:
// "verified"). An Encrypt/Decrypt round trip ("works") is no more than
// the tags; another cloud's target is always "tags"; an unlinked target
// says nothing.
func TestStatusSaysWhatEachLinkRestsOn(t *testing.T) {
	for proof, want := range map[string]string{
		ProofNotChecked: kmsimport.LinkedByTags,
		"works: KMS key k is Enabled and round-trips Encrypt/Decrypt": kmsimport.LinkedByTags,
		"FAILED: not the HSM's":                   kmsimport.LinkedByTags,
		proofConfirmed + "KMS GenerateMac equals": kmsimport.LinkedByVerified,
	} {
		if got := linkedBy(proof); got != want {
			t.Errorf("proof %q: linked by %q, want %q", proof, got, want)
		}
	}
	st := &Status{Time: time.Now(), WarnDays: 30, Health: HealthOK,
		KMSKeys: []StatusKMSKey{{KeyId: "mac", KeyState: "Enabled", HSMKeyID: "0a", Proof: proofConfirmed + "x", LinkedBy: kmsimport.LinkedByVerified,
			Materials: []Material{{State: "CURRENT"}}}}}
	st.AddTargets([]kmsimport.StatusTarget{{Cloud: "azure", Target: "https://v/keys/k/1", State: "Enabled", Linked: true, HSMKeyID: "0b"},
		{Cloud: "gcp", Target: "projects/p/x", State: "ENABLED", Problem: kmsimport.ProblemTargetNotLinked}})
	if st.Targets[0].LinkedBy != kmsimport.LinkedByTags || st.Targets[1].LinkedBy != "" {
		t.Errorf("targets linked by %q and %q", st.Targets[0].LinkedBy, st.Targets[1].LinkedBy)
	}
	var b bytes.Buffer
	st.WriteTable(&b, "kms-key", "linked-by")
	lines := strings.Split(b.String(), "\n")
	var rows []string
	for _, l := range lines {
		if strings.HasPrefix(l, "KMS KEY") || strings.HasPrefix(l, "mac ") || strings.HasPrefix(l, "https://v") || strings.HasPrefix(l, "projects/") {
			rows = append(rows, strings.Join(strings.Fields(l), " "))
		}
	}
	if strings.Join(rows, "|") != "KMS KEY LINKED BY|mac verified|https://v/keys/k/1 tags|projects/p/x -" {
		t.Errorf("table rows %q:\n%s", rows, b.String())
	}
}
