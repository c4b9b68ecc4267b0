package aws

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// StatusColumns are the table's columns, in order, by the names
// `status --columns` takes.
var StatusColumns = []string{"hsm-key", "cka-id", "kms-key", "region", "alias", "key-spec", "state", "material", "material-state", "valid-to", "days", "backed-by", "proof", "linked-by"}

var statusHeaders = map[string]string{"hsm-key": "HSM KEY", "cka-id": "CKA_ID", "kms-key": "KMS KEY", "region": "REGION", "alias": "ALIAS", "key-spec": "KEY SPEC", "state": "STATE",
	"material": "KEY MATERIAL", "material-state": "MATERIAL STATE", "valid-to": "VALID TO", "days": "DAYS", "backed-by": "BACKED BY", "proof": "PROOF", "linked-by": "LINKED BY", "cloud": "CLOUD"}

// ColumnCloud is the column naming each row's cloud (aws, gcp, azure):
// --columns takes it, and the default table leads with it when status
// shows other clouds' targets.
const ColumnCloud = "cloud"

// statusRow is one row of the table: a key material of a linked KMS key,
// or an HSM key no KMS key is linked to.
type statusRow struct {
	first                                                   bool // the KMS key's first material: the key's own cells are shown
	cloud                                                   string
	label, ckaID, kmsKey, region, alias, spec, state, proof string
	material, materialState, validTo, days, backed          string
	linkedBy                                                string
}

func (r statusRow) cell(col string) string {
	switch col {
	case ColumnCloud:
		return r.cloud
	case "hsm-key":
		return r.label
	case "cka-id":
		return r.ckaID
	case "kms-key":
		return r.kmsKey
	case "region":
		return r.region
	case "alias":
		return r.alias
	case "key-spec":
		return r.spec
	case "state":
		return r.state
	case "material":
		return r.material
	case "material-state":
		return r.materialState
	case "valid-to":
		return r.validTo
	case "days":
		return r.days
	case "backed-by":
		return r.backed
	case "proof":
		return r.proof
	case "linked-by":
		return r.linkedBy
	}
	return ""
}

// CheckStatusColumns fails on a column name the table does not have.
func CheckStatusColumns(cols []string) error {
	for _, c := range cols {
		if !contains(StatusColumns, c) && c != ColumnCloud {
			return fmt.Errorf("%w: --columns %q: no such column; choose from %s,%s", kmsimport.ErrInvalidInput, c, strings.Join(StatusColumns, ","), ColumnCloud)
		}
	}
	return nil
}

