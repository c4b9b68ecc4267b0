package kmsimport

import (
	"fmt"
	"io"
	"sort"
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

// WritePrometheus writes the inventory in the Prometheus text exposition
// format, for node_exporter's textfile collector: every metric named
// kmsbridge_*, each with its HELP and TYPE lines.
func (st *Status) WritePrometheus(w io.Writer) {
	metric := func(name, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	metric("kmsbridge_status_health", "Verdict of kmsbridge status: 0 ok, 1 material expiring soon or a rotation pending, 2 broken.")
	fmt.Fprintf(w, "kmsbridge_status_health %d\n", HealthValue(st.Health))
	metric("kmsbridge_status_timestamp_seconds", "When kmsbridge status ran, in Unix time.")
	fmt.Fprintf(w, "kmsbridge_status_timestamp_seconds %d\n", st.Time.Unix())
	metric("kmsbridge_status_warn_days", "Material expiring within this many days counts as expiring.")
	fmt.Fprintf(w, "kmsbridge_status_warn_days %d\n", st.WarnDays)

	metric("kmsbridge_problems", "Number of problems kmsbridge status found, by kind.")
	counts := map[string]int{}
	for _, p := range st.Problems {
		counts[p.Kind]++
	}
	kinds := append([]string(nil), ProblemKinds...)
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "kmsbridge_problems{kind=%q} %d\n", k, counts[k])
	}

	metric("kmsbridge_hsm_key_info", "One series per key in the token, with its label, CKA_ID and the number of KMS keys holding its material as the value.")
	for _, h := range st.HSMKeys {
		fmt.Fprintf(w, "kmsbridge_hsm_key_info%s %d\n", labelSet("token_serial", st.Token.Serial, "hsm_key_label", h.Label, "hsm_key_id", h.ID), len(h.KMSKeys))
	}

	metric("kmsbridge_kms_key_info", "One series per KMS key linked to an HSM key; the value is 1 when the key is Enabled, else 0.")
	for _, k := range st.KMSKeys {
		v := 0
		if k.KeyState == "Enabled" {
			v = 1
		}
		fmt.Fprintf(w, "kmsbridge_kms_key_info%s %d\n", labelSet("region", k.Region, "kms_key_id", k.KeyId, "alias", strings.Join(k.Aliases, ","), "key_spec", k.KeySpec, "key_state", k.KeyState, "hsm_key_id", k.HSMKeyID, "hsm_key_label", k.HSMKeyLabel, "token_serial", k.TokenSerial), v)
	}

	metric("kmsbridge_key_material_valid_to_seconds", "When each imported key material expires, in Unix time (materials that never expire are left out).")
	for _, k := range st.KMSKeys {
		for _, m := range k.Materials {
			if m.ValidTo != nil && m.ImportState != "PENDING_IMPORT" {
				fmt.Fprintf(w, "kmsbridge_key_material_valid_to_seconds%s %d\n", materialLabels(k, m), m.ValidTo.Unix())
			}
		}
	}
	metric("kmsbridge_key_material_expiry_days", "Whole days until each imported key material expires (negative once past).")
	for _, k := range st.KMSKeys {
		for _, m := range k.Materials {
			if m.ValidTo != nil && m.ImportState != "PENDING_IMPORT" {
				fmt.Fprintf(w, "kmsbridge_key_material_expiry_days%s %d\n", materialLabels(k, m), DaysLeft(st.Time, *m.ValidTo))
			}
		}
	}
}

func materialLabels(k StatusKMSKey, m Material) string {
	return labelSet("region", k.Region, "kms_key_id", k.KeyId, "key_material_id", m.KeyMaterialId, "key_material_state", m.State, "hsm_key_id", m.HSMKeyID)
}

// labelSet formats name/value pairs as a Prometheus label set, escaping
// backslash, double quote and newline as the format requires.
func labelSet(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1])
		fmt.Fprintf(&b, `%s="%s"`, kv[i], v)
	}
	b.WriteByte('}')
	return b.String()
}
