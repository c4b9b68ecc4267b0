package kmsimport

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes the inventory for a person: one row per key material
// of each linked KMS key, then the HSM keys with their URIs, then the
// problems and the verdict.
func (st *Status) WriteTable(w io.Writer) {
	if st.Token != nil {
		fmt.Fprintf(w, "Token %q serial %s (%s %s)\n", st.Token.Label, st.Token.Serial, st.Token.Manufacturer, st.Token.Model)
	} else {
		fmt.Fprintln(w, "Token: not read (KMS side only)")
	}
	if len(st.Regions) > 0 {
		fmt.Fprintf(w, "KMS Regions: %s\n", strings.Join(st.Regions, ", "))
	} else {
		fmt.Fprintln(w, "KMS: not read (--no-kms)")
	}
	fmt.Fprintln(w)
	labels := map[string]string{}
	for _, h := range st.HSMKeys {
		labels[h.ID] = h.Label
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HSM KEY\tCKA_ID\tKMS KEY\tREGION\tALIAS\tKEY SPEC\tSTATE\tKEY MATERIAL\tMATERIAL STATE\tVALID TO\tDAYS\tBACKED BY\tPROOF")
	shown := map[string]bool{}
	for _, k := range st.KMSKeys {
		label := k.HSMKeyLabel
		if l, ok := labels[k.HSMKeyID]; ok {
			label = l
		}
		shown[k.HSMKeyID] = true
		alias := dash(strings.Join(k.Aliases, ","))
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
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(label), dash(k.HSMKeyID), k.KeyId, k.Region, alias, spec, k.KeyState,
					dash(shortID(m.KeyMaterialId)), m.State, validTo, days, backed, k.Proof)
			} else {
				fmt.Fprintf(tw, "\t\t\t\t\t\t\t%s\t%s\t%s\t%s\t%s\t\n", dash(shortID(m.KeyMaterialId)), m.State, validTo, days, backed)
			}
		}
	}
	for _, h := range st.HSMKeys {
		if !shown[h.ID] {
			fmt.Fprintf(tw, "%s\t%s\t-\t\t\t%s\t\t\t\t\t\t\t\n", h.Label, h.ID, h.KeyType)
		}
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
var ProblemKinds = []string{ProblemMissingHSMKey, ProblemLinkedTwice, ProblemExpiring, ProblemPendingImport, ProblemRotationPending, ProblemVerification, ProblemIncomplete}