// WriteTable writes the inventory for a person: one row per key material
// of each linked KMS key (only the columns cols names, every column when
// cols is empty), then the HSM keys with their URIs, then the problems and
// the verdict.
func (st *Status) WriteTable(w io.Writer, cols ...string) {
	if len(cols) == 0 {
		cols = StatusColumns
		if len(st.Targets) > 0 {
			cols = append([]string{ColumnCloud}, cols...)
		}
	}
	if st.Token != nil {
		fmt.Fprintf(w, "Token %q serial %s (%s %s)\n", st.Token.Label, st.Token.Serial, st.Token.Manufacturer, st.Token.Model)
	} else {
		fmt.Fprintln(w, "Token: not read (KMS side only)")
	}
	if len(st.Regions) > 0 {
		fmt.Fprintf(w, "KMS Regions: %s\n", strings.Join(st.Regions, ", "))
		for _, e := range st.KMSEndpoints {
			fmt.Fprintf(w, "KMS endpoint (%s): %s\n", e.Region, e.Endpoint)
		}
	} else {
		fmt.Fprintln(w, "KMS: not read (--no-kms)")
	}
	fmt.Fprintln(w)
	labels := map[string]string{}
	for _, h := range st.HSMKeys {
		labels[h.ID] = h.Label
	}
	var rows []statusRow
	shown := map[string]bool{}
	for _, k := range st.KMSKeys {
		label := k.HSMKeyLabel
		if l, ok := labels[k.HSMKeyID]; ok {
			label = l
		}
		shown[k.HSMKeyID] = true
		spec := k.KeySpec
		if k.MultiRegion != "" {
			spec += " (" + strings.ToLower(k.MultiRegion) + ")"
		}
		for i, m := range k.Materials {
			validTo, days := "never", "-"
			if m.ImportState == "PENDING_IMPORT" {
				validTo = "not imported"
			} else if m.ValidTo != nil {
				validTo = m.ValidTo.Format(time.RFC3339)
				days = strconv.Itoa(DaysLeft(st.Time, *m.ValidTo))
			}
			backed := dash(m.HSMKeyID)
			if l := labels[m.HSMKeyID]; l != "" {
				backed = fmt.Sprintf("%s (%s)", m.HSMKeyID, l)
			}
			shown[m.HSMKeyID] = true
			row := statusRow{first: i == 0, cloud: kmsimport.CloudAWS, material: dash(shortID(m.KeyMaterialId)), materialState: m.State, validTo: validTo, days: days, backed: backed}
			if i == 0 {
				row.label, row.ckaID, row.kmsKey, row.region, row.alias, row.spec, row.state, row.proof = dash(label), dash(k.HSMKeyID), k.KeyId, k.Region, dash(strings.Join(k.Aliases, ",")), spec, k.KeyState, k.Proof
				row.linkedBy = dash(k.LinkedBy)
			}
			rows = append(rows, row)
		}
	}
	rows = append(rows, st.targetRows(labels, shown)...)
	for _, h := range st.HSMKeys {
		if !shown[h.ID] {
			rows = append(rows, statusRow{first: true, label: h.Label, ckaID: h.ID, kmsKey: "-", spec: h.KeyType})
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = statusHeaders[c]
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = r.cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	for _, k := range st.KMSKeys {
		if k.Proof == ProofNotChecked {
			fmt.Fprintln(w, "PROOF: add --verify (with the token) to prove each KMS key against its HSM key.")
			break
		}
	}
	if len(st.HSMKeys) > 0 {
		fmt.Fprintln(w, "\nHSM keys")
		for _, h := range st.HSMKeys {
			fmt.Fprintf(w, "  %s\n", h.URI)
		}
	}
	for _, k := range st.KMSKeys {
		if k.Note != "" {
			fmt.Fprintf(w, "Note: %s: %s\n", k.KeyId, k.Note)
		}
		if k.RotatedTo != "" {
			fmt.Fprintf(w, "Note: %s was rotated to %s and is kept for what it encrypted or signed\n", k.KeyId, k.RotatedTo)
		}
	}
	fmt.Fprintln(w)
	if len(st.Problems) == 0 {
		fmt.Fprintf(w, "No problems (material expiring within %d days counts as one).\n", st.WarnDays)
	} else {
		fmt.Fprintf(w, "Problems (%d)\n", len(st.Problems))
		for _, p := range st.Problems {
			fmt.Fprintf(w, "  [%s] %s: %s\n", p.Severity, p.Kind, p.Message)
			if p.Fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", p.Fix)
			}
		}
	}
	fmt.Fprintf(w, "Health: %s\n", st.Health)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// HealthValue is the Prometheus value of h: 0 ok, 1 expiring, 2 broken.
func HealthValue(h Health) int {
	switch h {
	case HealthExpiring:
		return 1
	case HealthBroken:
		return 2
	}
	return 0
}

// ProblemKinds lists every problem kind, so monitoring sees a zero for
// each kind that is absent rather than no series at all.
var ProblemKinds = []string{ProblemMissingHSMKey, ProblemLinkedTwice, ProblemExpiring, ProblemPendingImport, ProblemRotationPending, ProblemVerification, ProblemIncomplete,
	kmsimport.ProblemTargetMissing, kmsimport.ProblemTargetNotLinked, kmsimport.ProblemTargetNotEnabled}
