package aws

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kmsbridge/kmsbridge/hsm"
)

func readStatus(t *testing.T, l *ledger, tok InventoryToken, warn int) *Status {
	t.Helper()
	o := StatusOptions{KMS: []Regional{{Region: "eu-west-1", KMS: l}}, WarnDays: warn, Now: func() time.Time { return now }}
	if tok != nil {
		o.Token = tok
	}
	st, err := ReadStatus(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func kinds(st *Status) map[string]int {
	m := map[string]int{}
	for _, p := range st.Problems {
		m[p.Kind]++
	}
	return m
}

func TestStatusFindsEveryProblemKind(t *testing.T) {
	l := newLedger()
	l.addKey("k-fine", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(200))
	l.addKey("k-expiring", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0b", days(10))
	l.addKey("k-twice-1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0c", nil)
	l.addKey("k-twice-2", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0c", nil)
	l.addKey("k-missing", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "ff", nil)
	l.addKey("k-pending", types.KeySpecSymmetricDefault, types.KeyStatePendingImport, "0d", nil)
	tok := &fakeToken{keys: []*hsm.Key{aesKey("fine", 0x0a), aesKey("expiring", 0x0b), aesKey("twice", 0x0c), aesKey("pending", 0x0d), aesKey("unlinked", 0x0e)}}
	st := readStatus(t, l, tok, 30)
	got := kinds(st)
	want := map[string]int{ProblemExpiring: 1, ProblemLinkedTwice: 1, ProblemMissingHSMKey: 1, ProblemPendingImport: 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s problems = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if len(st.Problems) != 4 {
		t.Errorf("%d problems, want 4: %+v", len(st.Problems), st.Problems)
	}
	if st.Health != HealthBroken {
		t.Errorf("health %s, want broken", st.Health)
	}
	for _, p := range st.Problems {
		if p.Kind == ProblemPendingImport && p.Fix != "kmsbridge renew --token-serial 0001 --kms-key-id k-pending" {
			t.Errorf("pending-import fix %q", p.Fix)
		}
	}
	for _, h := range st.HSMKeys {
		if h.ID == "0c" && len(h.KMSKeys) != 2 || h.ID == "0e" && len(h.KMSKeys) != 0 {
			t.Errorf("HSM key %s linked to %v", h.ID, h.KMSKeys)
		}
	}
}

func TestStatusHealth(t *testing.T) {
	l := newLedger()
	l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(100))
	tok := &fakeToken{keys: []*hsm.Key{aesKey("a", 0x0a)}}
	if st := readStatus(t, l, tok, 30); st.Health != HealthOK || len(st.Problems) != 0 {
		t.Errorf("100 days left, warn 30: health %s, problems %+v", st.Health, st.Problems)
	}
	if st := readStatus(t, l, tok, 120); st.Health != HealthExpiring {
		t.Errorf("100 days left, warn 120: health %s", st.Health)
	}
	if st := readStatus(t, l, nil, 30); st.Health != HealthOK || kinds(st)[ProblemMissingHSMKey] != 0 {
		t.Errorf("KMS side only reported a missing HSM key it could not check: %+v", st.Problems)
	}
}

func TestStatusShowsWhichHSMKeyBacksEachMaterial(t *testing.T) {
	l := newLedger()
	k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
	second := materialID("k1", 1)
	k.materials[0].KeyMaterialState = types.KeyMaterialStateNonCurrent
	k.materials = append(k.materials, types.RotationsListEntry{KeyMaterialId: &second, KeyMaterialState: types.KeyMaterialStateCurrent, ImportState: types.ImportStateImported, RotationDate: &now})
	k.tags[MaterialTag(second)] = "0b"
	st := readStatus(t, l, &fakeToken{keys: []*hsm.Key{aesKey("a", 0x0a), aesKey("a-r2", 0x0b)}}, 30)
	ms := st.KMSKeys[0].Materials
	if len(ms) != 2 || ms[0].HSMKeyID != "0a" || ms[1].HSMKeyID != "0b" {
		t.Fatalf("materials %+v", ms)
	}
	var b bytes.Buffer
	st.WriteTable(&b)
	if !strings.Contains(b.String(), "0b (a-r2)") {
		t.Errorf("table does not name the second generation's HSM key:\n%s", b.String())
	}
}

func TestStatusNamesKeysByTheURIsKmsbridgeAccepts(t *testing.T) {
	l := newLedger()
	l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
	st := readStatus(t, l, &fakeToken{keys: []*hsm.Key{aesKey("pay/2026;x", 0x0a), {Label: "sig", ID: []byte{0x0b}, Class: pkcs11.CKO_PRIVATE_KEY, KeyType: pkcs11.CKK_EC}}}, 30)
	for _, h := range st.HSMKeys {
		u, err := hsm.ParseURI(h.URI)
		if err != nil {
			t.Fatalf("status printed %s, which kmsbridge refuses: %v", h.URI, err)
		}
		if u.Object != h.Label {
			t.Errorf("URI %s names object %q, want %q", h.URI, u.Object, h.Label)
		}
		if h.Label == "sig" && !strings.HasSuffix(h.URI, ";type=private") {
			t.Errorf("a private key's URI is %s; RFC 7512 says type=private", h.URI)
		}
	}
}

func TestPrometheusOutputPassesPromlint(t *testing.T) {
	l := newLedger()
	l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(10))
	l.addKey("k2", types.KeySpecSymmetricDefault, types.KeyStatePendingImport, "0b", nil)
	st := readStatus(t, l, &fakeToken{keys: []*hsm.Key{aesKey(`we"ird\label`, 0x0a)}}, 30)
	var b bytes.Buffer
	if err := WritePrometheus(&b, st.Metrics(StatusScope{Token: "serial=1", Region: "eu-west-1"})); err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(b.Bytes())).Lint()
	if err != nil {
		t.Fatalf("not in the text format: %v\n%s", err, b.String())
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(families["kmsbridge_problems"].GetMetric()); got != len(ProblemKinds) {
		t.Errorf("%d kmsbridge_problems series, want one per kind (%d)", got, len(ProblemKinds))
	}
	if got := families["kmsbridge_status_health"].GetMetric()[0].GetGauge().GetValue(); got != 2 {
		t.Errorf("health %v, want 2 (broken: a PendingImport key)", got)
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["token"] != "serial=1" || labels["region"] != "eu-west-1" {
				t.Errorf("%s series %v lacks the run's scope labels: two status runs would collide", name, labels)
			}
			if strings.HasSuffix(name, "_info") && m.GetGauge().GetValue() != 1 {
				t.Errorf("%s is an _info metric with value %v, not 1", name, m.GetGauge().GetValue())
			}
		}
	}
	if !strings.Contains(b.String(), `hsm_key_label="we\"ird\\label"`) {
		t.Errorf("label escaping wrong:\n%s", b.String())
	}
}

func TestFailureMetricsSayStatusIsDown(t *testing.T) {
	var b bytes.Buffer
	if err := WritePrometheus(&b, FailureMetrics(StatusScope{Token: "label=x"}, time.Unix(1700000000, 0), "token: no token with label \"x\"\nmore")); err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.New(bytes.NewReader(b.Bytes())).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %v", err, problems)
	}
	if !strings.Contains(b.String(), `kmsbridge_status_up{error="token: no token with label \"x\"",region="",token="label=x"} 0`) {
		t.Errorf("no up 0 with the error's first line:\n%s", b.String())
	}
}

func TestStatusTableShowsTheColumnsAsked(t *testing.T) {
	l := newLedger()
	l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(10))
	st := readStatus(t, l, &fakeToken{keys: []*hsm.Key{aesKey("pay", 0x0a)}}, 30)
	var b bytes.Buffer
	st.WriteTable(&b, "hsm-key", "days")
	lines := strings.Split(b.String(), "\n")
	var header, row string
	for i, l := range lines {
		if strings.HasPrefix(l, "HSM KEY") {
			header, row = l, lines[i+1]
		}
	}
	if strings.Fields(header)[2] != "DAYS" || len(strings.Fields(header)) != 3 || strings.Fields(row)[0] != "pay" || strings.Fields(row)[1] != "10" {
		t.Errorf("--columns hsm-key,days gave:\n%s", b.String())
	}
	if err := CheckStatusColumns([]string{"hsm-key", "nosuch"}); err == nil || !strings.Contains(err.Error(), "choose from hsm-key,cka-id") {
		t.Errorf("an unknown column: %v", err)
	}
}
