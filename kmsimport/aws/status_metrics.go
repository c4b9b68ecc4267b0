package aws

import (
	"io"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// StatusScope names what one status run looks at, as the operator chose
// it: the token selector and the home Region. Every series carries it, so
// the textfiles of several status runs (one per token or Region) can sit
// side by side in node_exporter's textfile directory without colliding,
// and a failed run replaces exactly the series of the run it stands for.
type StatusScope struct {
	// Token is the token as selected, e.g. "serial=0a1b" or
	// "label=ceremony"; "" when status read the KMS side only.
	Token string
	// Region is the home Region; "" when status read the token only.
	Region string
}

// The metric names. Times are Unix seconds, the unit Prometheus expects;
// alert on `kmsbridge_key_material_valid_to_seconds - time() < 30*86400`
// rather than on a count of days.
const (
	metricUp         = "kmsbridge_status_up"
	metricLastRun    = "kmsbridge_status_last_run_timestamp_seconds"
	metricHealth     = "kmsbridge_status_health"
	metricWarn       = "kmsbridge_status_warn_seconds"
	metricProblems   = "kmsbridge_problems"
	metricHSMKey     = "kmsbridge_hsm_key_info"
	metricHSMKMSKeys = "kmsbridge_hsm_key_kms_keys"
	metricKMSKey     = "kmsbridge_kms_key_info"
	metricKMSEnabled = "kmsbridge_kms_key_enabled"
	metricValidTo    = "kmsbridge_key_material_valid_to_seconds"
)

// Metrics is the inventory as Prometheus gauges, for node_exporter's
// textfile collector: whether status ran (up 1), its verdict, a zero or a
// count for every problem kind, one _info series (value 1) per HSM key and
// KMS key, and when each imported material expires.
func (st *Status) Metrics(scope StatusScope) *prometheus.Registry {
	m := newStatusMetrics(scope)
	m.gauge(metricUp, "1 when kmsbridge status read everything it was asked to; 0 when it could not run (the error label says why).", nil).With(nil).Set(1)
	m.gauge(metricLastRun, "When kmsbridge status last ran, in Unix time.", nil).With(nil).Set(float64(st.Time.Unix()))
	m.gauge(metricHealth, "Verdict of kmsbridge status: 0 ok, 1 material expiring soon or a rotation pending, 2 broken.", nil).With(nil).Set(float64(HealthValue(st.Health)))
	m.gauge(metricWarn, "Material expiring within this many seconds counts as expiring (--warn-days).", nil).With(nil).Set(float64(st.WarnDays) * 86400)

	problems := m.gauge(metricProblems, "Number of problems kmsbridge status found, by kind.", []string{"kind"})
	for _, k := range ProblemKinds {
		problems.With(prometheus.Labels{"kind": k}).Set(0)
	}
	for _, p := range st.Problems {
		problems.With(prometheus.Labels{"kind": p.Kind}).Inc()
	}

	serial := ""
	if st.Token != nil {
		serial = st.Token.Serial
	}
	hsmInfo := m.gauge(metricHSMKey, "One series (value 1) per key in the token, naming its label and CKA_ID.", []string{"token_serial", "hsm_key_label", "hsm_key_id"})
	hsmKMS := m.gauge(metricHSMKMSKeys, "How many KMS keys hold each HSM key's material (2 or more is a problem).", []string{"token_serial", "hsm_key_id"})
	for _, h := range st.HSMKeys {
		hsmInfo.With(prometheus.Labels{"token_serial": serial, "hsm_key_label": h.Label, "hsm_key_id": h.ID}).Set(1)
		hsmKMS.With(prometheus.Labels{"token_serial": serial, "hsm_key_id": h.ID}).Set(float64(len(h.KMSKeys)))
	}

	kmsLabels := []string{"cloud", "kms_region", "kms_key_id", "alias", "key_spec", "key_state", "hsm_key_id", "hsm_key_label", "token_serial"}
	kmsInfo := m.gauge(metricKMSKey, "One series (value 1) per KMS key linked to an HSM key, naming its cloud (aws, gcp, azure), alias, spec, state and HSM key; for Cloud KMS and Key Vault kms_region is the key ring or vault and kms_key_id the crypto key version or key.", kmsLabels)
	kmsEnabled := m.gauge(metricKMSEnabled, "1 when the linked KMS key is Enabled (a Cloud KMS version ENABLED, a Key Vault key enabled), else 0.", []string{"cloud", "kms_region", "kms_key_id"})
	validTo := m.gauge(metricValidTo, "When each imported key material expires, in Unix time (materials that never expire are left out); for Key Vault the key's exp.", []string{"cloud", "kms_region", "kms_key_id", "key_material_id", "key_material_state", "hsm_key_id"})
	st.targetMetrics(kmsInfo, kmsEnabled, validTo, serial)
	for _, k := range st.KMSKeys {
		kmsInfo.With(prometheus.Labels{"cloud": kmsimport.CloudAWS, "kms_region": k.Region, "kms_key_id": k.KeyId, "alias": strings.Join(k.Aliases, ","), "key_spec": k.KeySpec,
			"key_state": k.KeyState, "hsm_key_id": k.HSMKeyID, "hsm_key_label": k.HSMKeyLabel, "token_serial": k.TokenSerial}).Set(1)
		enabled := 0.0
		if k.KeyState == "Enabled" {
			enabled = 1
		}
		kmsEnabled.With(prometheus.Labels{"cloud": kmsimport.CloudAWS, "kms_region": k.Region, "kms_key_id": k.KeyId}).Set(enabled)
		for _, mat := range k.Materials {
			if mat.ValidTo != nil && mat.ImportState != "PENDING_IMPORT" {
				validTo.With(prometheus.Labels{"cloud": kmsimport.CloudAWS, "kms_region": k.Region, "kms_key_id": k.KeyId, "key_material_id": mat.KeyMaterialId,
					"key_material_state": mat.State, "hsm_key_id": mat.HSMKeyID}).Set(float64(mat.ValidTo.Unix()))
			}
		}
	}
	return m.reg
}

// FailureMetrics is what a status run that could not run at all reports:
// up 0 with the reason, so the textfile never goes empty and an alert on
// `kmsbridge_status_up == 0` fires instead of every series disappearing.
func FailureMetrics(scope StatusScope, now time.Time, reason string) *prometheus.Registry {
	m := newStatusMetrics(scope)
	if i := strings.IndexByte(reason, '\n'); i >= 0 {
		reason = reason[:i]
	}
	if len(reason) > 200 {
		reason = reason[:200] + "..."
	}
	m.gauge(metricUp, "1 when kmsbridge status read everything it was asked to; 0 when it could not run (the error label says why).", []string{"error"}).
		With(prometheus.Labels{"error": reason}).Set(0)
	m.gauge(metricLastRun, "When kmsbridge status last ran, in Unix time.", nil).With(nil).Set(float64(now.Unix()))
	return m.reg
}

// WritePrometheus writes reg in the Prometheus text exposition format.
func WritePrometheus(w io.Writer, reg *prometheus.Registry) error {
	families, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
}

type statusMetrics struct {
	reg   *prometheus.Registry
	scope prometheus.Labels
}

func newStatusMetrics(scope StatusScope) *statusMetrics {
	return &statusMetrics{reg: prometheus.NewPedanticRegistry(), scope: prometheus.Labels{"token": scope.Token, "region": scope.Region}}
}

// gauge registers a gauge vector whose series all carry the run's scope.
func (m *statusMetrics) gauge(name, help string, labels []string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: m.scope}, labels)
	m.reg.MustRegister(g)
	return g
}
