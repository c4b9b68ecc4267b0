package kmsimport

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

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
		if p.Kind == ProblemPendingImport && p.Fix != "kmsbridge renew --kms-key-id k-pending" {
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

func TestPKCS11URI(t *testing.T) {
	got := PKCS11URI(hsm.TokenIdentity{Label: "cere mony", Serial: "12ab"}, &hsm.Key{Label: "pay/2026;x", ID: []byte{0x3f, 0x9a}, Class: 4})
	want := "pkcs11:token=cere%20mony;serial=12ab;object=pay%2F2026%3Bx;id=%3f%9a;type=secret-key"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

var (
	promSample = regexp.MustCompile(`^(kmsbridge_[a-z_]+)(\{([a-z_]+="([^"\\]|\\.)*")(,[a-z_]+="([^"\\]|\\.)*")*\})? -?[0-9]+$`)
	promHelp   = regexp.MustCompile(`^# HELP (kmsbridge_[a-z_]+) \S.*$`)
	promType   = regexp.MustCompile(`^# TYPE (kmsbridge_[a-z_]+) gauge$`)
)

func TestPrometheusOutputIsStrictTextFormat(t *testing.T) {
	l := newLedger()
	l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", days(10))
	l.addKey("k2", types.KeySpecSymmetricDefault, types.KeyStatePendingImport, "0b", nil)
	st := readStatus(t, l, &fakeToken{keys: []*hsm.Key{aesKey(`we"ird\label`, 0x0a)}}, 30)
	var b bytes.Buffer
	st.WritePrometheus(&b)
	typed := map[string]bool{}
	helped := map[string]bool{}
	samples := map[string]int{}
	for i, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		switch {
		case promHelp.MatchString(line):
			helped[promHelp.FindStringSubmatch(line)[1]] = true
		case promType.MatchString(line):
			name := promType.FindStringSubmatch(line)[1]
			if !helped[name] || typed[name] {
				t.Errorf("line %d: TYPE of %s without HELP before it, or twice", i+1, name)
			}
			typed[name] = true
		case promSample.MatchString(line):
			name := promSample.FindStringSubmatch(line)[1]
			if !typed[name] {
				t.Errorf("line %d: sample of %s before its TYPE", i+1, name)
			}
			samples[name]++
		default:
			t.Errorf("line %d is not in the text format: %q", i+1, line)
		}
	}
	if samples["kmsbridge_key_material_expiry_days"] != 1 || samples["kmsbridge_problems"] != len(ProblemKinds) {
		t.Errorf("samples %v", samples)
	}
	if !strings.Contains(b.String(), "kmsbridge_status_health 2\n") || !strings.Contains(b.String(), `hsm_key_label="we\"ird\\label"`) {
		t.Errorf("health or escaping wrong:\n%s", b.String())
	}
}
