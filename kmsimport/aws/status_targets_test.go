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
