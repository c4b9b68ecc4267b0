package aws

import (
	"fmt"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/prometheus/client_golang/prometheus"
)

// The clouds besides AWS KMS in status: each keeps its own reading of a
// target (kmsimport/gcp, kmsimport/azure: status.go) and hands status
// these neutral rows, which join the AWS rows in the table, the JSON and
// the metrics, each labelled with its cloud.

// AddTargets joins other clouds' targets to the inventory: days to
// expiry, and their problems (missing, not linked, not usable, expiring or
// expired), which count in Health like the AWS keys' problems.
func (st *Status) AddTargets(targets []kmsimport.StatusTarget) {
	warn := time.Duration(st.WarnDays) * 24 * time.Hour
	for i := range targets {
		t := &targets[i]
		if t.Linked {
			t.LinkedBy = kmsimport.LinkedByTags
		}
		if t.ValidTo != nil {
			d := DaysLeft(st.Time, *t.ValidTo)
			t.DaysToExpiry = &d
		}
		p := Problem{Cloud: t.Cloud, KeyId: t.Target, Region: t.Location, HSMKeyID: t.HSMKeyID, Fix: t.Fix}
		switch {
		case t.Problem != "":
			p.Kind, p.Severity, p.Message = t.Problem, HealthBroken, fmt.Sprintf("%s %s: %s", t.Cloud, t.Target, t.Note)
		case t.ValidTo != nil && !t.ValidTo.After(st.Time):
			p.Kind, p.Severity, p.Message = ProblemExpiring, HealthBroken, fmt.Sprintf("%s key %s expired at %s: it can no longer be used", t.Cloud, t.Target, t.ValidTo.Format(time.RFC3339))
		case t.ValidTo != nil && t.ValidTo.Sub(st.Time) <= warn:
			p.Kind, p.Severity, p.Message = ProblemExpiring, HealthExpiring, fmt.Sprintf("%s key %s expires in %d days, at %s", t.Cloud, t.Target, *t.DaysToExpiry, t.ValidTo.Format(time.RFC3339))
		default:
			continue
		}
		st.add(p)
		if worse(p.Severity, st.Health) {
			st.Health = p.Severity
		}
	}
	st.Targets = append(st.Targets, targets...)
}

// targetRows are the table rows of the other clouds' targets; shown
// marks their HSM keys as shown.
func (st *Status) targetRows(labels map[string]string, shown map[string]bool) []statusRow {
	var rows []statusRow
	for _, t := range st.Targets {
		label := t.HSMKeyLabel
		if l, ok := labels[t.HSMKeyID]; ok {
			label = l
		}
		shown[t.HSMKeyID] = true
		validTo, days := "never", "-"
		if t.ValidTo != nil {
			validTo = t.ValidTo.Format(time.RFC3339)
			days = fmt.Sprint(*t.DaysToExpiry)
		}
		backed := dash(t.HSMKeyID)
		if label != "" {
			backed = fmt.Sprintf("%s (%s)", t.HSMKeyID, label)
		}
		proof := "linked by labels/tags"
		if !t.Linked {
			proof = "NOT LINKED"
		}
		spec := t.KeySpec
		if t.ProtectionLevel != "" {
			spec += " (" + t.ProtectionLevel + ")"
		}
		rows = append(rows, statusRow{first: true, cloud: t.Cloud, label: dash(label), ckaID: dash(t.HSMKeyID), kmsKey: t.Target, region: t.Location,
			alias: "-", spec: dash(spec), state: t.State, material: dash(t.ImportJob + t.KEK), materialState: dash(t.ImportJobState), validTo: validTo, days: days, backed: backed, proof: proof, linkedBy: dash(t.LinkedBy)})
	}
	return rows
}

// targetEnabled says whether a target's state lets it be used.
func targetEnabled(state string) bool { return state == "ENABLED" || state == "Enabled" }

// targetMetrics adds the targets to the KMS key families, labelled with
// their cloud.
func (st *Status) targetMetrics(info, enabled, validTo *prometheus.GaugeVec, serial string) {
	for _, t := range st.Targets {
		info.With(prometheus.Labels{"cloud": t.Cloud, "kms_region": t.Location, "kms_key_id": t.Target, "alias": "", "key_spec": t.KeySpec,
			"key_state": t.State, "hsm_key_id": t.HSMKeyID, "hsm_key_label": t.HSMKeyLabel, "token_serial": serial}).Set(1)
		on := 0.0
		if targetEnabled(t.State) {
			on = 1
		}
		enabled.With(prometheus.Labels{"cloud": t.Cloud, "kms_region": t.Location, "kms_key_id": t.Target}).Set(on)
		if t.ValidTo != nil {
			validTo.With(prometheus.Labels{"cloud": t.Cloud, "kms_region": t.Location, "kms_key_id": t.Target, "key_material_id": t.Target,
				"key_material_state": t.State, "hsm_key_id": t.HSMKeyID}).Set(float64(t.ValidTo.Unix()))
		}
	}
}
